"""An avatar with a tracked sequence, made by the tests: the demo's Gaussians, FLAME head and
blendshapes, with a flame_param.npz (GaussianAvatars' keys, written here with numpy) whose
expressions live in a known 3-D subspace with known ranges."""
from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np

from assets import DEMO_AVATAR, DEMO_BLENDSHAPES, DEMO_FLAME
from avatar_app.avatar import AvatarSource

# Coordinates along each basis axis: every combination is a tracked frame (a full grid, so the
# coordinates are exactly uncorrelated and the principal axes are the basis axes themselves).
LEVELS = (np.linspace(-0.8, 1.2, 8), np.linspace(-0.5, 0.7, 7), np.linspace(-0.3, 0.2, 6))
JAW_LOW, JAW_HIGH = np.array([0.0, -0.02, -0.01]), np.array([0.25, 0.02, 0.03])
ACTIVE = 18  # expression coefficients the demo's blendshapes move: the basis lies among them


def tracked_expressions(levels: tuple[np.ndarray, ...] = LEVELS, seed: int = 0) -> tuple[np.ndarray, ...]:
    """(offset (100,), basis (k, 100) orthonormal rows, expr (T, 100), jaw (T, 3)): expr =
    offset + coordinates @ basis over the grid of `levels`; jaw uniform in JAW_LOW..JAW_HIGH
    with both ends present."""
    rng = np.random.default_rng(seed)
    basis = np.zeros((len(levels), 100))
    basis[:, :ACTIVE] = np.linalg.qr(rng.normal(size=(ACTIVE, len(levels))))[0].T
    offset = np.zeros(100)
    offset[:ACTIVE] = 0.1 * rng.normal(size=ACTIVE)
    coordinates = np.array(list(itertools.product(*levels)))
    expr = offset + coordinates @ basis
    jaw = rng.uniform(JAW_LOW, JAW_HIGH, size=(len(expr), 3))
    jaw[:2] = JAW_LOW, JAW_HIGH
    return offset, basis, expr, jaw


def write_flame_param(path: Path, expr: np.ndarray, jaw: np.ndarray) -> None:
    """A GaussianAvatars flame_param.npz for the demo head: the demo's shape and static offset."""
    demo = np.load(DEMO_AVATAR / "flame_param.npz")
    frames = len(expr)
    zeros = {key: np.zeros((frames, width), np.float32) for key, width in
             (("rotation", 3), ("neck_pose", 3), ("translation", 3), ("eyes_pose", 6))}
    np.savez(path, expr=expr.astype(np.float32), jaw_pose=jaw.astype(np.float32), **zeros,
             shape=demo["shape"], static_offset=demo["static_offset"])


def write_tracked_avatar(folder: Path) -> AvatarSource:
    """The demo avatar with the tracked sequence of `tracked_expressions()` in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEMO_AVATAR / "point_cloud.ply", folder / "point_cloud.ply")
    _, _, expr, jaw = tracked_expressions()
    write_flame_param(folder / "flame_param.npz", expr, jaw)
    return AvatarSource(folder, DEMO_FLAME, DEMO_BLENDSHAPES)
