"""The demo head's action-unit landmarks (models/rig/action_units.py LANDMARKS) as vertex indices.

Found from the head's own layout, not stored: each landmark is the head-surface vertex nearest
to the named face point of the same name (`head.face_points`: brows, lids, cheeks, nose
wings and lips placed from EYE_CENTRES, EYE_HALF, MOUTH_Y, … on the front surface), so they
follow any change of the head's geometry. The lip corners and the upper lip are taken from the
vertices above the lip line (which the jaw does not move), the lower lip and the chin from those
below it.
"""
from __future__ import annotations

import numpy as np

from avatar_app.demo.head import MOUTH_Y, PARTS, face_points
from models.rig.action_units import LANDMARKS


def demo_landmarks(vertices: np.ndarray, vertex_part: np.ndarray) -> dict[str, int]:
    """Landmark name → index into `vertices` (the demo head's rest-pose vertices, (V, 3), with
    `vertex_part` (V,) indexing head.PARTS)."""
    on_head = np.flatnonzero(vertex_part == PARTS.index("head"))
    surface = vertices[on_head]
    points = face_points(surface)
    above = surface[:, 1] > MOUTH_Y
    found = {}
    for name in LANDMARKS:
        allowed = np.ones(len(surface), bool)
        if name.startswith(("lip_corner", "upper_lip")):
            allowed = above
        elif name in ("lower_lip", "chin"):
            allowed = ~above
        distance = np.linalg.norm(surface - points[name], axis=1)
        found[name] = int(on_head[np.argmin(np.where(allowed, distance, np.inf))])
    return found
