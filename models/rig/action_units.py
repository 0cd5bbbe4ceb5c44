"""An action-unit meter on meshes: how far a pose moves the face's landmarks, read as FACS
action units (AUs) in millimetres.

FACS (Ekman & Friesen 1978; Ekman, Friesen & Hager 2002) describes a facial movement by the
action units that make it; EMFACS names the AU combinations of the basic emotions (happy
AU6+12, sad AU1+4+15, angry AU4+5+7+23, surprised AU1+2+5+26, fearful AU1+2+4+5+20+26,
disgusted AU9+15+16, contempt unilateral AU14). A FACS coder scores the appearance change each
AU makes; this meter measures the landmark displacement that appearance change is made of, so
a pose can be checked against the signature of the emotion it should show.

Every reading is a displacement of named landmark vertices (`LANDMARKS`, given per mesh as
vertex indices) between the neutral and the posed mesh, split along the head's axes: up,
forward and left (the subject's left). "Outward" is +left for a left landmark and −left for a
right one; "medial" is its opposite. Readings are one-sided (max(0, ·)), in mm, and two-sided
AUs are the mean of the two sides:

AU1  inner brow raiser (frontalis, pars medialis; raises the inner brow): rise of brow_inner.
AU2  outer brow raiser (frontalis, pars lateralis; raises the outer brow): rise of brow_outer.
AU4  brow lowerer (corrugator, depressor supercilii; lowers the brows and draws them together):
     length of brow_inner's (down, medial) displacement, each part one-sided, so with AU1
     (sad's oblique brows: raised and drawn together) the medial pull still reads.
AU5  upper lid raiser (levator palpebrae; widens the eye from above): rise of upper_lid.
AU6  cheek raiser (orbicularis oculi, pars orbitalis; lifts the cheek under the eye): rise of
     cheek.
AU7  lid tightener (orbicularis oculi, pars palpebralis; raises and tightens the lower lid):
     rise of lower_lid beyond the cheek's (AU6 lifts the lower lid with the cheek; AU7 alone).
AU9  nose wrinkler (levator labii superioris alaeque nasi; lifts the nose wings): rise of
     nose_wing.
AU10 upper lip raiser (levator labii superioris; lifts the upper lip's centre): rise of
     upper_lip.
AU12L, AU12R  lip corner puller (zygomaticus major; pulls the corner up and out): rise of
     lip_corner on each side, kept apart so a one-sided movement shows.
AU14 dimpler, unilateral (buccinator; tightens a corner, pulling it back): length of the
     difference between the left corner's displacement and the mirrored right corner's, so
     symmetric corner movements read 0 and a one-sided one reads its full length.
AU15 lip corner depressor (depressor anguli oris; pulls the corners down): drop of lip_corner.
AU16 lower lip depressor (depressor labii inferioris; pulls the lower lip down toward the
     chin): decrease of the lower_lip–chin distance (a jaw drop turns both and reads 0).
AU20 lip stretcher (risorius; pulls the corners outward): outward movement of lip_corner.
AU23 lip tightener/presser (orbicularis oris; AU23 and AU24 together, pressing the lips
     together): decrease of the vertical distance between upper_lip and lower_lip.
AU26 jaw drop (the jaw lowered): drop of chin.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from common.errors import InputError
from models.rig.blendshapes import BlendshapeModel

SIDES = ("left", "right")
LANDMARKS = ("upper_lip", "lower_lip", "chin",
             *(f"{name}_{side}" for name in ("lip_corner", "brow_inner", "brow_outer", "upper_lid", "lower_lid",
                                             "cheek", "nose_wing") for side in SIDES))
ACTION_UNITS = ("AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU10", "AU12L", "AU12R", "AU14",
                "AU15", "AU16", "AU20", "AU23", "AU26")


@dataclass(frozen=True)
class HeadAxes:
    """Unit directions of the head in mesh coordinates (FLAME's: +y up, +z forward, +x left)."""

    up: tuple[float, float, float] = (0.0, 1.0, 0.0)
    forward: tuple[float, float, float] = (0.0, 0.0, 1.0)
    left: tuple[float, float, float] = (1.0, 0.0, 0.0)

    def matrix(self) -> np.ndarray:
        """(3, 3) rows up, forward, left; refused unless orthonormal."""
        m = np.array([self.up, self.forward, self.left], np.float64)
        if not np.allclose(m @ m.T, np.eye(3), atol=1e-6):
            raise InputError(f"head axes {self}: up, forward and left must be orthogonal unit vectors")
        return m


def action_units(neutral: np.ndarray, posed: np.ndarray, landmarks: Mapping[str, int],
                 axes: HeadAxes = HeadAxes()) -> np.ndarray:
    """AU readings in mm, (..., len(ACTION_UNITS)) in that order, of `posed` (..., V, 3) against
    `neutral` (V, 3), both in metres; `landmarks` maps every name in LANDMARKS to a vertex."""
    missing = [name for name in LANDMARKS if name not in landmarks]
    if missing:
        raise InputError(f"action units: landmarks missing: {', '.join(missing)}")
    index = np.array([landmarks[name] for name in LANDMARKS])
    moved = (np.asarray(posed, np.float64)[..., index, :] - np.asarray(neutral, np.float64)[index]) * 1000.0
    local = moved @ axes.matrix().T  # (..., L, 3): up, forward, left in mm
    at = {name: local[..., i, :] for i, name in enumerate(LANDMARKS)}
    up = {name: v[..., 0] for name, v in at.items()}
    out = {name: v[..., 2] * (1 if name.endswith("_left") else -1) for name, v in at.items()}
    pos = lambda v: np.maximum(v, 0.0)  # noqa: E731

    def both(f) -> np.ndarray:
        return 0.5 * (f("left") + f("right"))

    mirrored_right = at["lip_corner_right"] * np.array([1.0, 1.0, -1.0])
    readings = {
        "AU1": both(lambda s: pos(up[f"brow_inner_{s}"])),
        "AU2": both(lambda s: pos(up[f"brow_outer_{s}"])),
        "AU4": both(lambda s: np.hypot(pos(-up[f"brow_inner_{s}"]), pos(-out[f"brow_inner_{s}"]))),
        "AU5": both(lambda s: pos(up[f"upper_lid_{s}"])),
        "AU6": both(lambda s: pos(up[f"cheek_{s}"])),
        "AU7": both(lambda s: pos(up[f"lower_lid_{s}"] - up[f"cheek_{s}"])),
        "AU9": both(lambda s: pos(up[f"nose_wing_{s}"])),
        "AU10": pos(up["upper_lip"]),
        "AU12L": pos(up["lip_corner_left"]),
        "AU12R": pos(up["lip_corner_right"]),
        "AU14": np.linalg.norm(at["lip_corner_left"] - mirrored_right, axis=-1),
        "AU15": both(lambda s: pos(-up[f"lip_corner_{s}"])),
        "AU16": pos(_distance(neutral, landmarks, "lower_lip", "chin") - _distance(posed, landmarks, "lower_lip", "chin")),
        "AU20": both(lambda s: pos(out[f"lip_corner_{s}"])),
        "AU23": pos(up["lower_lip"] - up["upper_lip"]),
        "AU26": pos(-up["chin"]),
    }
    return np.stack([readings[name] for name in ACTION_UNITS], -1)


def _distance(vertices: np.ndarray, landmarks: Mapping[str, int], a: str, b: str) -> np.ndarray:
    """Distance in mm between two landmarks of (..., V, 3) vertices in metres."""
    v = np.asarray(vertices, np.float64)
    return 1000.0 * np.linalg.norm(v[..., landmarks[a], :] - v[..., landmarks[b], :], axis=-1)


def emotion_action_units(model: BlendshapeModel, landmarks: Mapping[str, int], intensity: float = 1.0,
                         axes: HeadAxes = HeadAxes()) -> np.ndarray:
    """(E, len(ACTION_UNITS)) AUs of each emotion of a blendshape model at `intensity` on a
    silent face: the template moved by `BlendshapeModel.emotion_displacements` (expression and
    speech profiles on their blendshapes, the model's linear pose)."""
    return action_units(model.template, model.template + model.emotion_displacements(intensity), landmarks, axes)
