"""The demo's blendshape model: named speech and expression blendshapes on the demo head.

Each blendshape is defined as a pose of the demo head's FLAME (expression components and
jaw), turned into vertex displacements through the FLAME forward pass; its linear FLAME
mapping is then *fitted* back from those displacements by `models.rig.mapping`, exactly as for
learned blendshapes, so the stored mapping error is a real measurement.
"""
from __future__ import annotations

import numpy as np
import torch

from avatar_app.demo.head import EXPRESSIONS
from models.rig.blendshapes import BlendshapeModel
from models.rig.mapping import MappingRig, fit_flame_mapping

# name → ({expression component: weight}, jaw opening in radians)
SPEECH = {
    "jaw_open": ({}, 0.30),
    "lips_wide": ({"lip_stretch": 0.7, "upper_lip_raise": 0.3}, 0.05),
    "lips_round": ({"lips_round": 1.0}, 0.06),
    "lips_closed": ({"lips_press": 1.0}, 0.0),
}
# One FACS action unit each (Ekman & Friesen 1978; see head._expression_dirs), jaw_drop AU26.
EXPRESSION = {
    "smile": ({"smile": 1.0}, 0.0),                          # AU12
    "cheek_raise": ({"cheek_raise": 1.0}, 0.0),              # AU6
    "frown": ({"frown": 1.0}, 0.0),                          # AU15
    "brow_inner_up": ({"brow_inner_up": 1.0}, 0.0),          # AU1
    "brow_outer_up": ({"brow_outer_up": 1.0}, 0.0),          # AU2
    "brow_lower": ({"brow_lower": 1.0}, 0.0),                # AU4
    "eyes_wide": ({"eyes_wide": 1.0}, 0.0),                  # AU5
    "lid_tighten": ({"lower_lid_raise": 1.0}, 0.0),          # AU7
    "nose_wrinkle": ({"nose_wrinkle": 1.0}, 0.0),            # AU9
    "upper_lip_raise": ({"upper_lip_raise": 1.0}, 0.0),      # AU10
    "lower_lip_depress": ({"lower_lip_depress": 1.0}, 0.0),  # AU16
    "lip_stretch": ({"lip_stretch": 1.0}, 0.0),              # AU20
    "lips_tighten": ({"lips_tighten": 1.0}, 0.0),            # AU23/24
    "dimple_left": ({"dimple_left": 1.0}, 0.0),              # AU14, left side only
    "jaw_drop": ({}, 0.14),                                   # AU26
}
# EMFACS signatures (Friesen & Ekman 1983) at intensity 1; their AU readings on the demo head
# are in the README and asserted by tests/test_action_units.py.
EMOTIONS = {
    "happy": {"smile": 1.0, "cheek_raise": 1.0},
    "sad": {"brow_inner_up": 1.3, "brow_lower": 0.5, "frown": 1.0},
    "angry": {"brow_lower": 1.0, "eyes_wide": 0.8, "lid_tighten": 1.0, "lips_tighten": 1.5},
    "surprised": {"brow_inner_up": 1.0, "brow_outer_up": 1.0, "eyes_wide": 1.0, "jaw_drop": 1.0},
    "fearful": {"brow_inner_up": 1.0, "brow_outer_up": 0.6, "brow_lower": 0.6, "eyes_wide": 1.0,
                "lip_stretch": 0.8, "jaw_drop": 0.5},
    "disgusted": {"nose_wrinkle": 1.0, "upper_lip_raise": 0.8, "frown": 0.6, "lower_lip_depress": 0.8},
    "contempt": {"dimple_left": 1.0},
}


def _flame_rows(table: dict) -> np.ndarray:
    rows = np.zeros((len(table), 103), np.float32)
    for i, (components, jaw) in enumerate(table.values()):
        for name, w in components.items():
            rows[i, EXPRESSIONS.index(name)] = w
        rows[i, 100] = jaw
    return rows


def build_demo_blendshapes(flame: MappingRig) -> BlendshapeModel:
    """Displacement bases from the FLAME poses above, with their FLAME mapping fitted back."""
    forward, neutral = flame.forward, flame.neutral
    fits, bases = [], []
    for table in (SPEECH, EXPRESSION):
        rows = torch.from_numpy(_flame_rows(table))
        with torch.no_grad():
            basis = (forward(rows[:, :100], rows[:, 100:]) - torch.from_numpy(neutral)).numpy()
        bases.append(basis)
        fits.append(fit_flame_mapping(basis, forward, neutral))
    profiles = np.array([[EMOTIONS[e].get(name, 0.0) for name in EXPRESSION] for e in EMOTIONS], np.float32)
    return BlendshapeModel(
        speech_names=tuple(SPEECH), expression_names=tuple(EXPRESSION), emotion_names=tuple(EMOTIONS),
        speech_basis=bases[0], expression_basis=bases[1],
        speech_to_flame=fits[0].coeffs, expression_to_flame=fits[1].coeffs,
        emotion_profiles=profiles, template=neutral,
        speech_mapping_error=fits[0].error, expression_mapping_error=fits[1].error,
        flame_fingerprint=flame.fingerprint, flame_name=flame.name, source="demo blendshapes",
    )
