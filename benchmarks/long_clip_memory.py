"""Peak memory of `avatar render` against the length of the speech it is driven by.

Audio is analysed a window at a time and the soundtrack streamed to the encoder, so a render's
memory should not grow with the clip. This writes speech WAVs of 1, 10 and 60 minutes (the demo
sentence repeated, at 44.1 kHz so resampling is part of the work), renders each with the demo
avatar at a small size and a low frame rate (the audio path is what is measured; frames cost
the same at any length), and prints the peak resident memory of each render process. The
ffmpeg encoder runs in a process of its own, at a constant ~40 MB, and is not counted (a
forked child's ru_maxrss would count the parent's pages again).

    python benchmarks/long_clip_memory.py                       # 1, 10, 60 minutes
    python benchmarks/long_clip_memory.py --minutes 1 10 --driver signal
    python benchmarks/long_clip_memory.py --command stimuli     # one-row design: loudness, apex PNG, weights CSV
    python benchmarks/long_clip_memory.py --tree /tmp/baseline  # another checkout, for before/after
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RATE = 44100
MEASURE = """
import json, resource, sys, time
from avatar_app.cli import main
started = time.perf_counter()
code = main(sys.argv[1:])
print(json.dumps({"code": code, "seconds": time.perf_counter() - started,
                  "self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def write_long_wav(path: Path, minutes: float) -> None:
    """The demo sentence with a second of silence, repeated for `minutes`, as 16-bit PCM."""
    from models.audio.sources import Audio, Resampled, chunks, load_wav

    sentence = load_wav(ROOT / "assets" / "demo" / "speech.wav")
    unit = Audio(np.concatenate([sentence.samples, np.zeros(sentence.sample_rate, np.float32)]), sentence.sample_rate)
    unit = np.concatenate(list(chunks(Resampled(unit, RATE))))
    total = int(minutes * 60 * RATE)
    with open(path, "wb") as handle:
        handle.write(b"RIFF" + (36 + 2 * total).to_bytes(4, "little") + b"WAVE")
        handle.write(b"fmt " + (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
                     + RATE.to_bytes(4, "little") + (2 * RATE).to_bytes(4, "little") + (2).to_bytes(2, "little")
                     + (16).to_bytes(2, "little"))
        handle.write(b"data" + (2 * total).to_bytes(4, "little"))
        pcm = np.round(np.clip(unit, -1, 1) * 32767).astype("<i2")
        written = 0
        while written < total:
            part = pcm[: total - written]
            handle.write(part.tobytes())
            written += len(part)


def measure(tree: Path, wav: Path, out: Path, args: argparse.Namespace) -> dict:
    if args.command == "render":
        argv = ["render", "--demo", "--audio", str(wav), "--size", args.size, "--fps", str(args.fps), "-q",
                "--driver", args.driver, "-o", str(out)]
    else:  # a one-row design through the whole batch: loudness normalisation, apex frame, weights CSV
        design = out.parent / "design.csv"
        design.write_text(f"id,audio,size,fps,driver\nlong,{wav},{args.size},{args.fps:g},{args.driver}\n")
        argv = ["stimuli", str(design), "-o", str(out.parent / "study"), "-q", "--png", "--weights-csv"]
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run([sys.executable, "-c", MEASURE, *argv], cwd=tree, env=env, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        return {"code": done.returncode, "error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    parser.add_argument("--fps", type=float, default=1.0, help="few frames: the audio path is what is measured")
    parser.add_argument("--size", default="128x128")
    parser.add_argument("--driver", default="learned", choices=("learned", "signal"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout to run (default: this one)")
    parser.add_argument("--command", default="render", choices=("render", "stimuli"))
    args = parser.parse_args()
    print(f"avatar {args.command}, the demo, --driver {args.driver} --size {args.size} --fps {args.fps:g}, "
          f"{args.threads} threads, tree {args.tree}")
    print(f"{'audio':>8} | {'frames':>7} | {'peak RSS':>9} | {'time':>7}")
    for minutes in args.minutes:
        with tempfile.TemporaryDirectory() as scratch:
            wav, out = Path(scratch) / f"{minutes:g}min.wav", Path(scratch) / f"{minutes:g}min.mp4"
            write_long_wav(wav, minutes)
            started = time.perf_counter()
            result = measure(args.tree.resolve(), wav, out, args)
            if "error" in result:
                print(f"{minutes:>6g} m | failed (exit {result['code']}): {result['error']}")
                continue
            print(f"{minutes:>6g} m | {round(minutes * 60 * args.fps):>7} | {result['self_kib'] / 1024:>6.0f} MB | "
                  f"{time.perf_counter() - started:>6.0f}s", flush=True)


if __name__ == "__main__":
    main()
