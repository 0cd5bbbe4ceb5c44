"""Throughput of `avatar stimuli`: a 20-clip factorial design on the demo, with 1 and 2 workers
and, with `--ray`, as Ray tasks (`--ray`) and through a pool of Ray actors (the alternative the
tasks were chosen over).

5 emotions × 2 sentences (1 s cuts of the demo speech) × 2 views, 30 fps, loudness-normalised,
MP4 only. Each run renders into a fresh folder, so nothing is skipped; the time includes starting
the worker processes and loading the avatar in each. Ray itself (`ray.init`, one local instance
with this machine's cores) is started once before the Ray runs, and its start time printed.

    python benchmarks/stimuli_throughput.py [--size 256x256] [--workers 1 2] [--backend auto] [--ray]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
from pathlib import Path

from assets import DEMO_AUDIO
from avatar_app.cli import main as avatar
from models.audio.sources import Audio, load_wav, save_wav

DESIGN = ["--factorial", "emotion=happy,sad,angry,surprised,fearful", "audio=first.wav,second.wav",
          "view=front,three-quarter left"]


def use_actor_pool() -> None:
    """Make `--ray` run through a pool of actors, one per CPU, each keeping its players loaded."""
    import ray
    from ray.util import ActorPool

    from avatar_app.stimuli import ray_batch
    from avatar_app.stimuli.batch import keep_worker, make

    @ray.remote
    class Maker:
        def make(self, *job):
            p, folder, outputs, slot, backend, threads = job
            keep_worker(backend, threads, lambda slot, frames: None)
            return make(p, folder, outputs, slot)

    class ActorEngine(ray_batch.RayEngine):
        def run(self, pending, folder, outputs, backend, finish, bar):
            count = int(ray.available_resources()["CPU"]) // self.cpus
            pool = ActorPool([Maker.options(num_cpus=self.cpus).remote() for _ in range(count)])
            jobs = [(p, folder.resolve(), outputs, slot, backend, self.cpus) for slot, p in enumerate(pending)]
            for slot, made in enumerate(pool.map(lambda actor, job: actor.make.remote(*job), jobs)):
                finish(slot, made)

    ray_batch.RayEngine = ActorEngine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256x256")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--ray", action="store_true", help="also as Ray tasks and as a pool of Ray actors")
    args = parser.parse_args()
    runs = [(f"{n} worker{'s' if n > 1 else ''}", ["--workers", str(n)]) for n in args.workers]
    if args.ray:
        runs += [("Ray tasks", ["--ray"]), ("Ray actor pool", ["--ray"])]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        speech = load_wav(DEMO_AUDIO)
        rate = speech.sample_rate
        for name, start in (("first.wav", 0.0), ("second.wav", 2.0)):
            save_wav(Audio(speech.samples[int(start * rate):int((start + 1.0) * rate)], rate), folder / name)
        os.chdir(folder)
        if args.ray:
            import ray
            started = time.perf_counter()
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
            print(f"ray.init: {time.perf_counter() - started:.1f} s")
        print(f"20 stimuli of 1 s at 30 fps, {args.size}, {os.cpu_count()} cores\n")
        print("| run | backend | stimuli | frames | seconds | stimuli/min | frames/s |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for index, (label, extra) in enumerate(runs):
            if label == "Ray actor pool":
                use_actor_pool()
            out = folder / f"out{index}"
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # the table only
                code = avatar(["stimuli", "-o", str(out), "-q", *extra, "--backend", args.backend, *DESIGN,
                               "--set", f"size={args.size}"])
            seconds = time.perf_counter() - started
            records = json.loads((out / "manifest.json").read_text())["stimuli"]
            frames = sum(r["frames"] for r in records if r["status"] == "ok")
            backend = records[0]["backend"]
            print(f"| {label} | {backend} | {len(records)}{'' if code == 0 else ' (failures)'} | {frames} | "
                  f"{seconds:.1f} | {len(records) / seconds * 60:.1f} | {frames / seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
