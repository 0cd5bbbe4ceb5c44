"""Evaluation metrics: the field's lip vertex error and upper-face dynamics deviation, and our
measures of how cleanly speech and expression separate and how faithfully blendshapes map to
FLAME. Computed in float64 whatever the input precision.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.linalg import subspace_angles

from common.errors import InputError
from models.rig.blendshapes import FLAME_EXPR, FLAME_PARAMS
from models.rig.mapping import Forward


def _sequence(name: str, array: np.ndarray) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 3 or array.shape[2] != 3:
        raise InputError(f"metrics: {name} has shape {array.shape}, expected (T, V, 3)")
    if not np.isfinite(array).all():
        raise InputError(f"metrics: {name} contains NaN or infinite values")
    return array


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = _sequence("prediction", pred), _sequence("ground truth", gt)
    if pred.shape != gt.shape:
        raise InputError(f"metrics: prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    return pred, gt


def _vertex_index(name: str, index: np.ndarray, vertices: int) -> np.ndarray:
    index = np.asarray(index)
    if index.ndim != 1 or index.size == 0 or index.dtype.kind not in "iu" or index.min() < 0 or index.max() >= vertices:
        raise InputError(f"metrics: {name} must be a non-empty 1-D array of vertex indices below {vertices}")
    return index


def lve(pred: np.ndarray, gt: np.ndarray, lip_idx: np.ndarray) -> float:
    """Lip vertex error (FaceFormer, CodeTalker): per frame the largest squared L2 distance over
    the lip vertices, averaged over frames. In m²; the field pools all test frames, which is
    this function on the frames concatenated."""
    pred, gt = _pair(pred, gt)
    lips = _vertex_index("lip_idx", lip_idx, pred.shape[1])
    squared = np.square(pred[:, lips] - gt[:, lips]).sum(axis=2)  # (T, lips)
    return float(squared.max(axis=1).mean())


def _motion_std(vertices: np.ndarray, template: np.ndarray, upper: np.ndarray) -> float:
    """mean over upper-face vertices of the std over time of ‖vertex − template‖²."""
    squared = np.square(vertices[:, upper] - template[upper]).sum(axis=2)  # (T, U)
    return float(squared.std(axis=0).mean())


def fdd(pred_seqs: Sequence[np.ndarray], gt_seqs: Sequence[np.ndarray], upper_idx: np.ndarray,
        templates: Sequence[np.ndarray] | np.ndarray) -> float:
    """Upper-face dynamics deviation, exactly as CodeTalker's evaluation computes it.

    For each sequence s and each upper-face vertex v, d_s(t, v) = ‖x_t(v) − template_s(v)‖²
    (the *squared* displacement from the neutral face, summed over x, y, z);
    m_s = mean over v of std over t of d_s(t, v) (population std, ddof 0);
    FDD = mean over sequences of (m_s(ground truth) − m_s(prediction)), in m².
    Positive: the prediction's upper face moves less than the truth's. `templates` holds one
    (V, 3) neutral face per sequence, or one for all.
    """
    if len(pred_seqs) != len(gt_seqs) or len(gt_seqs) == 0:
        raise InputError(f"metrics: {len(pred_seqs)} predicted and {len(gt_seqs)} ground-truth sequences")
    if isinstance(templates, np.ndarray) and templates.ndim == 2:
        templates = [templates] * len(gt_seqs)
    if len(templates) != len(gt_seqs):
        raise InputError(f"metrics: {len(templates)} templates for {len(gt_seqs)} sequences")
    differences = []
    for pred, gt, template in zip(pred_seqs, gt_seqs, templates):
        pred, gt = _pair(pred, gt)
        template = np.asarray(template, dtype=np.float64)
        if template.shape != gt.shape[1:]:
            raise InputError(f"metrics: template {template.shape} does not match vertices {gt.shape[1:]}")
        upper = _vertex_index("upper_idx", upper_idx, gt.shape[1])
        differences.append(_motion_std(gt, template, upper) - _motion_std(pred, template, upper))
    return float(np.mean(differences))


def principal_angles(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Principal angles in degrees, ascending, between the column spans of A (n×k) and B (n×m).

    Both spans are orthonormalised by SVD (rank-revealing, so dependent columns count once);
    scipy's subspace_angles then takes cosines from the singular values of Q_Aᵀ·Q_B, clipped to
    [−1, 1], and small angles from sines, which stay accurate near 0°. min(rank A, rank B) angles.
    """
    A, B = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    if A.ndim != 2 or B.ndim != 2 or A.shape[0] != B.shape[0]:
        raise InputError(f"metrics: principal angles need n×k and n×m matrices, got {A.shape} and {B.shape}")
    if not (np.isfinite(A).all() and np.isfinite(B).all()):
        raise InputError("metrics: principal angles of matrices with NaN or infinite values")
    if not (np.abs(A).max(initial=0) > 0 and np.abs(B).max(initial=0) > 0):
        raise InputError("metrics: principal angles need two non-zero matrices")
    return np.sort(np.degrees(subspace_angles(A, B)))


def cross_domain_leakage(w_cross: np.ndarray, w_own: np.ndarray) -> float:
    """Energy of the cross-domain weights relative to the own-domain ones: Σw_cross² / Σw_own².

    E.g. the speech weights the encoder gives expression-only clips (w_cross) against the
    expression weights of the same clips (w_own); 0 means perfectly separated domains.
    """
    cross, own = np.asarray(w_cross, dtype=np.float64), np.asarray(w_own, dtype=np.float64)
    if not (np.isfinite(cross).all() and np.isfinite(own).all()):
        raise InputError("metrics: leakage of weights with NaN or infinite values")
    energy = float(np.square(own).sum())
    if energy == 0:
        raise InputError("metrics: leakage is undefined when the own-domain weights are all zero")
    return float(np.square(cross).sum()) / energy


def mapping_error(basis: np.ndarray, coeffs: np.ndarray, forward: Forward, neutral: np.ndarray) -> np.ndarray:
    """Per blendshape k, metres: sqrt(mean over vertices of ‖forward(coeffs_k) − neutral − basis_k‖²).

    Re-measures a FLAME mapping (coeffs: FLAME expr 0..99 then jaw xyz, as models.rig.mapping fits
    them) through any FLAME forward, e.g. the real FLAME for a mapping fitted on another rig.
    """
    basis = np.asarray(basis, dtype=np.float64)
    coeffs = np.asarray(coeffs, dtype=np.float32)
    neutral = np.asarray(neutral, dtype=np.float64)
    if basis.ndim != 3 or basis.shape[2] != 3 or neutral.shape != basis.shape[1:]:
        raise InputError(f"metrics: basis {basis.shape} and neutral {neutral.shape} are not (K, V, 3), (V, 3)")
    if coeffs.shape != (len(basis), FLAME_PARAMS):
        raise InputError(f"metrics: coeffs have shape {coeffs.shape}, expected ({len(basis)}, {FLAME_PARAMS})")
    params = torch.from_numpy(coeffs)
    with torch.no_grad():
        out = forward(params[:, :FLAME_EXPR], params[:, FLAME_EXPR:])
    if tuple(out.shape) != basis.shape:
        raise InputError(f"metrics: forward returned shape {tuple(out.shape)}, expected {basis.shape}")
    residual = out.double().numpy() - neutral - basis
    return np.sqrt(np.square(residual).sum(axis=2).mean(axis=1))


def envelope_correlation(curve: np.ndarray, envelope: np.ndarray) -> float:
    """Pearson r between a per-frame mouth curve (e.g. jaw opening) and the speech envelope."""
    curve, envelope = np.asarray(curve, dtype=np.float64), np.asarray(envelope, dtype=np.float64)
    if curve.ndim != 1 or curve.shape != envelope.shape or len(curve) < 2:
        raise InputError(f"metrics: curve {curve.shape} and envelope {envelope.shape} must be equal-length 1-D series")
    if not (np.isfinite(curve).all() and np.isfinite(envelope).all()):
        raise InputError("metrics: envelope correlation of series with NaN or infinite values")
    if curve.std() == 0 or envelope.std() == 0:
        return 0.0  # a mouth that never moves follows nothing
    return float(np.corrcoef(curve, envelope)[0, 1])


def closure_rate(closed: np.ndarray, closures: Sequence[tuple[float, float]], fps: float) -> float:
    """Share of `closures` ((start s, end s) of /p b m/) during which the lips close: some frame
    i (time i / fps) within one frame of the phoneme, [start − 1/fps, end + 1/fps], has closed[i]."""
    closed = np.asarray(closed, dtype=bool)
    if closed.ndim != 1 or not closures:
        raise InputError("metrics: closure rate needs a 1-D closed series and at least one closure")
    hits = 0
    for start, end in closures:
        first = max(0, int(np.ceil((start - 1.0 / fps) * fps - 1e-9)))
        last = min(len(closed) - 1, int(np.floor((end + 1.0 / fps) * fps + 1e-9)))
        hits += bool(first <= last and closed[first:last + 1].any())
    return hits / len(closures)
