"""One entry point for both backends: world Gaussians + camera → image."""
from __future__ import annotations

import torch
from torch import Tensor

from common.errors import InputError

from .camera import Camera
from .cpu_backend import rasterize
from .gaussians import GaussianSet
from .gsplat_backend import render_gsplat
from .projection import project
from .sh import sh_colors

BACKENDS = ("auto", "cpu", "gsplat")


def resolve_backend(name: str) -> str:
    """'auto' → gsplat when CUDA is available, else cpu; gsplat without CUDA is an error."""
    if name not in BACKENDS:
        raise InputError(f"unknown backend '{name}' (choose from {', '.join(BACKENDS)})")
    if name == "auto":
        return "gsplat" if torch.cuda.is_available() else "cpu"
    if name == "gsplat" and not torch.cuda.is_available():
        raise InputError("backend 'gsplat' needs a CUDA GPU, and torch sees none (use --backend cpu)")
    return name


def backend_device(backend: str) -> torch.device:
    return torch.device("cuda" if backend == "gsplat" else "cpu")


def render_cpu(g: GaussianSet, camera: Camera, background: Tensor) -> tuple[Tensor, Tensor]:
    """(image [H,W,3], alpha [H,W]) with our rasterizer, on whatever device the tensors live."""
    proj = project(g.means, g.quats, g.scales, camera.viewmat, camera.K,
                   camera.width, camera.height, opacities=g.opacities)
    colors = sh_colors(g.sh, g.means, camera.center)
    return rasterize(proj, colors, g.opacities, camera.width, camera.height, background)


@torch.no_grad()
def render(g: GaussianSet, camera: Camera, background: Tensor, backend: str = "cpu") -> Tensor:
    """Image [H,W,3] float (not clamped to 1) of world-space Gaussians, by a resolved backend name."""
    if g.is_bound:
        raise ValueError("render() takes world-space Gaussians; bind() them to a mesh first")
    draw = render_gsplat if backend == "gsplat" else render_cpu
    return draw(g, camera, background)[0]
