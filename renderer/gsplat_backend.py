"""gsplat on CUDA: the same frames through `gsplat.rasterization` in classic mode.

A batch of B posings of one Gaussian set goes to ONE call: gsplat 1.5 takes leading batch
dimensions (means [B,N,3], quats [B,N,4], scales [B,N,3], opacities [B,N], SH [B,N,K,3],
viewmats [B,C,4,4], Ks [B,C,3,3], backgrounds [B,C,3] → colours [B,C,H,W,3], alphas
[B,C,H,W,1]); here C = 1 camera. Every batch element is rasterized on its own, so a batch gives
the frames that one call per frame gives. `Readback` brings uint8 frames back through pinned
host memory on a side stream, so the next batch renders while they travel
(docs/architecture.md §Rasterization)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from .camera import Camera
from .gaussians import GaussianSet, sh_degree_for
from .projection import EPS2D, NEAR_PLANE

GPU_BATCH = 32  # frames per gsplat call when the caller does not choose


def device_view(camera: Camera, background: Tensor, device: torch.device | str) -> tuple[Tensor, Tensor, Tensor]:
    """The camera's viewmat [4,4], K [3,3] and the background [3] on `device`, in one
    host→device copy (each copy from pageable memory waits for the device)."""
    packed = torch.cat([camera.viewmat.detach().cpu().reshape(-1), camera.K.detach().cpu().reshape(-1),
                        background.detach().cpu().reshape(-1)]).float().to(device)
    return packed[:16].view(4, 4), packed[16:25].view(3, 3), packed[25:28]


def rasterize_batch(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, sh: Tensor,
                    viewmat: Tensor, K: Tensor, width: int, height: int,
                    background: Tensor) -> tuple[Tensor, Tensor]:
    """(images [B,H,W,3], alphas [B,H,W]) of B posings (means, quats, scales [B,N,·]) of Gaussians
    that share their opacities [N] and SH [N,(d+1)²,3], seen by one camera (viewmat [4,4], K [3,3],
    background [3], all on the Gaussians' CUDA device): one gsplat call."""
    from gsplat import (
        rasterization,  # imported late: it compiles CUDA kernels on first use
    )

    batch, n = means.shape[:2]
    colors, alphas, _ = rasterization(
        means, quats, scales, opacities.expand(batch, n), sh.expand(batch, *sh.shape),
        viewmat.expand(batch, 1, 4, 4), K.expand(batch, 1, 3, 3), width, height,
        sh_degree=sh_degree_for(sh.shape[1]), backgrounds=background.expand(batch, 1, 3),
        near_plane=NEAR_PLANE, eps2d=EPS2D, packed=False, rasterize_mode="classic",
    )
    return colors[:, 0], alphas[:, 0, ..., 0]


def render_gsplat(g: GaussianSet, camera: Camera, background: Tensor) -> tuple[Tensor, Tensor]:
    """(image [H,W,3], alpha [H,W]) on the Gaussians' CUDA device: a batch of one."""
    viewmat, K, bg = device_view(camera, background, g.means.device)
    images, alphas = rasterize_batch(g.means[None], g.quats[None], g.scales[None], g.opacities, g.sh,
                                     viewmat, K, camera.width, camera.height, bg)
    return images[0], alphas[0]


class Readback:
    """Batches of uint8 frames copied from the GPU into pinned host memory on a side stream.

    `start(frames, flags)` queues the copy after the work that makes them and returns at once;
    the returned `wait()` blocks until the copy has landed (a CUDA event) and gives NumPy arrays
    of the pinned buffers. Those arrays keep their buffer alive (and torch's caching host
    allocator reuses it only after it is freed and its copy is done), so frames handed on to
    another thread stay valid."""

    def __init__(self, device: torch.device | str) -> None:
        self.stream = torch.cuda.Stream(device)

    def start(self, frames: Tensor, flags: Tensor) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        host = torch.empty(frames.shape, dtype=frames.dtype, pin_memory=True)
        host_flags = torch.empty(flags.shape, dtype=flags.dtype, pin_memory=True)
        self.stream.wait_stream(torch.cuda.current_stream(frames.device))
        with torch.cuda.stream(self.stream):
            host.copy_(frames, non_blocking=True)
            host_flags.copy_(flags, non_blocking=True)
            done = torch.cuda.Event()
            done.record(self.stream)
        frames.record_stream(self.stream)  # not reused by the allocator before the copy has read them
        flags.record_stream(self.stream)

        def wait() -> tuple[np.ndarray, np.ndarray]:
            done.synchronize()
            return host.numpy(), host_flags.numpy()
        return wait
