"""GaussianAvatars' teeth for 5023-vertex FLAME (docs/architecture.md §Formats).

GaussianAvatars avatars bind Gaussians to faces 9976..10143, which exist only on FLAME with
its teeth added; the vertices, their order and every triangle's vertex order must match
theirs or those Gaussians land in the wrong place or frame.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from common.errors import InputError
from models.rig.flame_arrays import FlameArrays

FLAME_VERTICES = 5023
TEETH_VERTICES = 120
NECK_JOINT = 1
JAW_JOINT = 2

# Outer lip rings, from the subject's +x mouth corner through the midline to -x.
LIP_RING_UPPER = (1713, 1715, 1716, 1735, 1696, 1694, 1657, 3543, 2774, 2811, 2813, 2850, 2833, 2832, 2830)
LIP_RING_LOWER = (1576, 1577, 1773, 1774, 1795, 1802, 1865, 3503, 2948, 2905, 2898, 2881, 2880, 2713, 2712)
RING = len(LIP_RING_UPPER)

# Append order of the eight 15-vertex rows; a row's local index base is 15 × its position.
ROWS = ("ur", "lr", "ue", "le", "urb", "ueb", "lrb", "leb")
UPPER_ROWS = ("ur", "ue", "urb", "ueb")

# Six strips of 28 triangles in face order (faces 9976..10143), two per column i = 0..13, in
# i order; the diagonal flips at the midline. Corners are read as "<row>_i" or "<row>_i+1".
STRIPS = (
    # strip          i <= 6                                        i >= 7
    ("upper front", "ur_i ue_i+1 ue_i,    ur_i ur_i+1 ue_i+1",    "ur_i ur_i+1 ue_i,    ur_i+1 ue_i+1 ue_i"),
    ("upper back",  "urb_i ueb_i ueb_i+1, urb_i ueb_i+1 urb_i+1", "urb_i ueb_i urb_i+1, urb_i+1 ueb_i ueb_i+1"),
    ("upper bite",  "ueb_i ue_i ueb_i+1,  ueb_i+1 ue_i ue_i+1",   "ueb_i ue_i ue_i+1,   ueb_i ue_i+1 ueb_i+1"),
    ("lower front", "le_i le_i+1 lr_i,    le_i+1 lr_i+1 lr_i",    "le_i lr_i+1 lr_i,    le_i le_i+1 lr_i+1"),
    ("lower back",  "lrb_i leb_i+1 leb_i, lrb_i lrb_i+1 leb_i+1", "lrb_i lrb_i+1 leb_i, lrb_i+1 leb_i+1 leb_i"),
    ("lower bite",  "leb_i leb_i+1 le_i,  leb_i+1 le_i+1 le_i",   "leb_i le_i+1 le_i,   leb_i leb_i+1 le_i+1"),
)
MIDLINE = 7


def _corner(token: str, i: int) -> int:
    """Local index of a corner such as "ue_i+1" in column i."""
    row, column = token.split("_")
    return RING * ROWS.index(row) + i + (1 if column == "i+1" else 0)


def teeth_faces(first_vertex: int = FLAME_VERTICES) -> np.ndarray:
    """The 168 teeth triangles (int64), vertex indices offset by `first_vertex`."""
    faces = []
    for _strip, left, right in STRIPS:
        for i in range(RING - 1):
            for triangle in (left if i < MIDLINE else right).split(","):
                faces.append([first_vertex + _corner(token, i) for token in triangle.split()])
    return np.asarray(faces, dtype=np.int64)


def teeth_vertices(v_template: np.ndarray) -> np.ndarray:
    """The 120 teeth vertices (float64) placed behind the lips of `v_template`."""
    upper = v_template[list(LIP_RING_UPPER)].astype(np.float64)
    lower = v_template[list(LIP_RING_LOWER)].astype(np.float64)
    md = np.linalg.norm(upper - lower, axis=1).mean()
    middle = (upper + lower) / 2
    middle[:, 1] = middle[:, 1].mean()
    middle[:, 2] -= 1.5 * md
    up, back = np.array([0.0, md, 0.0]), np.array([0.0, 0.0, md])
    rows = {"ue": middle + 0.1 * up, "le": middle - 0.1 * up - 0.4 * back}
    rows["ur"] = rows["ue"] + 2 * up
    rows["lr"] = rows["le"] - 2 * up
    for front in ("ur", "ue", "lr", "le"):
        rows[front + "b"] = rows[front] - back
    return np.concatenate([rows[name] for name in ROWS])


def add_teeth(arrays: FlameArrays) -> FlameArrays:
    """Return a copy of 5023-vertex FLAME with GaussianAvatars' teeth (V 5143, F 10144)."""
    if arrays.has_teeth or arrays.num_vertices != FLAME_VERTICES:
        raise InputError(
            f"{arrays.source}: teeth need 5023-vertex FLAME without teeth "
            f"(this model has {arrays.num_vertices} vertices, teeth={arrays.has_teeth})"
        )
    ring_mean = (arrays.shapedirs[list(LIP_RING_UPPER)] + arrays.shapedirs[list(LIP_RING_LOWER)]) / 2
    shapedirs = np.zeros((TEETH_VERTICES, *arrays.shapedirs.shape[1:]), np.float32)
    shapedirs[..., : arrays.n_shape] = np.tile(ring_mean[..., : arrays.n_shape], (len(ROWS), 1, 1))
    weights = np.zeros((TEETH_VERTICES, arrays.weights.shape[1]), np.float32)
    for position, row in enumerate(ROWS):
        joint = NECK_JOINT if row in UPPER_ROWS else JAW_JOINT
        weights[RING * position : RING * (position + 1), joint] = 1.0
    return dataclasses.replace(
        arrays,
        v_template=np.concatenate([arrays.v_template, teeth_vertices(arrays.v_template).astype(np.float32)]),
        faces=np.concatenate([arrays.faces, teeth_faces(arrays.num_vertices)]),
        shapedirs=np.concatenate([arrays.shapedirs, shapedirs]),
        posedirs=np.concatenate(
            [arrays.posedirs, np.zeros((TEETH_VERTICES, *arrays.posedirs.shape[1:]), np.float32)]
        ),
        J_regressor=np.concatenate(
            [arrays.J_regressor, np.zeros((arrays.J_regressor.shape[0], TEETH_VERTICES), np.float32)], axis=1
        ),
        weights=np.concatenate([arrays.weights, weights]),
        has_teeth=True,
    )
