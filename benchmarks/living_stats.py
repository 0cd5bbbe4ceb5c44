"""Blink, gaze and head-motion statistics of a rendered minute of the demo, next to the
published human figures the layers follow (models/rig/living.py), and a few frames to look at
(a blink mid-closure, a gaze shift, the head at its largest turn).

The minute is the demo sentence said again and again with pauses between (so both the resting
and the speaking blink rate show); the statistics are measured from the FLAME parameters of the
frames rendered (eyelids, eyes_pose, neck_pose), the speech energy from the audio.

    python benchmarks/living_stats.py [--demo-dir assets/demo] [--seconds 60] [--size 256]
        [--out living_frames] [--no-render]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from assets import DEMO_DIR
from avatar_app.avatar import AvatarSource
from avatar_app.clip import ClipSource
from avatar_app.player import Player
from avatar_app.video import write_png
from models.audio.sources import Audio, load_wav, save_wav
from models.rig.living import LivingLayers, pose_degrees


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def speech_minute(demo: Path, seconds: float, out: Path) -> Path:
    """The demo sentence repeated with 1.5-4 s pauses, `seconds` long."""
    speech = load_wav(demo / "speech.wav")
    rng, pieces, total = np.random.default_rng(0), [], 0
    goal = int(seconds * speech.sample_rate)
    while total < goal:
        for part in (speech.samples, np.zeros(int(rng.uniform(1.5, 4.0) * speech.sample_rate), np.float32)):
            pieces.append(part)
            total += len(part)
    path = out / "minute.wav"
    save_wav(Audio(np.concatenate(pieces)[:goal], speech.sample_rate), path)
    return path


def measure(player: Player) -> list[tuple[str, str, str]]:
    clip = player.clip
    fps, frames = clip.fps, clip.num_frames
    params = player.flame_params(0, frames)
    minutes = frames / fps / 60
    lids = params.eyelids[:, 0]
    blinks = _runs(lids > 0.05)
    durations = np.array([(b - a + 1) / fps for a, b in blinks])  # frames the lid is moving or closed
    energy = player._living_cache["energy"][1]
    speaking = np.convolve(energy > 0.3, np.ones(int(fps)) / fps, "same") > 0.5
    during = sum(speaking[a] for a, _ in blinks)
    talk_min, rest_min = speaking.sum() / fps / 60, (~speaking).sum() / fps / 60
    gaze = pose_degrees(params.eyes_pose[:, :3])[:, :2]
    step = np.hypot(*np.diff(gaze, axis=0).T)
    shifts = _runs(step > 0.05)
    amplitudes = np.array([np.hypot(*(gaze[b] - gaze[a])) for a, b in shifts])
    fixations = np.diff([a for a, _ in shifts]) / fps
    head = pose_degrees(params.neck_pose)
    speed = np.linalg.norm(np.diff(head, axis=0), axis=1) * fps
    window = np.ones(int(fps)) / fps
    r = np.corrcoef(np.convolve(speed, window, "same"), np.convolve(energy[1:], window, "same"))[0, 1]
    return [
        ("blink rate, at rest", f"{(len(blinks) - during) / max(rest_min, 1e-9):.1f} /min", "~17 /min (Bentivoglio 1997)"),
        ("blink rate, speaking", f"{during / max(talk_min, 1e-9):.1f} /min", "~26 /min in conversation"),
        ("blink duration (lid moving)", f"median {np.median(durations) * 1000:.0f} ms, "
         f"{durations.min() * 1000:.0f}-{durations.max() * 1000:.0f}", "100-400 ms (Caffier 2003)"),
        ("full closure reached", f"{np.mean([lids[a:b].max() > 0.9 for a, b in blinks]):.0%} of blinks",
         "at 30 fps a frame can miss the peak"),
        ("gaze shifts", f"{len(shifts) / minutes:.0f} /min", "fixations ~0.2-1 s+"),
        ("saccade amplitude", f"median {np.median(amplitudes):.1f}°, 95% {np.percentile(amplitudes, 95):.1f}°",
         "a few degrees"),
        ("fixation length", f"median {np.median(fixations):.2f} s, 10-90% {np.percentile(fixations, 10):.2f}-"
         f"{np.percentile(fixations, 90):.2f} s", "0.2-1 s+ (Rayner 1998)"),
        ("saccade duration", "main sequence 21 ms + 2.2 ms/°", f"{1000 / fps:.0f} ms frames: 1-2 frames"),
        ("head rotation std", " / ".join(f"{v:.1f}°" for v in head.std(0)) + " (pitch/yaw/roll)",
         "a few degrees (Busso 2007)"),
        ("head speed ~ speech energy", f"r = {r:.2f} (1 s windows)", "follows loudness (Munhall 2004)"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", default=str(DEMO_DIR))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="living_frames", help="folder for the frames to look at")
    parser.add_argument("--no-render", action="store_true", help="statistics of the parameters only")
    args = parser.parse_args()
    demo, out = Path(args.demo_dir), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    player = Player(AvatarSource(demo / "avatar", demo / "flame_demo.npz", demo / "blendshapes.npz").load(), "cpu")
    player.set_living(LivingLayers(1, 1, 1, args.seed))
    player.set_view(width=args.size, height=args.size)
    player.load_clip(ClipSource(audio=speech_minute(demo, args.seconds, out)), 30.0)
    frames = player.clip.num_frames
    start = time.perf_counter()
    if not args.no_render:
        for _ in player.render_range(0, frames):
            pass
    seconds = time.perf_counter() - start
    rows = measure(player)
    print(f"{frames} frames at {player.clip.fps:g} fps, {args.size}² rendered in {seconds:.0f} s (seed {args.seed})")
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}} | {'rendered minute':<40} | published")
    for name, value, target in rows:
        print(f"{name:<{width}} | {value:<40} | {target}")
    params = player.flame_params(0, frames)
    lids = params.eyelids[:, 0]
    blink = next(a for a, b in _runs(lids > 0.05) if b - a >= 4)
    gaze = pose_degrees(params.eyes_pose[:, :3])[:, :2]
    shift = 1 + int(np.argmax(np.hypot(*np.diff(gaze, axis=0).T)))
    turn = int(np.argmax(np.abs(pose_degrees(params.neck_pose)[:, 1])))
    for name, index in (("blink_open", blink - 1), ("blink_closing", blink + 1), ("blink_closed", blink + 2),
                        ("gaze_before", shift - 1), ("gaze_after", shift + 1), ("head_turn", turn)):
        write_png(player.render_frame(index), out / f"{name}_{index:05d}.png")
    print(f"frames to look at in {out}/")


if __name__ == "__main__":
    main()
