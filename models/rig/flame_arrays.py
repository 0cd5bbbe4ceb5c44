"""A validated FLAME model as plain arrays: what `flame` loads and `teeth` extends."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FlameArrays:
    """A validated FLAME model as plain arrays (optionally with GaussianAvatars' teeth)."""

    v_template: np.ndarray  # (V, 3) float32
    faces: np.ndarray  # (F, 3) int64
    shapedirs: np.ndarray  # (V, 3, n_shape + n_expr) float32: shape columns, then expression
    posedirs: np.ndarray  # (V, 3, 9 * (J - 1)) float32
    J_regressor: np.ndarray  # (J, V) float32, dense
    weights: np.ndarray  # (V, J) float32
    kintree_table: np.ndarray  # (2, J) int64
    n_shape: int
    n_expr: int
    source: str
    has_teeth: bool = False
    # (V₀, 3, 2) eyelid blendshapes [left, right] of the file's own V₀ vertices (teeth not counted),
    # added after LBS per unit of FlameParams.eyelids (VHAP, metrical-tracker); None: none.
    eyelids: np.ndarray | None = None

    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]

    @property
    def num_faces(self) -> int:
        return self.faces.shape[0]
