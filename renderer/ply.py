"""PLY read/write in the GaussianAvatars / 3DGS layout (docs/architecture.md §Formats).

The file itself is read and written by `common.ply` (defensive: every malformed or hostile
file is one `InputError` line naming it; sizes are checked before anything is allocated).
Here: the layout. A `vertex` element of scalar properties read by name (any order, extra
properties such as normals or colours ignored), SH degree 0–3 from the `f_rest_*` count,
optional `binding_0`; values are checked after the conversions we apply (float32, exp,
normalisation).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from common import ply
from common.errors import InputError
from common.limits import MAX_GAUSSIANS

from .gaussians import GaussianSet

MAX_BINDING = 2**31 - 1  # triangle indices as GaussianAvatars stores them (int32 range)
_WORDS = ply.Wording(items="Gaussians", item="Gaussian")
_MEANS, _QUATS = ["x", "y", "z"], ["rot_0", "rot_1", "rot_2", "rot_3"]
_SCALES, _DC = ["scale_0", "scale_1", "scale_2"], ["f_dc_0", "f_dc_1", "f_dc_2"]
_REQUIRED = _MEANS + _QUATS + _SCALES + ["opacity"] + _DC
_REST_COUNTS = [3 * ((d + 1) ** 2 - 1) for d in range(4)]  # f_rest properties of SH degree 0..3


def _check_layout(path: Path, names: list[str]) -> None:
    """Refuse vertex properties that lack one we need or whose f_rest do not make an SH degree."""
    if "packed_position" in names:
        raise InputError(f"{path}: a compressed PLY (packed_position, packed_rotation, …: SuperSplat's "
                         "format); convert it to a plain 3DGS PLY first")
    missing = [p for p in _REQUIRED if p not in names]
    if missing:
        raise InputError(f"{path}: missing PLY properties {', '.join(missing)}")
    rest = {n for n in names if n.startswith("f_rest_")}
    if len(rest) not in _REST_COUNTS or rest != {f"f_rest_{i}" for i in range(len(rest))}:
        raise InputError(f"{path}: {len(rest)} f_rest properties do not form f_rest_0.. for an SH "
                         f"degree 0..3 (0, 9, 24 or 45 of them)")


def _require(path: Path, ok: np.ndarray, names: list[str], problem: str) -> None:
    """Refuse columns where `ok` [N, len(names)] is False, naming the first such property."""
    if not ok.all():
        column = int(np.argmin(ok.all(axis=0)))
        raise InputError(f"{path}: {names[column]} {problem} for {int((~ok[:, column]).sum()):,} Gaussian(s)")


def _binding(path: Path, b: np.ndarray) -> torch.Tensor:
    """Triangle indices, refused before the int64 cast unless whole numbers in 0..MAX_BINDING."""
    exact = b.astype(np.float64) if b.dtype.kind == "f" else b  # float32 rounds MAX_BINDING up to 2^31
    with np.errstate(invalid="ignore"):
        ok = (exact >= 0) & (exact <= MAX_BINDING) & (exact == np.floor(exact))  # NaN fails all three
    if not ok.all():
        raise InputError(f"{path}: binding_0 must hold triangle indices 0..{MAX_BINDING}; "
                         f"{int((~ok).sum()):,} Gaussian(s) hold other values (first: {b[~ok][0].item()!r})")
    return torch.from_numpy(b.astype(np.int64))


def _floats(path: Path, data: np.ndarray, names: list[str]) -> np.ndarray:
    """Columns [N, len(names)] as float32, refused where the cast leaves NaN or infinity."""
    out = np.empty((data.shape[0], len(names)), np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        for j, name in enumerate(names):
            out[:, j] = data[name]
    _require(path, np.isfinite(out), names, "is NaN or infinite as float32")
    return out


def _gaussians(path: Path, data: np.ndarray) -> GaussianSet:
    """The set from the raw records: float32, scales exp'd, opacities sigmoid'd, all finite."""
    n, k = data.shape[0], sum(name.startswith("f_rest_") for name in data.dtype.names) // 3
    means, quats = _floats(path, data, _MEANS), _floats(path, data, _QUATS)
    logits = _floats(path, data, ["opacity"])
    with np.errstate(over="ignore", under="ignore"):
        scales = np.exp(_floats(path, data, _SCALES))
        length = np.linalg.norm(quats, axis=1)[:, None]
    _require(path, np.isfinite(scales), _SCALES, "is too large (its exp overflows float32)")
    _require(path, (length > 0) & np.isfinite(length), ["rot_0..rot_3"],
             "has zero length (or one float32 cannot hold)")
    sh = _floats(path, data, _DC + [f"f_rest_{i}" for i in range(3 * k)])
    rest = sh[:, 3:].reshape(n, 3, k).transpose(0, 2, 1)  # channel-major on disk
    sh = np.concatenate([sh[:, None, :3], rest], axis=1)
    return GaussianSet(
        means=torch.from_numpy(means),
        quats=torch.from_numpy(quats),
        scales=torch.from_numpy(scales),
        opacities=torch.sigmoid(torch.from_numpy(logits[:, 0].copy())),
        sh=torch.from_numpy(sh),
        binding=_binding(path, data["binding_0"]) if "binding_0" in data.dtype.names else None,
    )


def read_ply(path: str | os.PathLike) -> GaussianSet:
    """Load a Gaussian PLY; `binding_0` present → triangle-local set, absent → static scene."""
    path = Path(path)
    return _gaussians(path, ply.read_vertices(path, _WORDS, MAX_GAUSSIANS, lambda names: _check_layout(path, names)))


def write_ply(gaussians: GaussianSet, path: str | os.PathLike) -> None:
    """Write the GaussianAvatars layout (all float32, normals zero), atomically."""
    path = Path(path)
    n, k = gaussians.sh.shape[0], gaussians.sh.shape[1]
    sh = gaussians.sh.detach().cpu().numpy().astype(np.float32)
    opacity = gaussians.opacities.detach().cpu().double().clamp(1e-7, 1 - 1e-7)
    columns = {
        **{a: gaussians.means[:, i] for i, a in enumerate("xyz")},
        **{f"n{a}": torch.zeros(n) for a in "xyz"},
        **{f"f_dc_{c}": torch.from_numpy(sh[:, 0, c]) for c in range(3)},
        **{f"f_rest_{c * (k - 1) + j}": torch.from_numpy(sh[:, 1 + j, c])
           for c in range(3) for j in range(k - 1)},
        "opacity": torch.log(opacity / (1 - opacity)),
        **{f"scale_{i}": torch.log(gaussians.scales[:, i]) for i in range(3)},
        **{f"rot_{i}": gaussians.quats[:, i] for i in range(4)},
    }
    if gaussians.binding is not None:
        columns["binding_0"] = gaussians.binding
    table = np.empty(n, dtype=[(name, "<f4") for name in columns])
    for name, col in columns.items():
        table[name] = col.detach().cpu().numpy().astype(np.float32)
    ply.write_ply(path, table, parents=True)
