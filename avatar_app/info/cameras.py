"""What a camera file holds: a single-camera JSON, or a GaussianAvatars / VHAP / NeRF
`transforms*.json` (its frames, cameras, timesteps and image sizes), read by
`renderer/camera_files.py` exactly as rendering reads it."""
from __future__ import annotations

import math
from pathlib import Path

from renderer.camera import Camera
from renderer.camera_files import load_camera, read_transforms


def _optics(camera: Camera) -> str:
    fx, fy, cx, cy = (float(camera.K[i, j]) for i, j in ((0, 0), (1, 1), (0, 2), (1, 2)))
    fov = math.degrees(2 * math.atan(0.5 * camera.height / fy))
    return (f"{camera.width}x{camera.height}, fx {fx:.1f} fy {fy:.1f} px (vertical field of view {fov:.1f}°), "
            f"principal point ({cx:.1f}, {cy:.1f})")


def _where(camera: Camera) -> str:
    x, y, z = (float(v) for v in camera.center)
    return f"centre ({x:.3f}, {y:.3f}, {z:.3f}) m, {math.hypot(x, y, z):.3f} m from the origin"


def _span(values: list[int]) -> str:
    return f"{min(values)}..{max(values)}" if values else "none"


def describe_camera_file(path: Path) -> str:
    camera = load_camera(path)
    return (f"{path}: camera file (one camera; `--camera {path}`)\n  image: {_optics(camera)}\n"
            f"  {_where(camera)}")


def describe_transforms(path: Path) -> str:
    frames = read_transforms(path)
    cameras = sorted({f.camera_index for f in frames if f.camera_index is not None})
    timesteps = sorted({f.timestep_index for f in frames if f.timestep_index is not None})
    sizes = sorted({(f.camera.width, f.camera.height) for f in frames})
    first = frames[0].camera
    distances = [float(f.camera.center.norm()) for f in frames]
    lines = [f"{path}: dataset split (transforms file), {len(frames):,} frame(s)",
             f"  cameras: {len(cameras)} (camera_index {_span(cameras)})" if cameras else
             "  cameras: no camera_index (each frame its own camera)",
             f"  timesteps: {len(timesteps)} (timestep_index {_span(timesteps)})" if timesteps else
             "  timesteps: no timestep_index",
             "  image size: " + ", ".join(f"{w}x{h}" for w, h in sizes[:6]) + (" …" if len(sizes) > 6 else ""),
             f"  first frame: {_optics(first)}; {_where(first)}",
             f"  camera distance from the origin: {min(distances):.3f}..{max(distances):.3f} m",
             f"  FLAME parameters per frame (flame_param_path): {sum(f.flame_param_path is not None for f in frames)}"
             f" of {len(frames)}; masks (fg_mask_path): {sum(f.fg_mask_path is not None for f in frames)}",
             f"  render it: avatar render --dataset {path}; one view: --camera {path} --camera-index N"]
    return "\n".join(lines)
