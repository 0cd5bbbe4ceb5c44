"""FLAME: model files from any path, per-frame parameters, and smplx's forward pass.

`FlameRig` holds the model as buffers and calls smplx's functional LBS (`smplx.lbs.lbs`) itself,
as GaussianAvatars' FLAME module does: smplx.FLAME only reads model and landmark files from a
folder and cannot take a static offset. Eyelid blendshapes (`l_eyelid`, `r_eyelid`, of VHAP and
metrical-tracker), when the model has them, are added after LBS per `FlameParams.eyelids`, as
VHAP's FLAME does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse
import smplx
import torch

from common.atomic import atomic_write
from common.errors import InputError
from common.files import check_input_file
from common.limits import (
    MAX_ARRAY_BYTES,
    MAX_COORDINATE,
    MAX_FLAME_PARAMETER,
    MAX_WEIGHT,
)
from models.rig.flame_arrays import FlameArrays
from models.rig.npz import checked_float32, plain_array, read_npy, read_npz
from models.rig.safe_pickle import load_pickle
from models.rig.teeth import FLAME_VERTICES, TEETH_VERTICES, add_teeth

Array = np.ndarray | torch.Tensor

NUM_JOINTS = 5  # global (root), neck, jaw, left eye, right eye
EXPR_DIM = 100
MODEL_KEYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")
# Per-frame keys of GaussianAvatars' flame_param.npz and their widths.
FRAME_KEYS = {
    "expr": EXPR_DIM, "rotation": 3, "neck_pose": 3, "jaw_pose": 3, "translation": 3, "eyes_pose": 6,
    "eyelids": 2,  # VHAP's: closure of the left, right eyelid blendshape (0 open as the template, 1 closed)
}
# VHAP's / metrical-tracker's eyelid blendshapes: keys of a FLAME .npz, or .npy files beside the model.
EYELID_KEYS = ("l_eyelid", "r_eyelid")
# Plausibility bounds of each float key: model arrays, then parameter files.
MODEL_BOUNDS = {
    "v_template": MAX_COORDINATE, "shapedirs": MAX_COORDINATE, "posedirs": MAX_COORDINATE,
    "J_regressor": MAX_WEIGHT, "weights": MAX_WEIGHT,
}
PARAM_BOUNDS = {
    **{key: MAX_FLAME_PARAMETER for key in FRAME_KEYS}, "shape": MAX_FLAME_PARAMETER,
    "translation": MAX_COORDINATE, "static_offset": MAX_COORDINATE,
}
# FlameRig may hold every vertex's full shape + expression basis (smplx.FLAME's sizes) as float32.
_BASIS_BYTES_PER_VERTEX = 3 * (smplx.FLAME.SHAPE_SPACE_DIM + smplx.FLAME.EXPRESSION_SPACE_DIM) * 4
_ZIP_MAGIC = b"PK\x03\x04"
# FlameParams keys in the order of smplx.FLAME's full pose: global (root), neck, jaw, eyes (left, right).
_POSE_KEYS = ("rotation", "neck_pose", "jaw_pose", "eyes_pose")


def _shape_text(shape: tuple) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"


def _numeric(value: Any, key: str, source: str) -> np.ndarray:
    """The value as a numeric array; sparse matrices (which load_pickle checked fit the array
    bound when dense) become dense."""
    if scipy.sparse.issparse(value):
        value = value.toarray()
    array = plain_array(value, f"{source}: {key}")
    if array.dtype.kind not in "iuf":
        raise InputError(f"{source}: {key} is not numeric (dtype {array.dtype})")
    return array


def _integers(array: np.ndarray, key: str, source: str) -> np.ndarray:
    """An integer-typed array as int64 (uint32 -1, as official files spell FLAME's root parent,
    stays 4294967295)."""
    if array.dtype.kind not in "iu":
        raise InputError(f"{source}: {key} must hold integers, not {array.dtype}")
    return array.astype(np.int64)


def _count(raw: dict, key: str, source: str) -> int:
    """A scalar count such as n_shape: one non-negative integer (an integral float is accepted)."""
    array = _numeric(raw[key], key, source)
    value = array.reshape(-1)[0] if array.size == 1 else None
    if value is None or not np.isfinite(value) or value != np.floor(value) or value < 0:
        raise InputError(f"{source}: {key} must be one non-negative integer")
    return int(value)


def _expect_shape(array: np.ndarray, expected: tuple, key: str, source: str) -> None:
    """Check `array.shape` against `expected`, whose str entries match any size."""
    ok = array.ndim == len(expected) and all(
        isinstance(e, str) or n == e for n, e in zip(array.shape, expected)
    )
    if not ok:
        raise InputError(
            f"{source}: {key} has shape {_shape_text(array.shape)}, expected {_shape_text(expected)}"
        )


def _read_model_file(path: Path) -> dict:
    """The raw key → value mapping of a FLAME .npz or (official, chumpy) .pkl file."""
    check_input_file(path, "FLAME model")
    try:
        with open(path, "rb") as file:
            is_zip = file.read(4) == _ZIP_MAGIC
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from err
    if not is_zip:
        raw = load_pickle(path)
        if not isinstance(raw, dict):
            raise InputError(f"{path}: holds a {type(raw).__name__}, not a FLAME model dictionary")
        return raw
    return read_npz(path, (*MODEL_KEYS, "n_shape", "n_expr", *EYELID_KEYS), "FLAME model")


def _read_eyelids(raw: dict, path: Path, num_vertices: int) -> np.ndarray | None:
    """(V, 3, 2) eyelid blendshapes [left, right]: the model file's `l_eyelid`/`r_eyelid`, else
    `l_eyelid.npy` and `r_eyelid.npy` beside it (as VHAP and metrical-tracker keep them); None
    when there are none."""
    if not any(key in raw for key in EYELID_KEYS):
        files = [path.parent / f"{key}.npy" for key in EYELID_KEYS]
        if not all(f.is_file() for f in files):
            return None
        raw = {key: read_npy(f, "eyelid blendshape") for key, f in zip(EYELID_KEYS, files)}
    shapes = []
    for key in EYELID_KEYS:
        if key not in raw:
            raise InputError(f"{path}: {key} without {' and '.join(k for k in EYELID_KEYS if k != key)}: eyelid "
                             "blendshapes come as a pair")
        array = _numeric(raw[key], key, str(path))
        if array.ndim == 3 and array.shape[0] == 1:
            array = array[0]
        _expect_shape(array, (num_vertices, 3), key, str(path))
        shapes.append(checked_float32(array, f"{path}: {key}", MAX_COORDINATE))
    return np.stack(shapes, -1)


def _split_shapedirs(raw: dict, columns: int, source: str) -> tuple[int, int]:
    """(n_shape, n_expr): official files hold shape columns then 100 expression columns;
    an .npz may declare its own split with scalar keys `n_shape` and `n_expr`."""
    if ("n_shape" in raw) != ("n_expr" in raw):
        raise InputError(f"{source}: n_shape and n_expr must be given together")
    if "n_shape" in raw:
        n_shape, n_expr = _count(raw, "n_shape", source), _count(raw, "n_expr", source)
    elif columns >= EXPR_DIM:
        n_shape, n_expr = columns - EXPR_DIM, EXPR_DIM
    else:
        raise InputError(
            f"{source}: shapedirs has {columns} columns; FLAME needs shape columns then "
            f"{EXPR_DIM} expression columns"
        )
    limit_shape, limit_expr = smplx.FLAME.SHAPE_SPACE_DIM, smplx.FLAME.EXPRESSION_SPACE_DIM
    if n_shape + n_expr != columns or not (0 <= n_shape <= limit_shape and 0 <= n_expr <= limit_expr):
        raise InputError(
            f"{source}: shapedirs has {columns} columns, split as {n_shape} shape + {n_expr} expression "
            f"(at most {limit_shape} + {limit_expr}, summing to the column count)"
        )
    return n_shape, n_expr


def _validate_model(raw: dict, source: str) -> FlameArrays:
    missing = [key for key in MODEL_KEYS if key not in raw]
    if missing:
        raise InputError(f"{source}: missing key(s) {', '.join(missing)} (not a FLAME model file)")
    a = {key: _numeric(raw[key], key, source) for key in MODEL_KEYS}
    _expect_shape(a["v_template"], ("V", 3), "v_template", source)
    num_vertices = a["v_template"].shape[0]
    if num_vertices * _BASIS_BYTES_PER_VERTEX > MAX_ARRAY_BYTES:
        raise InputError(f"{source}: {num_vertices} vertices; FLAME's blend shapes for them would not fit "
                         f"in {MAX_ARRAY_BYTES >> 30} GiB")
    joints = a["J_regressor"].shape[0] if a["J_regressor"].ndim == 2 else -1
    if joints != NUM_JOINTS:
        raise InputError(
            f"{source}: J_regressor has shape {_shape_text(a['J_regressor'].shape)}; FLAME has 5 joints "
            "(global, neck, jaw, left eye, right eye)"
        )
    _expect_shape(a["J_regressor"], (NUM_JOINTS, num_vertices), "J_regressor", source)
    _expect_shape(a["f"], ("F", 3), "f", source)
    _expect_shape(a["shapedirs"], (num_vertices, 3, "S"), "shapedirs", source)
    _expect_shape(a["posedirs"], (num_vertices, 3, 9 * (NUM_JOINTS - 1)), "posedirs", source)
    _expect_shape(a["weights"], (num_vertices, NUM_JOINTS), "weights", source)
    _expect_shape(a["kintree_table"], (2, NUM_JOINTS), "kintree_table", source)
    faces = a["f"]
    if faces.dtype.kind not in "iu" or faces.size == 0 or faces.min() < 0 or faces.max() >= num_vertices:
        raise InputError(f"{source}: f must hold integer vertex indices in 0..{num_vertices - 1}")
    kintree_table = _integers(a["kintree_table"], "kintree_table", source)
    parents = kintree_table[0, 1:]
    if any(not 0 <= parent < joint for joint, parent in enumerate(parents, start=1)):
        raise InputError(f"{source}: kintree_table parents {parents.tolist()} do not form a joint chain")
    n_shape, n_expr = _split_shapedirs(raw, a["shapedirs"].shape[2], source)
    floats = {key: checked_float32(a[key], f"{source}: {key}", bound) for key, bound in MODEL_BOUNDS.items()}
    return FlameArrays(
        **floats,
        faces=faces.astype(np.int64),
        kintree_table=kintree_table,
        n_shape=n_shape,
        n_expr=n_expr,
        source=source,
    )


def load_flame(path: str | Path, teeth: bool = True) -> FlameArrays:
    """Load a FLAME model (official chumpy .pkl or .npz with the same keys) from any path;
    5023-vertex FLAME gets GaussianAvatars' teeth unless `teeth` is False."""
    path = Path(path)
    raw = _read_model_file(path)
    arrays = _validate_model(raw, str(path))
    arrays.eyelids = _read_eyelids(raw, path, arrays.num_vertices)
    return add_teeth(arrays) if teeth and arrays.num_vertices == FLAME_VERTICES else arrays


def _check_frames(values: dict[str, Any], where: str) -> int:
    """The common frame count of per-frame arrays, checking their widths."""
    frames = values["expr"].shape[0] if values["expr"].ndim == 2 else -1
    for key, width in FRAME_KEYS.items():
        if tuple(values[key].shape) != (frames, width):
            raise InputError(
                f"{where}: {key} has shape {_shape_text(tuple(values[key].shape))}, expected (T, {width}) "
                f"with T = {frames} frames"
            )
    return frames


@dataclass
class FlameParams:
    """FLAME parameters of a clip (GaussianAvatars' flame_param.npz layout), numpy or torch."""

    expr: Array  # (T, 100)
    jaw_pose: Array  # (T, 3)
    rotation: Array  # (T, 3) global rotation about the root joint
    neck_pose: Array  # (T, 3)
    translation: Array  # (T, 3) added after LBS
    eyes_pose: Array  # (T, 6): left eye 3, right eye 3
    shape: Array | None = None  # (n_shape,) per avatar; motion files have none
    static_offset: Array | None = None  # (1, V, 3) per avatar
    eyelids: Array | None = None  # (T, 2): left, right eyelid closure (VHAP); None → zeros

    def __post_init__(self) -> None:
        if self.eyelids is None:
            frames = self.expr.shape[0] if self.expr.ndim == 2 else 0
            self.eyelids = (torch.zeros(frames, 2, dtype=self.expr.dtype, device=self.expr.device)
                            if isinstance(self.expr, torch.Tensor) else np.zeros((frames, 2), np.float32))
        _check_frames({key: getattr(self, key) for key in FRAME_KEYS}, "FlameParams")

    @property
    def num_frames(self) -> int:
        return self.expr.shape[0]

    @classmethod
    def neutral(
        cls, num_frames: int, shape: Array | None = None, static_offset: Array | None = None
    ) -> FlameParams:
        """All-zero expression and pose for `num_frames` frames."""
        zeros = {key: np.zeros((num_frames, width), np.float32) for key, width in FRAME_KEYS.items()}
        return cls(**zeros, shape=shape, static_offset=static_offset)

    def slice(self, start: int, stop: int) -> FlameParams:
        """Frames start..stop-1, sharing the per-avatar shape and static offset."""
        return dataclasses.replace(self, **{key: getattr(self, key)[start:stop] for key in FRAME_KEYS})


def read_param_arrays(path: Path, keys: Iterable[str]) -> dict[str, np.ndarray]:
    """Those of `keys` (of PARAM_BOUNDS) that a FLAME parameter file holds, as finite, bounded
    float32; `expr` must be there."""
    raw = read_npz(path, keys, "FLAME parameter file")
    if "expr" not in raw:
        raise InputError(f"{path}: missing key expr (not a FLAME parameter file)")
    return {
        key: checked_float32(_numeric(value, key, str(path)), f"{path}: {key}", PARAM_BOUNDS[key])
        for key, value in raw.items()
    }


def frame_values(values: dict[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    """Per-frame rows (T, width) completed: `expr` with fewer than 100 columns zero-padded, the
    other missing per-frame keys zero; widths and frame counts checked."""
    expr = values["expr"]
    if expr.ndim != 2 or expr.shape[1] > EXPR_DIM:
        raise InputError(f"{where}: expr has shape {_shape_text(expr.shape)}, expected (T, up to {EXPR_DIM})")
    values["expr"] = np.pad(expr, ((0, 0), (0, EXPR_DIM - expr.shape[1])))
    for key, width in FRAME_KEYS.items():
        values.setdefault(key, np.zeros((expr.shape[0], width), np.float32))
    _check_frames(values, where)
    return values


def load_flame_params(path: str | Path) -> FlameParams:
    """Read a GaussianAvatars flame_param.npz, a motion file (no shape/static_offset) or VHAP's
    tracked_flame_params*.npz (the same keys, rows in timestep order; its other keys are not read).

    Missing per-frame keys other than `expr` are zero; `expr` with fewer than 100 columns is
    zero-padded. `dynamic_offset` is not read: GaussianAvatars' FLAME forward ignores it too.
    """
    path = Path(path)
    values = frame_values(read_param_arrays(path, PARAM_BOUNDS), str(path))
    if "shape" in values:
        if values["shape"].ndim == 2 and values["shape"].shape[0] == 1:
            values["shape"] = values["shape"][0]
        _expect_shape(values["shape"], ("n_shape",), "shape", str(path))
    if "static_offset" in values:
        if values["static_offset"].ndim == 2:
            values["static_offset"] = values["static_offset"][None]
        _expect_shape(values["static_offset"], (1, "V", 3), "static_offset", str(path))
    return FlameParams(**values)


def _to_numpy(value: Array) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float32)


def save_flame_params(params: FlameParams, path: str | Path) -> None:
    """Write GaussianAvatars' flame_param.npz keys (float32), atomically.

    With a static offset (an avatar file) the all-zero `dynamic_offset` (T, V, 3) is written too,
    since GaussianAvatars' viewer indexes it; it is streamed, never held in memory whole.
    """
    path = Path(path)
    data = {key: _to_numpy(getattr(params, key)) for key in FRAME_KEYS}
    if params.shape is not None:
        data["shape"] = _to_numpy(params.shape).reshape(-1)
    if params.static_offset is not None:
        static_offset = _to_numpy(params.static_offset).reshape(1, -1, 3)
        data["static_offset"] = static_offset
        frames_shape = (params.num_frames, *static_offset.shape[1:])
        data["dynamic_offset"] = np.broadcast_to(np.zeros_like(static_offset), frames_shape)
    atomic_write(path, lambda handle: np.savez_compressed(handle, **data))


def _static_offset(arrays: FlameArrays, static_offset: Array | None) -> np.ndarray:
    """(V, 3); an offset fitted without teeth gets zero rows for them, as in GaussianAvatars."""
    if static_offset is None:
        return np.zeros_like(arrays.v_template)
    offset = _to_numpy(static_offset)
    if offset.ndim == 3 and offset.shape[0] == 1:
        offset = offset[0]
    if offset.ndim == 2 and offset.shape[1] == 3 and arrays.has_teeth and offset.shape[0] == (
        arrays.num_vertices - TEETH_VERTICES
    ):
        offset = np.pad(offset, ((0, TEETH_VERTICES), (0, 0)))
    if offset.shape != arrays.v_template.shape:
        raise InputError(
            f"static_offset has shape {_shape_text(offset.shape)}; the FLAME model {arrays.source} "
            f"has {arrays.num_vertices} vertices"
        )
    return offset


def _fit_columns(values: torch.Tensor, columns: int) -> torch.Tensor:
    """Truncate or zero-pad the last dimension to `columns` (FLAME ignores unused coefficients)."""
    if values.shape[-1] >= columns:
        return values[..., :columns]
    return torch.nn.functional.pad(values, (0, columns - values.shape[-1]))


class FlameRig(torch.nn.Module):
    """One avatar's FLAME (fixed shape and static offset): FlameParams of T frames → vertices."""

    def __init__(
        self,
        arrays: FlameArrays,
        shape: Array | None = None,
        static_offset: Array | None = None,
        chunk_frames: int = 256,
    ) -> None:
        super().__init__()
        self.n_expr = arrays.n_expr
        self.chunk_frames = chunk_frames
        self.source = arrays.source
        betas = torch.zeros(1, arrays.n_shape)
        if shape is not None:
            betas = _fit_columns(torch.from_numpy(_to_numpy(shape).reshape(1, -1)), arrays.n_shape)
        self.register_buffer("betas", betas)
        self.register_buffer("faces", torch.from_numpy(arrays.faces))
        # The static offset is part of the template, before shaping and LBS (as in GaussianAvatars).
        template = arrays.v_template + _static_offset(arrays, static_offset)
        self.register_buffer("v_template", torch.tensor(template))
        # Shape columns then expression columns, matching betas ++ expression in forward.
        self.register_buffer("shapedirs", torch.tensor(arrays.shapedirs))
        # smplx's layouts: posedirs (9 (J - 1), V * 3), parents with -1 at the root.
        self.register_buffer("posedirs", torch.tensor(arrays.posedirs.reshape(-1, arrays.posedirs.shape[-1]).T))
        self.register_buffer("J_regressor", torch.tensor(arrays.J_regressor))
        self.register_buffer("parents", torch.tensor([-1, *arrays.kintree_table[0, 1:]]))
        self.register_buffer("lbs_weights", torch.tensor(arrays.weights))
        eyelids = None  # (V, 3, 2), zero for vertices the file does not have (teeth), as VHAP pads them
        if arrays.eyelids is not None:
            eyelids = np.zeros((arrays.num_vertices, 3, 2), np.float32)
            eyelids[:len(arrays.eyelids)] = arrays.eyelids
            eyelids = torch.from_numpy(eyelids)
        self.register_buffer("eyelids", eyelids)

    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]

    @property
    def has_eyelids(self) -> bool:
        """Whether the model has eyelid blendshapes, which FlameParams.eyelids drive."""
        return self.eyelids is not None

    def forward(self, params: FlameParams) -> torch.Tensor:
        """Posed vertices (T, V, 3), computed in chunks of `chunk_frames` frames."""
        device = self.betas.device
        frames = {
            key: torch.as_tensor(getattr(params, key), dtype=torch.float32, device=device)
            for key in FRAME_KEYS
        }
        expr = _fit_columns(frames["expr"], self.n_expr)
        chunks = []
        for start in range(0, params.num_frames, self.chunk_frames):
            part = slice(start, min(start + self.chunk_frames, params.num_frames))
            pose = torch.cat([frames[key][part] for key in _POSE_KEYS], dim=1)  # axis-angle (B, 15)
            coefficients = torch.cat([self.betas.expand(pose.shape[0], -1), expr[part]], dim=1)
            vertices, _ = smplx.lbs.lbs(
                coefficients, pose, self.v_template, self.shapedirs, self.posedirs,
                self.J_regressor, self.parents, self.lbs_weights,
            )
            if self.eyelids is not None:  # after LBS, before the translation (VHAP's FLAME forward)
                vertices = vertices + torch.einsum("vck,bk->bvc", self.eyelids, frames["eyelids"][part])
            chunks.append(vertices + frames["translation"][part].unsqueeze(1))
        if not chunks:
            return torch.zeros(0, self.num_vertices, 3, device=device)
        return chunks[0] if len(chunks) == 1 else torch.cat(chunks)
