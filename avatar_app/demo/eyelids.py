"""Eyelid blendshapes of the demo head, in VHAP's layout (`l_eyelid`, `r_eyelid`: (V, 3) each).

A blink needs a per-eye eyelid motion in FLAME terms (models/rig/living.py). The demo head's
`eyelids_close` expression component already moves both upper lids down; each eye's blendshape is
that field on its own side of the face, scaled so that at 1 the eye is closed, which is what VHAP's
tracked `eyelids` value 1 means: the middle of the upper lid travels `CLOSE_PAST` times the eye's
height, so it meets the lower lid at 1 / CLOSE_PAST and the rest of the lid line, whose corners
move less, has closed too by 1 (closing the middle at exactly 1 left a sliver of eyeball at one corner).
"""
from __future__ import annotations

import numpy as np

from avatar_app.demo.head import EXPRESSIONS, EYE_CENTRES, EYE_HALF, N_SHAPE, PARTS, DemoHead

CLOSE_PAST = 1.3


def demo_eyelids(head: DemoHead) -> dict[str, np.ndarray]:
    """{"l_eyelid", "r_eyelid"}: float32 (V, 3) displacements closing the left (+x) and right eye."""
    v = head.arrays["v_template"]
    field = head.arrays["shapedirs"][:, :, N_SHAPE + EXPRESSIONS.index("eyelids_close")]
    face = (head.vertex_part == PARTS.index("head")) & (v[:, 2] > 0)
    shapes = {}
    for key, side, (ex, ey) in (("l_eyelid", 1, EYE_CENTRES[0]), ("r_eyelid", -1, EYE_CENTRES[1])):
        own = face & (np.sign(v[:, 0]) == side)
        lid = np.flatnonzero(own)[np.argmin(np.hypot(v[own, 0] - ex, v[own, 1] - (ey + EYE_HALF[1])))]
        drop = -float(field[lid, 1])
        if drop <= 0:
            raise ValueError("the demo head's eyelids_close component does not lower the upper lid")
        shapes[key] = (np.where(own[:, None], field, 0.0) * (CLOSE_PAST * 2 * EYE_HALF[1] / drop)).astype(np.float32)
    return shapes
