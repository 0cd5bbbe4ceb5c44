"""Facial regions as vertex masks: for the metrics (lip and upper-face vertex sets) and for the
correlation module, which models how the regions move together (CSTalk).

Two sources: FLAME's official region masks when the user has FLAME_masks.pkl, otherwise a
geometric partition of any FLAME-oriented head (+y up, face toward +z, +x the subject's left,
metres, human-sized) built from two landmarks found in its geometry: the nose tip and the eyes.
"""

from __future__ import annotations

import os

import numpy as np
from scipy.spatial import cKDTree

from common.errors import InputError
from models.rig.safe_pickle import load_pickle

REGION_NAMES = ("mouth", "jaw", "cheeks", "nose", "brows", "eyes", "forehead")
UPPER_FACE = ("brows", "eyes", "forehead")

_FRONT_DEPTH = 0.07  # metres behind the nose tip that still count as the face (without `moving`)
_SOCKET_RADIUS = 0.015  # metres: neighbourhood over which the eye sockets are the deepest hollows
_EYE_LATERAL = (0.022, 0.045)  # metres from the midline: where adult eye centres (±3.2 cm) lie
_EYE_STRIP = 0.008  # metres: half height of the horizontal strip through the socket's bottom
_COLUMN = 0.003  # metres: vertices within this of the frontmost one in their column are the front surface
_FLAME_KEYS = ("lips", "nose", "forehead", "eye_region", "face")


def _landmarks(template: np.ndarray, face: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Nose tip, the midpoint of the two eye centres and the eyes' half spacing e.

    The nose tip is the face's most forward point. The eyes are the deepest bowls of the front
    surface (what a frontal camera sees, so neither the eyeballs' backs nor the mouth's inside
    count) 1–9 cm above the nose tip and 2.2–4.5 cm beside it. A vertex's depth is how far it
    lies below the plane fitted to the front surface within 15 mm; the deepest bowl (depth
    averaged over 15 mm) gives each eye's height, the depth-weighted centre of the hollow
    vertices within 8 mm of that height its centre.
    """
    points = template[face]
    if len(points) == 0:
        raise InputError("facial regions: no face vertices (the moving mask is empty)")
    nose = points[np.argmax(points[:, 2])]
    window = template[(np.abs(template[:, 0] - nose[0]) < 0.1) & (template[:, 1] > nose[1] - 0.02)
                      & (template[:, 1] < nose[1] + 0.12)]
    columns = cKDTree(window[:, :2])
    front = np.array([window[n, 2].max() for n in columns.query_ball_point(window[:, :2], _COLUMN)])
    surface = window[window[:, 2] >= front - _COLUMN]
    lateral = np.abs(points[:, 0] - nose[0])
    candidates = points[(points[:, 1] > nose[1] + 0.01) & (points[:, 1] < nose[1] + 0.09)
                        & (lateral > _EYE_LATERAL[0]) & (lateral < _EYE_LATERAL[1])]
    nearby = cKDTree(surface[:, :2]).query_ball_point(candidates[:, :2], _COLUMN)
    candidates = candidates[[len(n) > 0 and c[2] >= surface[n, 2].max() - _COLUMN
                             for c, n in zip(candidates, nearby)]]
    if len(candidates) < 20:
        raise InputError("facial regions: too few face vertices above the nose tip to find the eyes")
    around = cKDTree(surface[:, :2]).query_ball_point(candidates[:, :2], _SOCKET_RADIUS)
    depth = np.array([_below_plane(point, surface[n]) for point, n in zip(candidates, around)])
    # a socket is a broad bowl, a crease (beside the nose) a narrow one: smooth, take the
    # deepest bowl's height, then the depth-weighted centre of the hollow at that height
    bowls = cKDTree(candidates[:, :2]).query_ball_point(candidates[:, :2], _SOCKET_RADIUS)
    smooth = np.array([depth[n].mean() for n in bowls])
    centres = []
    for side in (candidates[:, 0] > nose[0], candidates[:, 0] < nose[0]):
        bottom = candidates[np.flatnonzero(side)[np.argmin(smooth[side])]]
        hollow = side & (np.abs(candidates[:, 1] - bottom[1]) < _EYE_STRIP) & (depth < 0)
        weights = -depth[hollow]
        if weights.sum() <= 0:
            raise InputError("facial regions: found no eye sockets above the nose tip")
        centres.append(weights @ candidates[hollow] / weights.sum())
    half = 0.5 * (centres[0][0] - centres[1][0])
    if not 0.01 < half < 0.08:
        raise InputError(
            f"facial regions: the eyes found are {2 * half * 100:.1f} cm apart; the head must be "
            "human-sized, in metres, +y up and facing +z"
        )
    return nose, 0.5 * (centres[0] + centres[1]), float(half)


def _below_plane(point: np.ndarray, neighbours: np.ndarray) -> float:
    """How far `point` lies below (−z) the least-squares plane z = a + bx + cy of its neighbours."""
    design = np.c_[np.ones(len(neighbours)), neighbours[:, :2] - point[:2]]
    if len(neighbours) < 3 or np.linalg.matrix_rank(design) < 3:
        return 0.0
    return float(point[2] - np.linalg.lstsq(design, neighbours[:, 2], rcond=None)[0][0])


def geometric_regions(template: np.ndarray, moving: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """A partition of the face into REGION_NAMES: name → bool (V,) mask.

    The face is the `moving` vertices (those the data or bases displace, which keeps the skull,
    neck and eyeballs out) or, without them, every vertex within 7 cm behind the nose tip.
    With the nose tip N, the eye centres' midpoint E and the eyes' half spacing e (about 3.2 cm
    on adults, so the bands below fit both FLAME and the stylised demo head), by first match:
    forehead above E + 1.25e; brows above E + 0.55e; eyes above E − 0.45e (off the nose
    bridge, |x| ≥ 0.35e); nose above E − 0.45e (the bridge), or above N − 0.4e within 0.6e of
    the midline; mouth down to N − 1.8e within 0.9e of the midline; cheeks above N − 1.1e (the
    mouth line); jaw below.
    """
    template = np.asarray(template, dtype=np.float64)
    if template.ndim != 2 or template.shape[1] != 3 or len(template) == 0:
        raise InputError(f"facial regions: template has shape {template.shape}, expected (V, 3)")
    if moving is None:
        face = template[:, 2] > template[:, 2].max() - _FRONT_DEPTH
    else:
        face = np.asarray(moving, dtype=bool)
        if face.shape != (len(template),):
            raise InputError(f"facial regions: moving mask has shape {face.shape}, expected ({len(template)},)")
    nose, eyes, e = _landmarks(template, face)
    x = np.abs(template[:, 0] - nose[0])
    y = template[:, 1]
    rules = (
        ("forehead", y > eyes[1] + 1.25 * e),
        ("brows", y > eyes[1] + 0.55 * e),
        ("eyes", (y >= eyes[1] - 0.45 * e) & (x >= 0.35 * e)),
        ("nose", (y >= eyes[1] - 0.45 * e) | ((y >= nose[1] - 0.4 * e) & (x < 0.6 * e))),
        ("mouth", (y >= nose[1] - 1.8 * e) & (x < 0.9 * e)),
        ("cheeks", y >= nose[1] - 1.1 * e),
        ("jaw", np.ones(len(template), bool)),
    )
    regions, free = {}, face.copy()
    for name, rule in rules:
        regions[name] = free & rule
        free &= ~rule
    return {name: regions[name] for name in REGION_NAMES}


def load_flame_masks(pkl_path: str | os.PathLike, template: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Our regions from FLAME's official FLAME_masks.pkl (name → vertex indices).

    FLAME defines lips (our mouth, so the lip vertex error uses exactly FLAME's lips, as the
    field does), nose, eye_region and forehead, but no brows, cheeks or jaw: with the FLAME
    `template` those come from `geometric_regions` over FLAME's face mask, otherwise they stay
    empty. Regions are disjoint; by priority mouth, nose, brows, eyes, forehead, cheeks, jaw.
    """
    raw = load_pickle(pkl_path)
    if not isinstance(raw, dict) or not all(isinstance(value, np.ndarray) for value in raw.values()):
        raise InputError(f"{pkl_path}: not a FLAME masks file (a dict of vertex index arrays)")
    missing = [key for key in _FLAME_KEYS if key not in raw]
    if missing:
        raise InputError(f"{pkl_path}: FLAME masks lack {', '.join(missing)}")
    size = len(template) if template is not None else 1 + max(int(value.max(initial=0)) for value in raw.values())
    masks = {}
    for key in _FLAME_KEYS:
        index = raw[key].ravel()
        if index.dtype.kind not in "iu" or index.size == 0 or index.min() < 0 or index.max() >= size:
            raise InputError(f"{pkl_path}: mask {key!r} is not a set of vertex indices below {size}")
        masks[key] = np.zeros(size, bool)
        masks[key][index] = True
    if template is None:
        geometric = {name: np.zeros(size, bool) for name in REGION_NAMES}
    else:
        geometric = geometric_regions(template, masks["face"])
    claimed, regions = np.zeros(size, bool), {}
    for name, mask in (("mouth", masks["lips"]), ("nose", masks["nose"]), ("brows", geometric["brows"]),
                       ("eyes", masks["eye_region"]), ("forehead", masks["forehead"]),
                       ("cheeks", geometric["cheeks"]), ("jaw", geometric["jaw"])):
        regions[name] = mask & ~claimed
        claimed |= mask
    return {name: regions[name] for name in REGION_NAMES}


def _indices(regions: dict[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray:
    missing = [name for name in names if name not in regions]
    if missing:
        raise InputError(f"facial regions: no {', '.join(missing)} region")
    index = np.flatnonzero(np.logical_or.reduce([np.asarray(regions[name], bool) for name in names]))
    if index.size == 0:
        raise InputError(f"facial regions: the {' + '.join(names)} region is empty")
    return index


def lip_vertices(regions: dict[str, np.ndarray]) -> np.ndarray:
    """Vertex indices of the lip vertex error: the mouth region."""
    return _indices(regions, ("mouth",))


def upper_face_vertices(regions: dict[str, np.ndarray]) -> np.ndarray:
    """Vertex indices of the upper-face dynamics deviation: brows, eyes and forehead."""
    return _indices(regions, UPPER_FACE)
