"""Point-cloud PLY files in the layouts our users' trainers write, made byte by byte here
(independently of `renderer.ply.write_ply`), from each trainer's published save code:

- `3dgs`: graphdeco-inria/gaussian-splatting `scene/gaussian_model.py` `save_ply` (plyfile,
  binary little-endian on x86): x y z, nx ny nz (zeros), f_dc_0..2, f_rest_0.. channel-major
  (all of red's higher coefficients, then green's, then blue's), opacity (logit), scale_0..2
  (log), rot_0..3 (wxyz); every property `float`;
- `gaussianavatars`: ShenhanQian/GaussianAvatars `scene/gaussian_model.py` `save_ply`: the 3DGS
  list, then `binding_0` (the triangle index, written as `float` like the rest);
- `gsplat`: nerfstudio-project/gsplat `gsplat/exporter.py` `splat2ply_bytes` (what
  `export_splats(..., format="ply")` and the simple trainer's PLY export write): x y z,
  f_dc_0..2, f_rest_0.. (channel-major: shN permuted to (N, 3, K)), opacity, scale_0..2,
  rot_0..3, every property `float`, no normals; SH degree 0 writes no f_rest at all.
"""
from __future__ import annotations

import numpy as np

PLY_TYPE = {"f4": "float", "f8": "double", "i4": "int", "u4": "uint", "i2": "short", "u2": "ushort",
            "i1": "char", "u1": "uchar"}
ENDIAN = {"binary_little_endian": "<", "binary_big_endian": ">"}
FORMATS = ("binary_little_endian", "binary_big_endian", "ascii")
LAYOUTS = ("3dgs", "gaussianavatars", "gsplat")


def property_names(layout: str, degree: int) -> list[str]:
    """The vertex properties `layout` writes for SH `degree`, in its order."""
    rest = 3 * ((degree + 1) ** 2 - 1)
    names = ["x", "y", "z"]
    if layout in ("3dgs", "gaussianavatars"):
        names += ["nx", "ny", "nz"]
    names += [f"f_dc_{i}" for i in range(3)] + [f"f_rest_{i}" for i in range(rest)]
    names += ["opacity"] + [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)]
    return names + (["binding_0"] if layout == "gaussianavatars" else [])


def records(names: list[str], columns: dict[str, np.ndarray], types: dict[str, str] | None = None) -> np.ndarray:
    """A structured array of `names` (in that order) filled from `columns`; `types` name a
    numpy code per property (default float32)."""
    types = types or {}
    table = np.empty(len(columns[names[0]]), dtype=[(name, types.get(name, "f4")) for name in names])
    for name in names:
        table[name] = columns[name]
    return table


def sh_columns(dc: np.ndarray, rest: np.ndarray) -> dict[str, np.ndarray]:
    """f_dc_* and f_rest_* columns of SH coefficients dc [N, 3] and rest [N, K-1, 3]
    (coefficient-major in memory), written channel-major as every trainer above does."""
    k = rest.shape[1]
    columns = {f"f_dc_{c}": dc[:, c] for c in range(3)}
    columns.update({f"f_rest_{c * k + j}": rest[:, j, c] for c in range(3) for j in range(k)})
    return columns


def header(table: np.ndarray, fmt: str = "binary_little_endian", before: str = "", after: str = "",
           count: int | None = None) -> str:
    """A PLY header for `table` as plyfile writes it (`before`/`after`: element lines around the vertices)."""
    props = "".join(f"property {PLY_TYPE[table.dtype[n].str[1:]]} {n}\n" for n in table.dtype.names)
    return (f"ply\nformat {fmt} 1.0\ncomment made by the tests\n{before}"
            f"element vertex {len(table) if count is None else count}\n{props}{after}end_header\n")


def body(table: np.ndarray, fmt: str = "binary_little_endian") -> bytes:
    if fmt == "ascii":
        return "".join(" ".join(repr(v.item()) for v in row) + "\n" for row in table).encode()
    endian = ENDIAN[fmt]
    return table.astype([(n, endian + table.dtype[n].str[1:]) for n in table.dtype.names]).tobytes()


def ply_bytes(table: np.ndarray, fmt: str = "binary_little_endian", **kw) -> bytes:
    return header(table, fmt, **kw).encode("ascii") + body(table, fmt)
