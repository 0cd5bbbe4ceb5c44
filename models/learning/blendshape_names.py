"""Names for learned blendshapes that say what they do.

With a reference model (the planted model of a synthetic corpus) each learned blendshape is
matched one-to-one to a reference blendshape (Hungarian matching on the cosine similarity of
their displacement fields) and takes its name when the similarity reaches `MATCH`. Otherwise
(real data, or no good match) it is named by region and motion: its displacement field is
compared with a small set of named motion fields (`agreement`: the share of its displacement,
by magnitude, that moves along the field's direction), each zero outside one facial region
(`MOTIONS`: e.g. `jaw_open` moves the jaw region and the mouth below its centre down and back,
`brows_up` moves the brows up, `eyes_wide` moves each eye's vertices away from its centre line),
again one-to-one; a motion whose agreement is below `FIT` is not used, and the blendshape is then
`<region>_<n>` after the region that holds most of its motion. A blendshape whose motion lies
mostly (over 75 %) on one side of the face gets `_left` or `_right` (the subject's; +x is the
subject's left in FLAME). Names are unique across the whole model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

MATCH = 0.9  # cosine with a reference blendshape that earns its name
FIT = 0.3  # agreement with a named motion field that earns its name
_SIDE = 0.75  # share of the motion on one side of the face that makes a name one-sided

Field = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (points (N, 3), centre (3,)) → motion (N, 3)


def _up(p: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.tile([0.0, 1.0, 0.0], (len(p), 1))


def _apart(p: np.ndarray, c: np.ndarray) -> np.ndarray:  # away from the horizontal centre line
    return np.c_[np.zeros(len(p)), np.sign(p[:, 1] - c[1]), np.zeros(len(p))]


def _outward(p: np.ndarray, c: np.ndarray) -> np.ndarray:  # away from the midline
    return np.c_[np.sign(p[:, 0] - c[0]), np.zeros(len(p)), np.zeros(len(p))]


def _forward(p: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.tile([0.0, 0.0, 1.0], (len(p), 1))


def _lower(field: Field) -> Field:
    return lambda p, c: field(p, c) * (p[:, 1] < c[1])[:, None]


def _upper(field: Field) -> Field:
    return lambda p, c: field(p, c) * (p[:, 1] >= c[1])[:, None]


def _corners(field: Field) -> Field:  # the outer 40 % of the region's width
    return lambda p, c: field(p, c) * (np.abs(p[:, 0] - c[0]) > 0.6 * np.abs(p[:, 0] - c[0]).max())[:, None]


def _inner(field: Field) -> Field:  # the inner half of the region's width
    return lambda p, c: field(p, c) * (np.abs(p[:, 0] - c[0]) < 0.5 * np.abs(p[:, 0] - c[0]).max())[:, None]


def _neg(field: Field) -> Field:
    return lambda p, c: -field(p, c)


def _sum(*fields: Field) -> Field:
    return lambda p, c: sum(f(p, c) for f in fields)


# name → (regions it acts on, its motion field on their vertices)
MOTIONS: dict[str, tuple[tuple[str, ...], Field]] = {
    "jaw_open": (("jaw", "mouth"), _lower(_neg(_sum(_up, _forward)))),  # down and back, about the hinge
    "lips_closed": (("mouth",), _neg(_apart)),
    "lips_wide": (("mouth",), _outward),
    "lips_round": (("mouth",), _sum(_neg(_outward), _forward)),
    "mouth_corners_up": (("mouth",), _corners(_up)),
    "mouth_corners_down": (("mouth",), _corners(_neg(_up))),
    "upper_lip_up": (("mouth",), _upper(_up)),
    "cheeks_up": (("cheeks",), _up),
    "cheeks_out": (("cheeks",), _forward),
    "nose_wrinkle": (("nose",), _up),
    "brows_up": (("brows", "forehead"), _up),
    "brows_down": (("brows",), _neg(_up)),
    "brows_inner_up": (("brows",), _inner(_up)),
    "brows_together": (("brows",), _neg(_outward)),
    "eyes_wide": (("eyes",), _apart),
    "eyes_squint": (("eyes",), _neg(_apart)),
}


def _unit(rows: np.ndarray) -> np.ndarray:
    flat = rows.reshape(len(rows), -1).astype(np.float64)
    return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-30)


def _assign(similarity: np.ndarray, threshold: float) -> dict[int, int]:
    """Row → column of a one-to-one assignment maximising the total similarity, kept where ≥ threshold."""
    if similarity.size == 0:
        return {}
    rows, cols = linear_sum_assignment(-similarity)
    return {int(r): int(c) for r, c in zip(rows, cols) if similarity[r, c] >= threshold}


def match_reference(bases: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of `bases` (K, V, 3): the index of its one-to-one match in `reference` (R, V, 3)
    and their cosine similarity (−1 where it has no match)."""
    similarity = _unit(bases) @ _unit(reference).T
    index, cosine = np.full(len(bases), -1), np.full(len(bases), -1.0)
    rows, cols = linear_sum_assignment(-similarity)
    index[rows], cosine[rows] = cols, similarity[rows, cols]
    return index, cosine


def face_midline(template: np.ndarray, regions: Mapping[str, np.ndarray]) -> float:
    """x of the face's midline: the median x of the vertices in any region."""
    return float(np.median(template[np.logical_or.reduce([np.asarray(m, bool) for m in regions.values()]), 0]))


def motion_fields(template: np.ndarray, regions: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """name → (V, 3) motion field of every MOTIONS entry whose regions are not empty; the centre
    is the regions' mean point, per side of the face for the eyes."""
    out = {}
    midline = face_midline(template, regions)
    for name, (names, field) in MOTIONS.items():
        mask = np.logical_or.reduce([np.asarray(regions[r], bool) for r in names if r in regions] or [np.zeros(0, bool)])
        if mask.size == 0 or not mask.any():
            continue
        motion = np.zeros(template.shape)
        for side in (template[:, 0] >= midline, template[:, 0] < midline) if names == ("eyes",) else (True,):
            part = mask & side
            if part.any():
                centre = template[part].mean(axis=0)
                centre[0] = midline
                motion[part] = field(template[part], centre)
        if np.any(motion):
            out[name] = motion
    return out


def agreement(basis: np.ndarray, field: np.ndarray) -> float:
    """Σ_v d_v·f̂_v / Σ_v |d_v|: the share of the displacement `basis` (V, 3) (by magnitude) that
    moves along the motion field's direction f̂ (unit where the field is non-zero, else 0)."""
    length = np.linalg.norm(field, axis=1, keepdims=True)
    direction = np.divide(field, length, out=np.zeros_like(field), where=length > 0)
    return float((basis * direction).sum() / max(np.linalg.norm(basis, axis=1).sum(), 1e-30))


def _side(basis: np.ndarray, template: np.ndarray, midline: float) -> str:
    energy = np.square(basis).sum(axis=1)
    left = energy[template[:, 0] > midline].sum() / max(energy.sum(), 1e-30)
    return "_left" if left > _SIDE else "_right" if left < 1 - _SIDE else ""


def name_blendshapes(bases: np.ndarray, template: np.ndarray, regions: Mapping[str, np.ndarray],
                     reference: tuple[np.ndarray, Sequence[str]] | None = None,
                     taken: Sequence[str] = ()) -> tuple[str, ...]:
    """Unique names for `bases` (K, V, 3) on `template` (V, 3): the reference's (its bases and
    names) where a one-to-one match reaches MATCH, else a named motion reaching FIT, else
    `<region>_<n>`; none of them in `taken`."""
    names: list[str | None] = [None] * len(bases)
    used = set(taken)
    if reference is not None:
        index, cosine = match_reference(bases, reference[0])
        for k in range(len(bases)):
            if cosine[k] >= MATCH and reference[1][index[k]] not in used:
                names[k] = reference[1][index[k]]
                used.add(names[k])
    fields = motion_fields(template, regions)
    midline = face_midline(template, regions)
    open_rows = [k for k in range(len(bases)) if names[k] is None]
    labels = [n for n in fields if n not in used]
    if open_rows and labels:
        similarity = np.array([[agreement(bases[k], fields[n]) for n in labels] for k in open_rows])
        for r, c in _assign(similarity, FIT).items():
            name = labels[c] + _side(bases[open_rows[r]], template, midline)
            if name not in used:
                names[open_rows[r]] = name
                used.add(name)
    for k in range(len(bases)):
        if names[k] is None:
            energy = {r: float(np.square(bases[k][np.asarray(m, bool)]).sum()) for r, m in regions.items()}
            region = max(energy, key=energy.get) if energy else "face"
            n = 1
            while f"{region}_{n}" in used:
                n += 1
            names[k] = f"{region}_{n}"
            used.add(names[k])
    return tuple(names)
