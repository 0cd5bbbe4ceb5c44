"""gsplat on CUDA: the same frame through `gsplat.rasterization` in classic mode."""
from __future__ import annotations

from torch import Tensor

from .camera import Camera
from .gaussians import GaussianSet
from .projection import EPS2D, NEAR_PLANE


def render_gsplat(g: GaussianSet, camera: Camera, background: Tensor) -> tuple[Tensor, Tensor]:
    """(image [H,W,3], alpha [H,W]) on the Gaussians' CUDA device."""
    from gsplat import (
        rasterization,  # imported late: it compiles CUDA kernels on first use
    )

    dev = g.means.device
    colors, alphas, _ = rasterization(
        g.means, g.quats, g.scales, g.opacities, g.sh,
        camera.viewmat[None].to(dev), camera.K[None].to(dev), camera.width, camera.height,
        sh_degree=g.sh_degree, backgrounds=background.to(dev)[None],
        near_plane=NEAR_PLANE, eps2d=EPS2D, packed=False, rasterize_mode="classic",
    )
    return colors[0], alphas[0, ..., 0]
