"""Fit of the linear FLAME mapping of each blendshape: the FLAME expr + jaw_pose reproducing it.

With the mapping, blendshape weights drive FLAME (and the avatar bound to it) by one matrix
product per frame; the per-blendshape residual tells how faithfully.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.errors import InputError
from models.rig.blendshapes import FINGERPRINT_CHARS, FLAME_EXPR, FLAME_PARAMS, BlendshapeModel
from models.rig.flame import FlameParams, FlameRig
from models.rig.flame_arrays import FlameArrays
from models.rig.teeth import TEETH_VERTICES

_EXPR_STEP = 1.0  # expression enters FLAME linearly at zero pose: any step is exact
_JAW_STEP = 0.01  # radians; central differences, so the rotation's curvature costs O(step²)
_PRECISION = 1e-8  # metres: float32 resolution of head-sized coordinates; finer gains are noise
# Directions of the Jacobian (combinations of FLAME parameters) whose singular value is at most
# this fraction of the largest count as not determined by the vertices. The Jacobian comes from
# float32 vertices and differs by ~1e-7 (relative) between BLAS code paths; a least-squares fit
# along weaker directions would turn that rounding into coefficients. On the demo head the
# determined directions reach down to 3.7e-4, the next is 1.7e-8 (eyes_wide = −0.3·eyelids_close).
_CUTOFF = 1e-5

Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""FLAME-like forward: float32 expr (B, 100) and jaw_pose (B, 3) → vertices (B, V, 3)."""


def rig_forward(rig: FlameRig) -> Forward:
    """The `Forward` of a FLAME rig at neutral shape and pose, varying expression and jaw only."""

    def forward(expr: torch.Tensor, jaw: torch.Tensor) -> torch.Tensor:
        params = FlameParams.neutral(expr.shape[0])
        params.expr, params.jaw_pose = expr, jaw
        return rig(params)

    return forward


def without_teeth(arrays: FlameArrays) -> FlameArrays:
    """FLAME as a mapping is fitted through it: without GaussianAvatars' teeth, which blendshapes
    do not have (`add_teeth` only appends, so this is the file's own model)."""
    if not arrays.has_teeth:
        return arrays
    v = arrays.num_vertices - TEETH_VERTICES
    return dataclasses.replace(
        arrays, v_template=arrays.v_template[:v], faces=arrays.faces[(arrays.faces < v).all(axis=1)],
        shapedirs=arrays.shapedirs[:v], posedirs=arrays.posedirs[:v], J_regressor=arrays.J_regressor[:, :v],
        weights=arrays.weights[:v], has_teeth=False,
    )


def flame_fingerprint(arrays: FlameArrays) -> str:
    """A short hash of what a mapping depends on: the template, the expression columns of
    shapedirs, posedirs, J_regressor, the LBS weights and the joint parents (teeth and shape
    columns not counted), so two FLAME files agree exactly when a mapping fitted to one is right
    for the other (FLAME 2020 and 2023 differ)."""
    arrays = without_teeth(arrays)
    digest = hashlib.sha256()
    for part in (arrays.v_template, arrays.shapedirs[..., arrays.n_shape:], arrays.posedirs, arrays.J_regressor,
                 arrays.weights, arrays.kintree_table[0, 1:]):
        part = np.ascontiguousarray(part)
        digest.update(f"{part.dtype.str}{part.shape}".encode())
        digest.update(part.tobytes())
    return digest.hexdigest()[:FINGERPRINT_CHARS]


@dataclass(frozen=True)
class MappingRig:
    """A FLAME file as mappings are fitted through it: its forward at neutral shape and pose
    (no teeth), its neutral vertices, and what a fitted model records of it."""

    forward: Forward
    neutral: np.ndarray  # (V, 3) float32
    fingerprint: str
    source: str  # the file, for messages

    @property
    def name(self) -> str:
        """The file's name, as a model records it."""
        return Path(self.source).name

    @classmethod
    def of(cls, arrays: FlameArrays) -> MappingRig:
        arrays = without_teeth(arrays)
        forward = rig_forward(FlameRig(arrays))
        with torch.no_grad():
            neutral = forward(torch.zeros(1, FLAME_EXPR), torch.zeros(1, 3))[0].numpy()
        return cls(forward, neutral, flame_fingerprint(arrays), arrays.source)


@dataclass(frozen=True)
class MappingFit:
    """Per blendshape: FLAME parameters (expr 0..99, jaw xyz) and the RMS vertex error left."""

    coeffs: np.ndarray  # (K, 103)
    error: np.ndarray  # (K,) metres: sqrt(mean over vertices of |forward(coeffs) − target|²)


def fit_flame_mapping(
    basis: np.ndarray, forward: Forward, neutral: np.ndarray, steps: int = 60
) -> MappingFit:
    """Fit forward(expr_k, jaw_k) ≈ neutral + basis_k for every blendshape k at once.

    A linear least-squares start on the Jacobian at zero (expression directions and jaw
    derivatives, taken from `forward` by central differences), then up to `steps` Gauss-Newton
    steps through `forward` (FLAME's jaw is a rotation, so the fit is nonlinear) using the exact
    gradient and that fixed normal matrix, shrinking the step of any blendshape whose error would
    grow. Start and steps are least-norm (truncated SVD at `_CUTOFF`): combinations of parameters
    the vertices do not determine (unused components, collinear ones) stay at 0 instead of
    absorbing amplified rounding noise, so the coefficients are the same on every machine.
    Deterministic and vectorised over blendshapes.
    """
    basis = np.asarray(basis, dtype=np.float64)
    neutral = np.asarray(neutral, dtype=np.float64)
    if basis.ndim != 3 or neutral.ndim != 2 or neutral.shape[1] != 3 or basis.shape[1:] != neutral.shape:
        raise InputError(
            f"flame mapping: basis {basis.shape} and neutral {neutral.shape} are not (K, V, 3), (V, 3)"
        )
    if not (np.isfinite(basis).all() and np.isfinite(neutral).all()):
        raise InputError("flame mapping: basis or neutral contains NaN or infinite values")
    if int(steps) != steps or steps < 0:
        raise InputError(f"flame mapping: steps {steps} is not a non-negative integer")
    if not len(basis):
        return MappingFit(coeffs=np.zeros((0, FLAME_PARAMS), np.float32), error=np.zeros(0))

    rest, jacobian = _jacobian_at_zero(forward, neutral.shape[0])
    pseudo_inverse, precondition = _least_norm_solvers(jacobian)
    targets = neutral + basis
    start = (targets - rest).reshape(len(basis), -1) @ pseudo_inverse.T

    coeffs, loss = _refine(forward, targets, start, precondition, int(steps))
    return MappingFit(coeffs=coeffs, error=np.sqrt(2.0 * loss / neutral.shape[0]))


def _evaluate(forward: Forward, params: torch.Tensor, vertices: int) -> torch.Tensor:
    """forward on (B, 103) parameters, checked to return (B, V, 3)."""
    out = forward(params[:, :FLAME_EXPR], params[:, FLAME_EXPR:])
    expected = (params.shape[0], vertices, 3)
    if tuple(out.shape) != expected:
        raise InputError(f"flame mapping: forward returned shape {tuple(out.shape)}, expected {expected}")
    return out


def _jacobian_at_zero(forward: Forward, vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """forward(0) (V, 3) and its Jacobian (3V, 103), by central differences in one batch."""
    step = np.r_[np.full(FLAME_EXPR, _EXPR_STEP), np.full(3, _JAW_STEP)]
    probes = np.concatenate([np.zeros((1, FLAME_PARAMS)), np.diag(step), -np.diag(step)])
    with torch.no_grad():
        out = _evaluate(forward, torch.from_numpy(probes).float(), vertices).double().numpy()
    plus, minus = out[1 : 1 + FLAME_PARAMS], out[1 + FLAME_PARAMS :]
    jacobian = ((plus - minus) / (2.0 * step[:, None, None])).reshape(FLAME_PARAMS, -1).T
    return out[0], jacobian


def _least_norm_solvers(jacobian: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """J⁺ (103, 3V) and (JᵀJ)⁺ (103, 103) truncated to the directions J determines (singular
    values above `_CUTOFF` of the largest), so both map into those directions only."""
    u, s, vt = np.linalg.svd(jacobian, full_matrices=False)
    keep = s > _CUTOFF * s[0]
    v, s = vt[keep].T, s[keep]
    return (v / s) @ u[:, keep].T, (v / s**2) @ v.T


def _refine(
    forward: Forward, targets: np.ndarray, start: np.ndarray, inverse: np.ndarray, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Damped Gauss-Newton per blendshape, the gradient preconditioned by `inverse` ((JᵀJ)⁺);
    returns the float32 coefficients and their ½·SSE."""
    target = torch.from_numpy(targets)
    precondition = torch.from_numpy(inverse)

    def loss_and_gradient(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        leaf = params.float().requires_grad_(True)
        residual = _evaluate(forward, leaf, target.shape[1]).double() - target
        loss = 0.5 * residual.square().sum(dim=(1, 2))
        (gradient,) = torch.autograd.grad(loss.sum(), leaf)
        return loss.detach(), gradient.double()

    floor = 0.5 * target.shape[1] * _PRECISION**2
    params = torch.from_numpy(start).float().double()  # the exact values forward sees
    loss, gradient = loss_and_gradient(params)
    scale = torch.ones(len(params), dtype=torch.float64)
    done = torch.zeros(len(params), dtype=torch.bool)
    for _ in range(steps):
        if bool(done.all()):
            break
        trial = (params - scale[:, None] * (gradient @ precondition)).float().double()
        trial_loss, trial_gradient = loss_and_gradient(trial)
        better = (trial_loss < loss) & ~done
        gain = loss - trial_loss
        params = torch.where(better[:, None], trial, params)
        gradient = torch.where(better[:, None], trial_gradient, gradient)
        loss = torch.where(better, trial_loss, loss)
        # settled: a negligible gain (relative, or below float32 vertex precision), or no gain
        # even at a tiny step
        done |= torch.where(better, gain <= 1e-5 * loss + floor, scale < 1e-3)
        scale = torch.where(better, torch.clamp(scale * 2.0, max=1.0), scale / 4.0)
    return params.float().numpy(), loss.numpy()


def refit_mapping(model: BlendshapeModel, flame: MappingRig, source: str = "refitted blendshapes") -> BlendshapeModel:
    """`model` with its FLAME mapping fitted again through `flame` (a FLAME of the same mesh):
    the displacements are kept and now start from `flame`'s neutral, which becomes the template;
    the errors and the FLAME record are the new fit's."""
    if model.template.shape[0] != flame.neutral.shape[0]:
        raise InputError(f"{flame.source}: FLAME with {flame.neutral.shape[0]} vertices (teeth not counted), but the "
                         f"blendshapes have {model.template.shape[0]}: a mapping can only move to a FLAME of the same mesh")
    speech, expression = (fit_flame_mapping(basis, flame.forward, flame.neutral)
                          for basis in (model.speech_basis, model.expression_basis))
    return dataclasses.replace(
        model, template=flame.neutral, speech_to_flame=speech.coeffs, expression_to_flame=expression.coeffs,
        speech_mapping_error=speech.error, expression_mapping_error=expression.error,
        flame_fingerprint=flame.fingerprint, flame_name=flame.name, source=source,
    )
