"""One entry point for both backends: world Gaussians + camera → image."""
from __future__ import annotations

import torch
from torch import Tensor

from common.errors import InputError, interrupt_behind

from .backends import BACKENDS
from .camera import Camera
from .cpu_backend import rasterize
from .gaussians import GaussianSet
from .gsplat_backend import render_gsplat
from .projection import packed_covariances, project_shade
from .torch_backend import rasterize as torch_rasterize


def resolve_backend(name: str) -> str:
    """'auto' → gsplat when CUDA is available, else cpu; gsplat without CUDA is an error.
    cpu and torch run on the CPU (the same image; torch is the slower, readable twin)."""
    if name not in BACKENDS:
        raise InputError(f"unknown backend '{name}' (choose from {', '.join(BACKENDS)})")
    if name == "auto":
        return "gsplat" if torch.cuda.is_available() else "cpu"
    if name == "gsplat" and not torch.cuda.is_available():
        raise InputError("backend 'gsplat' needs a CUDA GPU, and torch sees none (use --backend cpu)")
    return name


def backend_device(backend: str) -> torch.device:
    return torch.device("cuda" if backend == "gsplat" else "cpu")


def render_cpu(g: GaussianSet, camera: Camera, background: Tensor,
               posed: tuple[Tensor, Tensor] | None = None, backend: str = "cpu") -> tuple[Tensor, Tensor]:
    """(image [H,W,3], alpha [H,W]) with our rasterizer. `g` holds world Gaussians; or, with
    `posed` = (world means [N,3], packed world covariances [N,6]) of one mesh from
    `binding.bind_covariances`, `g` is the bound set they come from (its opacities and SH).
    Projection and SH colours are one numba pass per Gaussian (`projection.project_shade`);
    `backend` 'torch' blends with the PyTorch twin (`torch_backend.rasterize`) instead."""
    means, covariances = posed if posed is not None else (g.means, packed_covariances(g.quats, g.scales))
    try:
        proj, colors = project_shade(means, covariances, g.opacities, g.sh, camera)
        blend = torch_rasterize if backend == "torch" else rasterize
        return blend(proj, colors, g.opacities, camera.width, camera.height, background)
    except SystemError as err:  # an interrupt inside numba's dispatcher: hand it on as itself
        stop = interrupt_behind(err)
        if stop is None:
            raise
        raise stop from None


@torch.no_grad()
def render(g: GaussianSet, camera: Camera, background: Tensor, backend: str = "cpu") -> Tensor:
    """Image [H,W,3] float (not clamped to 1) of world-space Gaussians, by a resolved backend name."""
    if g.is_bound:
        raise ValueError("render() takes world-space Gaussians; bind() them to a mesh first")
    if backend == "gsplat":
        return render_gsplat(g, camera, background)[0]
    return render_cpu(g, camera, background, backend=backend)[0]
