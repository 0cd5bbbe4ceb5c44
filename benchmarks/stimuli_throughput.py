"""Throughput of `avatar stimuli`: a 20-clip factorial design on the demo, with 1 and 2 workers.

5 emotions × 2 sentences (1 s cuts of the demo speech) × 2 views, 30 fps, loudness-normalised,
MP4 only. Each worker count renders into a fresh folder, so nothing is skipped; the time
includes starting the worker processes and loading the avatar in each.

    python benchmarks/stimuli_throughput.py [--size 256x256] [--workers 1 2] [--backend auto]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256x256")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        speech = load_wav(DEMO_AUDIO)
        rate = speech.sample_rate
        for name, start in (("first.wav", 0.0), ("second.wav", 2.0)):
            save_wav(Audio(speech.samples[int(start * rate):int((start + 1.0) * rate)], rate), folder / name)
        os.chdir(folder)
        print(f"20 stimuli of 1 s at 30 fps, {args.size}, {os.cpu_count()} cores\n")
        print("| workers | backend | stimuli | frames | seconds | stimuli/min | frames/s |")
        print("|---:|---|---:|---:|---:|---:|---:|")
        for workers in args.workers:
            out = folder / f"out{workers}"
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # the table only
                code = avatar(["stimuli", "-o", str(out), "-q", "--workers", str(workers), "--backend", args.backend,
                               "--factorial", "emotion=happy,sad,angry,surprised,fearful",
                               "audio=first.wav,second.wav", "view=front,three-quarter left",
                               "--set", f"size={args.size}"])
            seconds = time.perf_counter() - started
            records = json.loads((out / "manifest.json").read_text())["stimuli"]
            frames = sum(r["frames"] for r in records if r["status"] == "ok")
            backend = records[0]["backend"]
            print(f"| {workers} | {backend} | {len(records)}{'' if code == 0 else ' (failures)'} | {frames} | "
                  f"{seconds:.1f} | {len(records) / seconds * 60:.1f} | {frames / seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
