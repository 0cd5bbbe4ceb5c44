"""Binary PLY read/write in the GaussianAvatars / 3DGS layout (DESIGN §4.1)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from .errors import InputError
from .gaussians import GaussianSet, sh_degree_for

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_REQUIRED = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
             "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]


def _read_header(f, path: Path) -> tuple[int, list[tuple[str, str]], str]:
    if f.readline().strip() != b"ply":
        raise InputError(f"{path}: not a PLY file (no 'ply' magic line)")
    count, props, fmt, element = None, [], None, None
    while True:
        line = f.readline()
        if not line:
            raise InputError(f"{path}: PLY header has no end_header")
        words = line.decode("ascii", "replace").split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "end_header":
            break
        if words[0] == "format":
            fmt = words[1]
        elif words[0] == "element":
            element = words[1]
            if element == "vertex":
                count = int(words[2])
            elif count is None:
                raise InputError(f"{path}: element '{element}' before 'vertex' is not supported")
        elif words[0] == "property" and element == "vertex":
            if words[1] == "list":
                raise InputError(f"{path}: list property '{words[-1]}' in vertex element")
            if words[1] not in _PLY_TYPES:
                raise InputError(f"{path}: unknown PLY type '{words[1]}'")
            props.append((words[2], _PLY_TYPES[words[1]]))
    if count is None:
        raise InputError(f"{path}: PLY has no vertex element")
    if fmt not in ("binary_little_endian", "binary_big_endian"):
        raise InputError(f"{path}: PLY format '{fmt}' is not supported (binary PLY only)")
    return count, props, "<" if fmt == "binary_little_endian" else ">"


def read_ply(path: str | os.PathLike) -> GaussianSet:
    """Load a Gaussian PLY; `binding_0` present → triangle-local set, absent → static scene."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with open(path, "rb") as f:
        count, props, endian = _read_header(f, path)
        dtype = np.dtype([(name, endian + code) for name, code in props])
        data = np.fromfile(f, dtype=dtype, count=count)
    if data.shape[0] != count:
        raise InputError(f"{path}: truncated: header says {count} Gaussians, file holds {data.shape[0]}")
    names = set(dtype.names)
    missing = [p for p in _REQUIRED if p not in names]
    if missing:
        raise InputError(f"{path}: missing PLY properties {', '.join(missing)}")
    n_rest = sum(1 for n in names if n.startswith("f_rest_"))
    try:
        degree = sh_degree_for(1 + n_rest // 3) if n_rest % 3 == 0 else -1
    except ValueError:
        degree = -1
    if degree < 0:
        raise InputError(f"{path}: {n_rest} f_rest properties is not 3·((d+1)²−1) for an SH degree 0..3")

    def cols(*keys: str) -> np.ndarray:
        return np.stack([data[k].astype(np.float32) for k in keys], axis=-1)

    k_rest = (degree + 1) ** 2 - 1
    dc = cols("f_dc_0", "f_dc_1", "f_dc_2")[:, None, :]
    rest = cols(*[f"f_rest_{i}" for i in range(3 * k_rest)]).reshape(count, 3, k_rest)
    sh = np.concatenate([dc, rest.transpose(0, 2, 1)], axis=1)  # channel-major on disk
    values = np.concatenate([cols("x", "y", "z"), cols("opacity"), cols("scale_0", "scale_1", "scale_2"),
                             cols("rot_0", "rot_1", "rot_2", "rot_3"), sh.reshape(count, -1)], axis=1)
    if not np.isfinite(values).all():
        raise InputError(f"{path}: NaN or infinite values in Gaussian properties")
    binding = None
    if "binding_0" in names:
        b = data["binding_0"]
        if np.any(b < 0) or np.any(b != np.round(b)):
            raise InputError(f"{path}: binding_0 holds negative or non-integer triangle indices")
        binding = torch.from_numpy(b.astype(np.int64))
    return GaussianSet(
        means=torch.from_numpy(cols("x", "y", "z")),
        quats=torch.from_numpy(cols("rot_0", "rot_1", "rot_2", "rot_3")),
        scales=torch.from_numpy(np.exp(cols("scale_0", "scale_1", "scale_2"))),
        opacities=torch.sigmoid(torch.from_numpy(data["opacity"].astype(np.float32))),
        sh=torch.from_numpy(np.ascontiguousarray(sh)),
        binding=binding,
    )


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
    header = "ply\nformat binary_little_endian 1.0\n" f"element vertex {n}\n"
    header += "".join(f"property float {name}\n" for name in columns) + "end_header\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header.encode("ascii"))
            table.tofile(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
