"""The Gaussian set: one container for both the stored (local, activated-later) and world forms."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from .sh import C0


def sh_degree_for(num_coeffs: int) -> int:
    """SH degree from the coefficient count (d+1)²; anything else is not a valid SH layout."""
    degree = int(round(num_coeffs ** 0.5)) - 1
    if (degree + 1) ** 2 != num_coeffs or not 0 <= degree <= 3:
        raise ValueError(f"{num_coeffs} SH coefficients is not (d+1)² for a degree 0..3")
    return degree


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    """DC coefficient that reproduces a colour (docs/architecture.md §Rasterization)."""
    return (rgb - 0.5) / C0


@dataclass
class GaussianSet:
    """N Gaussians as the renderer takes them.

    means [N,3], quats [N,4] wxyz (not necessarily unit), scales [N,3] linear,
    opacities [N] in 0..1, sh [N,(d+1)²,3]. `binding` [N] holds triangle indices when the
    set is in triangle-local form (GaussianAvatars); None for a world-space (static) set.
    A PLY holds log-scales and logit opacities; `renderer.ply` converts at the file boundary.
    """

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    sh: Tensor
    binding: Tensor | None = None

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def sh_degree(self) -> int:
        return sh_degree_for(self.sh.shape[1])

    @property
    def is_bound(self) -> bool:
        return self.binding is not None

    def to(self, device: torch.device | str) -> GaussianSet:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return GaussianSet(*(move(getattr(self, f)) for f in
                             ("means", "quats", "scales", "opacities", "sh", "binding")))

    def with_world(self, means: Tensor, quats: Tensor, scales: Tensor) -> GaussianSet:
        """The same Gaussians placed in world space (binding dropped)."""
        return replace(self, means=means, quats=quats, scales=scales, binding=None)
