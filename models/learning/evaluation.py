"""Evaluation of a blendshape model and its driver on held-out clips (metrics: docs/architecture.md §Packages).

Every driver is judged in vertex space, so models with different blendshapes (a learned model,
the hand-made demo model) are compared on the same footing: predicted motion = the model's
displacements of the driver's weights, against the clip's true vertices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from common.errors import InputError
from models.learning.datasets import MeshSequence
from models.learning.metrics import cross_domain_leakage, fdd, lve, principal_angles
from models.rig.blendshapes import BlendshapeModel
from models.rig.regions import geometric_regions, lip_vertices, upper_face_vertices

Drive = Callable[[MeshSequence], tuple[np.ndarray, np.ndarray]]
"""A driver under test: clip (its audio, emotion label and intensity) → (speech, expression) weights."""


def intensities(model: BlendshapeModel, sequence: MeshSequence) -> np.ndarray:
    """(T, E) per-frame emotion intensities of a clip's label (zeros for neutral)."""
    out = np.zeros((len(sequence.vertices), len(model.emotion_names)), np.float32)
    if sequence.emotion is not None:
        if sequence.emotion not in model.emotion_names:
            raise InputError(f"{sequence.name}: emotion '{sequence.emotion}' is not one of the model's "
                             f"{', '.join(model.emotion_names)}")
        out[:, model.emotion_names.index(sequence.emotion)] = sequence.intensity
    return out


def predicted_vertices(model: BlendshapeModel, drive: Drive, sequence: MeshSequence) -> np.ndarray:
    """(T, V, 3): the clip's template moved by the model's displacements of the driver's weights."""
    speech, expression = drive(sequence)
    return sequence.template + model.displacements(speech, expression)


def face_metrics(model: BlendshapeModel, drive: Drive, sequences: Sequence[MeshSequence],
                 regions: dict[str, np.ndarray]) -> dict[str, float]:
    """LVE (pooled over all frames) and FDD over talking clips, in mm² (metres² × 1e6)."""
    talking = [s for s in sequences if s.audio is not None]
    if not talking:
        raise InputError("evaluation: no clip with audio to drive")
    predictions = [predicted_vertices(model, drive, s) for s in talking]
    truth = [s.vertices for s in talking]
    lips, upper = lip_vertices(regions), upper_face_vertices(regions)
    return {
        "lve_mm2": 1e6 * lve(np.concatenate(predictions), np.concatenate(truth), lips),
        "fdd_mm2": 1e6 * fdd(predictions, truth, upper, [s.template for s in talking]),
    }


def least_squares_weights(model: BlendshapeModel, sequence: MeshSequence) -> tuple[np.ndarray, np.ndarray]:
    """The model's (speech, expression) weights that best reproduce a clip's displacements."""
    bases = np.concatenate([model.speech_basis, model.expression_basis]).reshape(
        len(model.speech_names) + len(model.expression_names), -1).astype(np.float64)
    target = sequence.displacements.reshape(len(sequence.vertices), -1).astype(np.float64)
    weights = np.linalg.lstsq(bases.T, target.T, rcond=None)[0].T
    return weights[:, :len(model.speech_names)], weights[:, len(model.speech_names):]


def leakage(model: BlendshapeModel, speech: Sequence[MeshSequence],
            expression: Sequence[MeshSequence]) -> dict[str, float]:
    """Cross-domain energy of the model's least-squares decomposition: Σw_E²/Σw_A² on neutral
    talking and Σw_A²/Σw_E² on expression clips. A model whose sets mix the domains needs
    large cross-domain weights; the planted truth has only its planted secondary motion."""
    out = {}
    for key, group, own in (("speech_leakage", speech, 0), ("expression_leakage", expression, 1)):
        if group:
            pairs = [least_squares_weights(model, s) for s in group]
            own_w = np.concatenate([p[own] for p in pairs])
            cross_w = np.concatenate([p[1 - own] for p in pairs])
            out[key] = cross_domain_leakage(cross_w, own_w)
    return out


def subspace_angles(model: BlendshapeModel, planted: BlendshapeModel) -> dict[str, float]:
    """Largest principal angle (degrees) between learned and planted speech / expression subspaces."""
    def columns(basis: np.ndarray) -> np.ndarray:
        return basis.reshape(len(basis), -1).T

    return {
        "speech_angle_deg": float(principal_angles(columns(model.speech_basis), columns(planted.speech_basis)).max()),
        "expression_angle_deg": float(principal_angles(columns(model.expression_basis),
                                                       columns(planted.expression_basis)).max()),
    }


def evaluation_regions(sequences: Sequence[MeshSequence]) -> dict[str, np.ndarray]:
    """Lip and upper-face regions of the evaluation data's own template, so every model is
    measured on the same vertices."""
    return geometric_regions(sequences[0].template)
