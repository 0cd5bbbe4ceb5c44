"""ARKit's 52 blendshapes: their names, target-shape files, and solving posed displacements onto
them by bounded least squares (docs/architecture.md §Formats).

Names. `ARKIT_NAMES` are Apple's camelCase `ARFaceAnchor.BlendShapeLocation` constants in the
order of Apple's documentation (https://developer.apple.com/documentation/arkit/arfaceanchor/blendshapelocation,
topics Left Eye, Right Eye, Mouth and Jaw, Eyebrows/Cheeks/Nose, Tongue); Unreal's
`EARFaceBlendShape` (ARTrackable.h) lists them in the same order. `LIVELINK_NAMES` are the same
52 in PascalCase in the column order of the CSV that Epic's Live Link Face app records (header
`Timecode,BlendShapeCount,EyeBlinkLeft,…,TongueOut,HeadYaw,…,RightEyeRoll`, as quoted from
real takes by public importers, e.g. Nick Fisher's Blender LiveLinkFace add-on,
`LIVE_LINK_FACE_HEADER`). The two orders differ in two places only: Live Link Face writes
JawRight before JawLeft and MouthRight before MouthLeft.

Shape file. An `.npz` archive (no pickles) with exactly one array per Apple name, key = the
camelCase name, each (V, 3) floating point: the target's displacement from the neutral mesh at
weight 1, in the rig's units (metres for FLAME), on the rig's topology (V vertices in the rig's
order). Missing or unknown names, another vertex count, another shape or dtype and NaN/inf
are refused with one line naming the file; shapes are checked from the headers before any
array is read.

Solve. For frames t with displacements d_t (from the neutral mesh) and the targets B (52 × 3V),
`solve_arkit` minimises  Σ_t ‖Bᵀw_t − d_t‖² + λ Σ_t ‖w_t − w_{t−1}‖² + ε Σ_t ‖w_t‖²
subject to 0 ≤ w ≤ 1, over the solved vertices, as one convex quadratic program in the 52T
weights. Everything the solve needs is in the 52×52 Gram matrix G = BBᵀ and c_t = Bd_t (one
pass over the frames), so its cost does not depend on V. Its Hessian I⊗(G+εI) + λ L⊗I (L: the
path graph's Laplacian over frames) is banded with half-bandwidth 52 in frame-major order, so a
Newton step restricted to the free weights is one banded Cholesky solve, O(52³ T). The method is
Bertsekas' projected Newton for box constraints (SIAM J. Control Optim. 20(2), 1982), with one
step length per frame: it finds which weights sit at 0 or 1 and solves the rest by Newton
steps, so the result is the bounded problem's minimiser, unlike clipping an unbounded solve
(which can be far off when targets overlap) or a first-order method stopped early. It stops
once the Frank–Wolfe duality bound proves the objective (squared residuals plus the smoothness
and ridge terms) within 1e-9·Σ‖d_t‖² of its minimum; in directions the targets barely tell
apart the weights may then still differ from the exact minimiser, without changing the fit.
Clips longer than 2048 frames are solved 2048 frames at a time, each with 256 frames of context
on both sides (exact without smoothing; at the default smoothness the weights differ from an
all-at-once solve by under 1e-4). λ and ε are relative to the mean squared norm
s = trace(G)/52 of a target: λ = smoothness·s (a weight that jumps by 1 between frames costs
`smoothness` of a typical target's squared size), ε = 1e-7·s, which only decides between
targets the data cannot tell apart (duplicates share the weight).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.linalg import solveh_banded

from common.atomic import atomic_write
from common.errors import InputError
from common.limits import MAX_COORDINATE
from models.rig.npz import checked_float32, npz_keys, npz_layouts, read_npz

ARKIT_NAMES: tuple[str, ...] = (
    # Left Eye
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    # Right Eye
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    # Mouth and Jaw
    "jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker",
    "mouthLeft", "mouthRight", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft", "mouthPressRight",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    # Eyebrows, Cheeks, and Nose
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft", "noseSneerRight",
    # Tongue
    "tongueOut",
)

# Live Link Face's columns: Apple's names in PascalCase, in Apple's order but for two swapped pairs
_LIVELINK_SWAPS = {"jawLeft": "jawRight", "jawRight": "jawLeft", "mouthLeft": "mouthRight", "mouthRight": "mouthLeft"}
LIVELINK_NAMES: tuple[str, ...] = tuple(
    (name := _LIVELINK_SWAPS.get(apple, apple))[0].upper() + name[1:] for apple in ARKIT_NAMES)

# weights[:, LIVELINK_FROM_ARKIT] puts weights in ARKIT_NAMES order into LIVELINK_NAMES order
LIVELINK_FROM_ARKIT: tuple[int, ...] = tuple(
    ARKIT_NAMES.index(name[0].lower() + name[1:]) for name in LIVELINK_NAMES)

DEFAULT_SMOOTHNESS = 0.01
_RIDGE = 1e-7  # ε relative to a target's mean squared norm
_MAX_ITERATIONS = 200
_KKT_TOLERANCE = 1e-9  # largest projected-gradient step, in weight units, at the solution
_OPTIMALITY = 1e-9  # or: f within this share of ½Σ‖d_t‖² of its minimum (Frank–Wolfe bound)
_MAX_HALVINGS = 40
_FRAME_CHUNK = 256  # frames per pass when forming c_t = B d_t
_WINDOW = 2048  # frames solved together (memory: ~23 kB per frame for the banded Hessian and its copy)
_CONTEXT = 256  # frames each side of a window that smooth its edges, then dropped


@dataclass(frozen=True)
class ArkitShapes:
    """The 52 target displacement fields of one rig, in ARKIT_NAMES order."""

    names: tuple[str, ...]
    displacements: np.ndarray  # (52, V, 3) float32, from the neutral mesh at weight 1
    source: str = ""

    def __post_init__(self) -> None:
        if self.names != ARKIT_NAMES:
            raise ValueError("ArkitShapes.names must be ARKIT_NAMES")
        shape = np.shape(self.displacements)
        if len(shape) != 3 or shape[0] != len(ARKIT_NAMES) or shape[2] != 3:
            raise ValueError(f"ArkitShapes.displacements must be (52, V, 3), got {shape}")

    @property
    def vertices(self) -> int:
        return int(self.displacements.shape[1])

    def combine(self, weights: np.ndarray) -> np.ndarray:
        """Displacements (T, V, 3) of weights (T, 52): the linear blend the solve fits."""
        flat = self.displacements.reshape(len(ARKIT_NAMES), -1)
        return (np.asarray(weights, np.float32) @ flat).reshape(len(weights), self.vertices, 3)


@dataclass(frozen=True)
class ArkitSolve:
    """Per-frame ARKit weights and how well they reproduce the frames."""

    weights: np.ndarray  # (T, 52) float32 in 0..1, ARKIT_NAMES order
    residual_mm: np.ndarray  # (T,) RMS distance over the solved vertices, mm (rig units × 1000)


def _naming(names: set[str]) -> str:
    """A few names for a message."""
    shown = sorted(names)[:5]
    return ", ".join(shown) + (f" and {len(names) - len(shown)} more" if len(names) > len(shown) else "")


def load_arkit_shapes(path: str | os.PathLike, vertices: int) -> ArkitShapes:
    """The ARKit target shapes of the .npz file at `path` for a rig of `vertices` vertices; any
    problem is one InputError line naming the file."""
    keys = npz_keys(path, "ARKit shape file")
    missing, unknown = set(ARKIT_NAMES) - keys, keys - set(ARKIT_NAMES)
    if unknown:
        lower = {name.lower() for name in ARKIT_NAMES}
        hint = (" (Apple's camelCase names are expected, e.g. eyeBlinkLeft)"
                if any(name.lower() in lower for name in unknown) else "")
        raise InputError(f"{path}: unknown ARKit blendshape name(s) {_naming(unknown)}{hint}")
    if missing:
        raise InputError(f"{path}: missing ARKit blendshape(s) {_naming(missing)} (all 52 are needed)")
    for name, (shape, dtype) in npz_layouts(path, ARKIT_NAMES, "ARKit shape file").items():
        if shape != (vertices, 3):
            got = f"{shape[0]} vertices" if len(shape) == 2 and shape[1] == 3 else f"shape {shape}"
            raise InputError(f"{path}: {name} has {got}; the rig needs ({vertices}, 3) displacements")
        if dtype.kind != "f":
            raise InputError(f"{path}: {name} is {dtype}, not floating point displacements")
    arrays = read_npz(path, ARKIT_NAMES, "ARKit shape file")
    fields = np.stack([checked_float32(arrays[name], f"{path}: {name}", MAX_COORDINATE) for name in ARKIT_NAMES])
    return ArkitShapes(ARKIT_NAMES, fields, str(path))


def save_arkit_shapes(shapes: ArkitShapes, path: str | os.PathLike) -> None:
    """Write `shapes` in the shape-file format, atomically."""
    arrays = {name: np.asarray(field, np.float32) for name, field in zip(shapes.names, shapes.displacements)}
    atomic_write(path, lambda handle: np.savez_compressed(handle, **arrays))


class _Hessian:
    """I⊗gram + smoothness·L⊗I over (frames, 52) weight arrays (L: the path graph's Laplacian):
    products by one small matrix product, solves in solveh_banded's lower form (K+1, K·frames)."""

    def __init__(self, gram: np.ndarray, frames: int, smoothness: float) -> None:
        self.gram, self.frames, self.smoothness = gram, frames, smoothness
        k = len(gram)
        self.degree = np.full((frames, 1), 2.0)
        self.degree[[0, -1]] = 1.0 if frames > 1 else 0.0
        band = np.zeros((k + 1, k * frames))
        for offset in range(k):
            band[offset] = np.tile(np.pad(np.diagonal(gram, -offset), (0, offset)), frames)
        band[0] += smoothness * np.repeat(self.degree[:, 0], k)
        band[k, : k * (frames - 1)] = -smoothness
        self.band = band
        self.diagonal = band[0].reshape(frames, k)

    def times(self, x: np.ndarray) -> np.ndarray:
        """H x for x (frames, K)."""
        y = x @ self.gram + self.smoothness * self.degree * x
        y[1:] -= self.smoothness * x[:-1]
        y[:-1] -= self.smoothness * x[1:]
        return y

    def newton_step(self, gradient: np.ndarray, fixed: np.ndarray) -> np.ndarray:
        """−H_FF⁻¹ g_F on the free weights F = ~fixed, zero on the fixed ones."""
        free = (~fixed).reshape(-1).astype(np.float64)
        k = len(self.band) - 1
        # reduced[o, j] keeps H[j+o, j] when both j and j+o are free; fixed weights get a unit diagonal
        reduced = self.band * free * sliding_window_view(np.pad(free, (0, k)), len(free))
        reduced[0] += 1.0 - free
        rhs = -gradient.reshape(-1) * free
        return solveh_banded(reduced, rhs, lower=True, check_finite=False).reshape(gradient.shape)


def _arc_search(hessian: _Hessian, x: np.ndarray, gradient: np.ndarray, step: np.ndarray,
                per_frame: bool) -> np.ndarray | None:
    """The first point P(x + α·step), α = 1, ½, ¼, …, that decreases f by at least 1e-4 of
    what the gradient promises (Armijo along the projection arc), or None. `per_frame`: each
    frame halves its own α until its share of the change, Σ_k Δx (g + ½HΔx) over its weights,
    passes; the shares add up to the exact change of f, so passing them all passes the whole."""
    alpha = np.ones((len(x) if per_frame else 1, 1))
    for _ in range(_MAX_HALVINGS):
        trial = np.clip(x + alpha * step, 0.0, 1.0)
        moved = trial - x
        change = np.sum(moved * (gradient + 0.5 * hessian.times(moved)), axis=1)
        asked = -np.sum(gradient * moved, axis=1)
        if not per_frame:
            change, asked = change.sum(keepdims=True), asked.sum(keepdims=True)
        short = -change < 1e-4 * np.maximum(asked, 0.0)
        if not short.any():
            return trial
        alpha[short] *= 0.5
    return None


def _box_qp(hessian: _Hessian, linear: np.ndarray, energy: float) -> np.ndarray:
    """argmin ½xᵀHx − linearᵀx over 0 ≤ x ≤ 1 for a positive definite H (frames × 52).

    Projected Newton (Bertsekas 1982): the weights within a margin of a bound that the gradient
    presses against take a diagonally scaled gradient step, the others the Newton step on their
    own block, and an Armijo search along the projection arc picks the step length, one per
    frame (so one hard frame does not hold back the others) or, where that finds no step, one
    for all (the method as published, which always finds one). Stops on the KKT conditions,
    once the Frank–Wolfe bound gᵀx − Σ min(g, 0) ≥ f(x) − f* is within _OPTIMALITY of
    `energy` (½Σ‖d_t‖²), or when no step decreases f at float64 precision."""
    x = np.clip(hessian.newton_step(-linear, np.zeros(linear.shape, bool)), 0.0, 1.0)
    for _ in range(_MAX_ITERATIONS):
        gradient = hessian.times(x) - linear
        gap = float(np.abs(x - np.clip(x - gradient / hessian.diagonal, 0.0, 1.0)).max())
        bound = float(np.sum(gradient * x - np.minimum(gradient, 0.0)))
        if gap <= _KKT_TOLERANCE or bound <= _OPTIMALITY * energy:
            break
        margin = min(gap, 1e-3)
        fixed = ((x <= margin) & (gradient > 0)) | ((x >= 1 - margin) & (gradient < 0))
        step = hessian.newton_step(gradient, fixed)
        step[fixed] = -gradient[fixed] / hessian.diagonal[fixed]
        trial = _arc_search(hessian, x, gradient, step, per_frame=True)
        if trial is None:
            trial = _arc_search(hessian, x, gradient, step, per_frame=False)
        if trial is None:
            break
        x = trial
    return x


def solve_arkit(shapes: ArkitShapes, displacements: np.ndarray, smoothness: float = DEFAULT_SMOOTHNESS,
                mask: np.ndarray | None = None) -> ArkitSolve:
    """ARKit weights (T, 52) in 0..1 that best reproduce `displacements` (T, V, 3, from the
    neutral mesh) on the vertices of `mask` (V,) bool (all when None), with a temporal
    smoothness term (see the module docstring), and the per-frame RMS residual in mm."""
    if not (np.isfinite(smoothness) and smoothness >= 0):
        raise InputError(f"ARKit solve: smoothness must be a finite number ≥ 0, got {smoothness}")
    frames_in = np.asarray(displacements)
    if frames_in.ndim != 3 or frames_in.shape[1:] != (shapes.vertices, 3):
        raise InputError(f"ARKit solve: displacements must be (T, {shapes.vertices}, 3) for the shapes of "
                         f"{shapes.source or 'the rig'}, got {frames_in.shape}")
    if mask is None:
        mask = np.ones(shapes.vertices, bool)
    mask = np.asarray(mask)
    if mask.shape != (shapes.vertices,) or mask.dtype != bool or not mask.any():
        raise InputError(f"ARKit solve: the mask must select some of the {shapes.vertices} vertices "
                         f"(a bool array of that length)")
    k, frames, solved = len(ARKIT_NAMES), len(frames_in), int(mask.sum())
    if frames == 0:
        return ArkitSolve(np.zeros((0, k), np.float32), np.zeros(0, np.float32))
    moved = mask & np.any(shapes.displacements != 0, axis=(0, 2))  # vertices no target moves add to c_t nothing
    basis = shapes.displacements[:, moved].reshape(k, -1).astype(np.float64)
    gram = basis @ basis.T
    linear = np.empty((frames, k))
    energy = np.empty(frames)
    for start in range(0, frames, _FRAME_CHUNK):
        chunk = frames_in[start : start + _FRAME_CHUNK]
        linear[start : start + len(chunk)] = chunk[:, moved].reshape(len(chunk), -1).astype(np.float64) @ basis.T
        solved_part = chunk[:, mask].reshape(len(chunk), -1).astype(np.float64)
        energy[start : start + len(chunk)] = np.einsum("ij,ij->i", solved_part, solved_part)
    scale = float(np.trace(gram)) / k
    if scale <= 0:
        raise InputError(f"ARKit solve: the shapes of {shapes.source or 'the rig'} do not move the solved vertices")
    weights = np.empty((frames, k))
    context = _CONTEXT if smoothness > 0 else 0
    for start in range(0, frames, _WINDOW):
        stop = min(start + _WINDOW, frames)
        low, high = max(start - context, 0), min(stop + context, frames)
        hessian = _Hessian(gram + _RIDGE * scale * np.eye(k), high - low, smoothness * scale)
        part = _box_qp(hessian, linear[low:high], 0.5 * float(energy[low:high].sum()))
        weights[start:stop] = part[start - low : stop - low]
    squared = np.einsum("tk,kl,tl->t", weights, gram, weights) - 2 * np.einsum("tk,tk->t", weights, linear) + energy
    residual = 1000.0 * np.sqrt(np.maximum(squared, 0.0) / solved)
    return ArkitSolve(weights.astype(np.float32), residual.astype(np.float32))
