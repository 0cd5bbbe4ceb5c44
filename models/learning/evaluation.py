"""Evaluation of a blendshape model and its driver on held-out clips (metrics: docs/architecture.md §Packages).

Every driver is judged in vertex space, so models with different blendshapes (a learned model,
the hand-made demo model) are compared on the same footing: predicted motion = the model's
displacements of the driver's weights, against the clip's true vertices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.signal import butter, sosfiltfilt

from common.errors import InputError
from models.audio.sources import Audio, read_all
from models.audio.synth_voice import SPEECH_NAMES
from models.learning.datasets import MeshSequence
from models.learning.espeak_corpus import is_bilabial
from models.learning.metrics import (
    closure_rate,
    cross_domain_leakage,
    envelope_correlation,
    fdd,
    lve,
    principal_angles,
)
from models.learning.synthetic_corpus import check_planted
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


CLOSED_LIPS = 0.5  # lips_closed weight at which the lips count as closed (1 = the planted closure)
ENVELOPE_WINDOW_S = 0.04  # the speech envelope: RMS over this window centred on each frame
F2_BAND_HZ = (800.0, 2200.0)  # the band whose envelope follows the mouth's opening best (Grant & Seitz 2000)


def speech_envelope(audio: Audio, fps: float, frames: int, band: tuple[float, float] | None = None) -> np.ndarray:
    """(frames,) RMS amplitude of the audio (band-passed to `band` Hz if given: 4th-order
    Butterworth, zero phase) over `ENVELOPE_WINDOW_S` centred on each frame time."""
    samples = read_all(audio).astype(np.float64)
    if band is not None:
        samples = sosfiltfilt(butter(4, band, btype="bandpass", fs=audio.sample_rate, output="sos"), samples)
    half = max(1, int(round(ENVELOPE_WINDOW_S * audio.sample_rate / 2)))
    energy = np.concatenate([[0.0], np.cumsum(samples * samples)])
    centre = np.round(np.arange(frames) * audio.sample_rate / fps).astype(np.int64)
    lo, hi = np.clip(centre - half, 0, len(samples)), np.clip(centre + half, 0, len(samples))
    return np.sqrt((energy[hi] - energy[lo]) / (2 * half))


def measured_visemes(planted: BlendshapeModel, vertices: np.ndarray, template: np.ndarray) -> np.ndarray:
    """(T, 4) jaw_open, lips_wide, lips_round, lips_closed of any predicted motion: its least-squares
    weights on the planted model's speech and expression blendshapes, so drivers with different
    blendshapes are read on one scale (the planted truth reads as itself)."""
    check_planted(planted)
    moving = MeshSequence(name="prediction", vertices=vertices, template=template, fps=1.0)
    return least_squares_weights(planted, moving)[0]


def lipsync_metrics(planted: BlendshapeModel, model: BlendshapeModel, drive: Drive, sequences: Sequence[MeshSequence],
                    phonemes: dict[str, tuple[tuple[str, float, float], ...]]) -> dict[str, float]:
    """On talking clips with planted truth and their phonemes: LVE and FDD (mm²); the correlation
    of the jaw opening with the speech envelope, wideband and in the F2 band (median and lowest
    over clips); and the share of bilabial phonemes during which the lips close (`closure_rate`;
    closed = measured lips_closed ≥ `CLOSED_LIPS` and above jaw_open)."""
    talking = [s for s in sequences if s.audio is not None and s.name in phonemes]
    if not talking:
        raise InputError("evaluation: no talking clip with phoneme timings")
    driven = {s.name: drive(s) for s in talking}  # each clip driven once, for every metric

    def once(sequence: MeshSequence) -> tuple[np.ndarray, np.ndarray]:
        return driven[sequence.name]

    row = face_metrics(model, once, talking, evaluation_regions(talking))
    correlations: dict[str, list[float]] = {"jaw_envelope_r": [], "jaw_f2_envelope_r": []}
    hits = total = 0
    jaw, lips = SPEECH_NAMES.index("jaw_open"), SPEECH_NAMES.index("lips_closed")
    for sequence in talking:
        visemes = measured_visemes(planted, predicted_vertices(model, once, sequence), sequence.template)
        for key, band in (("jaw_envelope_r", None), ("jaw_f2_envelope_r", F2_BAND_HZ)):
            envelope = speech_envelope(sequence.audio, sequence.fps, len(visemes), band)
            correlations[key].append(envelope_correlation(visemes[:, jaw], envelope))
        closed = (visemes[:, lips] >= CLOSED_LIPS) & (visemes[:, lips] > visemes[:, jaw])
        bilabials = [(start, end) for name, start, end in phonemes[sequence.name] if is_bilabial(name)]
        if bilabials:
            hits += round(closure_rate(closed, bilabials, sequence.fps) * len(bilabials))
            total += len(bilabials)
    for key, values in correlations.items():
        row[f"{key}_median"], row[f"{key}_min"] = float(np.median(values)), float(np.min(values))
    row["bilabial_closed_pct"] = 100.0 * hits / total if total else float("nan")
    return row
