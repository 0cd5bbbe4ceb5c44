"""ARKit solve on the demo: speed (frames per second) and how well the 52 demo targets reproduce
a demo clip, per facial region (models/rig/arkit.py, assets/demo/arkit_shapes.npz).

The clip is the demo sentence with an emotion and the living layers (blinks, gaze, head motion),
exported the way `avatar export arkit` takes it (Player.export_frames: the head-frame mesh minus
the neutral one). The solve is timed on that clip and on a long one made by repeating it; the
residual is the RMS distance (mm) between the clip's mesh and the targets' blend of the solved
weights, per region of models/rig/regions.py (over the vertices that move), next to the RMS
motion of the region itself (the error of solving nothing).

    python benchmarks/arkit_solve.py [--demo-dir assets/demo] [--emotion happy=0.6]
        [--long-frames 3000] [--smoothness 0.01]
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
from models.rig.arkit import ARKIT_NAMES, DEFAULT_SMOOTHNESS, ArkitShapes, load_arkit_shapes, solve_arkit
from models.rig.living import LivingLayers
from models.rig.regions import REGION_NAMES, geometric_regions


def demo_clip(demo: Path, emotion: str) -> tuple[np.ndarray, np.ndarray, float]:
    """The head-frame displacements (T, V, 3) of the demo sentence, the neutral mesh, the fps."""
    player = Player(AvatarSource(demo / "avatar", demo / "flame_demo.npz", demo / "blendshapes.npz").load(), "cpu")
    name, _, value = emotion.partition("=")
    player.set_emotions({name: float(value or 1.0)})
    player.set_living(LivingLayers(1, 1, 1, 0))
    player.load_clip(ClipSource(audio=demo / "speech.wav"), 30.0)
    frames = player.export_frames()
    return frames.face, frames.neutral, frames.fps


def timed(shapes: ArkitShapes, face: np.ndarray, smoothness: float, mask: np.ndarray | None) -> tuple[float, object]:
    start = time.perf_counter()
    solve = solve_arkit(shapes, face, smoothness, mask)
    return time.perf_counter() - start, solve


def rms_mm(error: np.ndarray, mask: np.ndarray) -> float:
    return 1000.0 * float(np.sqrt(np.mean(np.sum(error[:, mask].astype(np.float64) ** 2, axis=2))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", default=str(DEMO_DIR))
    parser.add_argument("--emotion", default="happy=0.6")
    parser.add_argument("--long-frames", type=int, default=3000)
    parser.add_argument("--smoothness", type=float, default=DEFAULT_SMOOTHNESS)
    args = parser.parse_args()
    demo = Path(args.demo_dir)
    face, neutral, fps = demo_clip(demo, args.emotion)
    shapes = load_arkit_shapes(demo / "arkit_shapes.npz", len(neutral))
    moving = (np.abs(face).max(axis=(0, 2)) > 1e-6) | (np.abs(shapes.displacements).max(axis=(0, 2)) > 1e-6)
    regions = geometric_regions(neutral, moving)
    frames, vertices = face.shape[:2]
    print(f"demo clip: {frames} frames at {fps:g} fps, {vertices} vertices ({moving.sum()} move), "
          f"emotion {args.emotion}, living layers on")

    long = np.concatenate([face] * -(-args.long_frames // frames))[: args.long_frames]
    print("\nspeed (solve_arkit, whole mesh unless masked)")
    print(f"{'frames':>7} | {'vertices solved':>15} | {'smoothness':>10} | {'seconds':>7} | {'frames/s':>8}")
    for clip, mask in ((face, None), (long, None), (long, regions["mouth"] | regions["jaw"])):
        for smoothness in (0.0, args.smoothness):
            seconds, _ = timed(shapes, clip, smoothness, mask)
            solved = vertices if mask is None else int(mask.sum())
            print(f"{len(clip):>7} | {solved:>15} | {smoothness:>10g} | {seconds:>7.2f} | {len(clip) / seconds:>8.0f}")

    print("\nresidual per region, demo clip (RMS over frames and the region's moving vertices, mm)")
    solves = {s: solve_arkit(shapes, face, s) for s in (0.0, args.smoothness)}
    header = f"{'region':>9} | {'vertices':>8} | {'motion':>7} | " + " | ".join(
        f"{'resid. λ=' + format(s, 'g'):>12}" for s in solves)
    print(header)
    errors = {s: shapes.combine(solve.weights) - face for s, solve in solves.items()}
    for name in (*REGION_NAMES, "all"):
        mask = moving if name == "all" else regions[name]
        if not mask.any():
            continue
        cells = " | ".join(f"{rms_mm(errors[s], mask):>12.3f}" for s in solves)
        print(f"{name:>9} | {int(mask.sum()):>8} | {rms_mm(face, mask):>7.3f} | {cells}")
    for s, solve in solves.items():
        r = solve.residual_mm
        used = np.flatnonzero(solve.weights.max(axis=0) > 0.01)
        print(f"λ={s:g}: per-frame residual median {np.median(r):.3f} mm, max {r.max():.3f} mm; "
              f"mean |Δw| per frame {np.abs(np.diff(solve.weights, axis=0)).mean():.4f}; "
              f"{len(used)} targets used: {', '.join(ARKIT_NAMES[i] for i in used[:12])}"
              f"{' …' if len(used) > 12 else ''}")


if __name__ == "__main__":
    main()
