"""Time and memory of a real-scale GaussianAvatars avatar (tests/realistic.py): FLAME 5023/9976
from an official-layout .pkl with the teeth (V 5143, F 10144), 100,000 Gaussians at SH degree 3,
a 300-frame tracked sequence and an 802×550 dataset camera (single-camera JSON).

Builds the avatar once, then measures in a fresh process per thread count, so every number is
that process's own: load time (`load_avatar` of the folder with the .pkl), peak resident memory
(VmRSS now and VmHWM, the peak so far, from /proc/self/status; `ru_maxrss` would carry over the
parent's peak across fork and exec): after imports, after loading, after replaying), the
first frame (numba compiles its kernels), frames per second replaying the tracked motion through
the Player at the dataset camera on the CPU backend (at 512×512, the camera scaled, and at the
camera's own size), and the motion export (`save_flame_params` of the Player's 300 frames, as the
app's File → Export FLAME motion).

    python benchmarks/realistic_avatar.py                  # 1 and 2 threads, 100 frames per size
    python benchmarks/realistic_avatar.py --threads 2 --frames 300
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

ROOT = Path(__file__).resolve().parents[1]
SIZES = ((512, 512), None)  # None: the camera's own size


def child(folder: Path, threads: int, frames: int) -> dict:
    """Measure one process's load, replay and export (run with --child)."""
    def memory_mb() -> tuple[float, float]:
        """(resident now, peak resident so far) in MB."""
        status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
        return tuple(int(status[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM"))

    from avatar_app.avatar import load_avatar
    from avatar_app.clip import ClipSource
    from avatar_app.player import Player
    from avatar_app.threads import use_threads
    from models.rig.flame import save_flame_params
    from renderer.camera_files import load_camera

    use_threads(threads)
    result = {"threads": threads, "rss_imports_mb": memory_mb()[0]}
    started = time.perf_counter()
    avatar = load_avatar(folder / "avatar", folder / "flame2023.pkl")
    result["load_s"] = time.perf_counter() - started
    result["rss_loaded_mb"], result["peak_loaded_mb"] = memory_mb()
    player = Player(avatar, backend="cpu")
    camera = load_camera(folder / "camera.json")
    player.load_clip(ClipSource(motion=folder / "avatar" / "flame_param.npz"), 25)
    for size in SIZES:
        width, height = size or (camera.width, camera.height)
        player.set_view(camera=camera, width=width, height=height)
        started = time.perf_counter()
        player.render_frame(player.clip.num_frames - 1)  # the first at this size: numba compiles once
        first = time.perf_counter() - started
        started = time.perf_counter()
        count = sum(1 for _ in player.render_range(0, min(frames, player.clip.num_frames)))
        result[f"{width}x{height}"] = {"fps": count / (time.perf_counter() - started), "first_s": first}
    result["peak_replayed_mb"] = memory_mb()[1]
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        save_flame_params(player.flame_params(0, player.clip.num_frames), Path(scratch) / "motion.npz")
        result["export_s"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--frames", type=int, default=100, help="frames replayed per image size")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.threads[0], args.frames)))
        return
    sys.path.insert(0, str(ROOT))
    from tests.realistic import build_realistic

    print(f"{len(os.sched_getaffinity(0))} cores; load average {os.getloadavg()[0]:.2f} at the start")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        started = time.perf_counter()
        built = build_realistic(folder)
        build_s = time.perf_counter() - started
        sizes = {p.name: p.stat().st_size / 2**20 for p in (built.flame, built.folder / "point_cloud.ply",
                                                           built.folder / "flame_param.npz")}
        print(f"build {build_s:.1f} s: " + ", ".join(f"{name} {mb:.0f} MB" for name, mb in sizes.items()))
        rows = []
        for threads in args.threads:
            env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
            done = subprocess.run([sys.executable, __file__, "--child", str(folder), "--threads", str(threads),
                                   "--frames", str(args.frames)], cwd=ROOT, env=env, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"threads {threads}: {done.stderr.strip().splitlines()[-1]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    sizes = [key for key in rows[0] if isinstance(rows[0][key], dict)]
    print(f"load average {os.getloadavg()[0]:.2f} at the end; {args.frames} frames replayed per size")
    print("| threads | load s | RSS MB: imports / loaded (peak) / peak replaying | "
          + " | ".join(f"{s} fps (first frame s)" for s in sizes) + " | export s |")
    print("|---:|---:|---:|" + "---:|" * len(sizes) + "---:|")
    for r in rows:
        print(f"| {r['threads']} | {r['load_s']:.2f} | {r['rss_imports_mb']:.0f} / {r['rss_loaded_mb']:.0f} "
              f"({r['peak_loaded_mb']:.0f}) / {r['peak_replayed_mb']:.0f} | " + " | ".join(f"{r[s]['fps']:.1f} ({r[s]['first_s']:.1f})" for s in sizes)
              + f" | {r['export_s']:.2f} |")


if __name__ == "__main__":
    main()
