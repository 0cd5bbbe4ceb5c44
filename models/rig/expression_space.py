"""The expressions an avatar learned: a bounded principal subspace of its tracked FLAME expressions.

A Gaussian avatar only learned the faces of its training sequence. FLAME parameters from another
source (speech, another person, a high intensity) reach expressions it never saw, which shows as
artefacts; GaussianAvatars' users are advised to normalise such parameters toward the avatar's
own training expressions. `ExpressionSpace` is the bounded version of that advice: each frame's
expression is projected onto the principal subspace of the tracked expressions (the components
covering `VARIANCE_SHARE` of their variance) and each coordinate there is clamped to the range
the tracking saw; the jaw pose is clamped per axis to its seen range.

Why a box in PCA coordinates (each coordinate clamped on its own) rather than an ellipsoid or
the tracked frames' convex hull: the components are orthonormal, so clamping each coordinate is
the exact Euclidean nearest point (in expression coefficients) of the bounded set, computed
per frame in closed form; a coordinate already in range is never touched, so an expression
exaggerated along one component keeps the others as they were (an ellipsoid bound would shrink
the whole expression, speech included); and a frame inside the box comes back unchanged. The
price: the box also admits corners that combine extremes never seen together, so it is looser
than the hull, and frames are brought inside, not toward the average (exaggeration is cut at
the seen extremes, nothing more).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.errors import InputError
from models.rig.flame import FlameParams

VARIANCE_SHARE = 0.99  # share of the tracked expressions' variance the kept components cover
ALIKE = 1e-6  # tracked expression coefficients that differ by no more than this are the same


@dataclass(frozen=True)
class ExpressionSpace:
    """Mean (E,), orthonormal components (k, E) with each coordinate's seen range (k,), and the
    jaw pose's seen range per axis (3,); float64. `variance_share` is what the k components cover."""

    mean: np.ndarray
    components: np.ndarray
    low: np.ndarray
    high: np.ndarray
    jaw_low: np.ndarray
    jaw_high: np.ndarray
    variance_share: float

    @classmethod
    def fit(cls, params: FlameParams, source: str, share: float = VARIANCE_SHARE) -> ExpressionSpace:
        """The space of the tracked `params` (an avatar's flame_param.npz, named `source` in
        errors): too few frames, or frames all alike, are an InputError."""
        if not 0.0 < share <= 1.0:
            raise ValueError(f"variance share {share} is outside (0, 1]")
        expr = np.asarray(params.expr, np.float64)
        jaw = np.asarray(params.jaw_pose, np.float64)
        frames = len(expr)
        if frames < 2:
            raise InputError(f"{source}: {frames} tracked frame{'s' * (frames != 1)}: the avatar has no tracked "
                             "expressions to stay inside")
        if float(np.ptp(expr, axis=0).max()) <= ALIKE:
            raise InputError(f"{source}: all {frames} tracked frames have the same expression: the avatar has no "
                             "tracked expressions to stay inside")
        mean = expr.mean(0)
        _, singular, rows = np.linalg.svd(expr - mean, full_matrices=False)
        covered = np.cumsum(singular**2) / np.sum(singular**2)
        k = min(int(np.searchsorted(covered, share * (1 - 1e-12))) + 1, len(singular))
        components = rows[:k]
        coords = (expr - mean) @ components.T
        return cls(mean, components, coords.min(0), coords.max(0), jaw.min(0), jaw.max(0), float(covered[k - 1]))

    @property
    def num_components(self) -> int:
        return len(self.components)

    def coordinates(self, expr: np.ndarray) -> np.ndarray:
        """(T, k) coordinates of expressions (T, E) in the space's components."""
        return (np.asarray(expr, np.float64) - self.mean) @ self.components.T

    def apply(self, expr: np.ndarray, jaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Expressions (T, E) and jaw poses (T, 3) kept inside: each expression projected onto
        the components with its coordinates clamped to the seen ranges, each jaw axis clamped to
        its seen range (float32). One already inside comes back as it was (to float rounding)."""
        coords = np.clip(self.coordinates(expr), self.low, self.high)
        inside = self.mean + coords @ self.components
        jaw = np.clip(np.asarray(jaw, np.float64), self.jaw_low, self.jaw_high)
        return inside.astype(np.float32), jaw.astype(np.float32)
