"""Our CPU rasterizer: gsplat's classic tile algorithm, vectorized over tiles, pixels and depth chunks.

Gaussians are binned into 16×16 tiles and depth-sorted per tile. Blending then walks the
per-tile lists front to back in chunks of DEPTH_CHUNK entries for all unfinished tiles at
once; a tile leaves the loop when every pixel's transmittance has hit the stop threshold, so
opaque surfaces cost only their first few layers.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .projection import ALPHA_MIN, Projected

TILE = 16
DEPTH_CHUNK = 16
ALPHA_MAX = 0.999       # gsplat 1.5 caps alpha here
T_STOP = 1e-4           # a pixel is done once its transmittance would fall to this (exclusive)


def _tile_lists(proj: Projected, width: int, height: int) -> tuple[Tensor, Tensor, Tensor, int, int]:
    """Depth-ordered (tile, Gaussian) pairs: Gaussian ids sorted by tile then depth, plus each
    tile's start offset and count."""
    tiles_x, tiles_y = (width + TILE - 1) // TILE, (height + TILE - 1) // TILE
    live = torch.nonzero((proj.radii > 0).all(-1)).squeeze(1)
    live = live[torch.argsort(proj.depths[live], stable=True)]
    centre, r = proj.means2d[live], proj.radii[live].to(proj.means2d)
    x0 = torch.floor((centre[:, 0] - r[:, 0]) / TILE).clamp(0, tiles_x).long()
    x1 = torch.ceil((centre[:, 0] + r[:, 0]) / TILE).clamp(0, tiles_x).long()
    y0 = torch.floor((centre[:, 1] - r[:, 1]) / TILE).clamp(0, tiles_y).long()
    y1 = torch.ceil((centre[:, 1] + r[:, 1]) / TILE).clamp(0, tiles_y).long()
    w, counts = x1 - x0, (x1 - x0) * (y1 - y0)
    owner = torch.repeat_interleave(torch.arange(len(live)), counts)
    first = torch.cumsum(counts, 0) - counts
    j = torch.arange(int(counts.sum())) - first[owner]
    tile = (y0[owner] + j // w[owner]) * tiles_x + x0[owner] + j % w[owner]
    order = torch.argsort(tile, stable=True)  # stable: keeps depth order inside a tile
    gauss = live[owner[order]]
    per_tile = torch.bincount(tile, minlength=tiles_x * tiles_y)
    return gauss, torch.cumsum(per_tile, 0) - per_tile, per_tile, tiles_x, tiles_y


def _exponent_coeffs(proj: Projected, opacities: Tensor, idx: Tensor, valid: Tensor,
                     origin: Tensor) -> Tensor:
    """Coefficients [A, 6, D] of s(u, v) = σ(u, v) − ln(o) over pixel basis (1, u, v, u², v², uv),
    in tile-local pixel coordinates, so that alpha = exp(−s) for a whole tile is one matmul."""
    a, b, c = proj.conics[idx].unbind(-1)
    m = proj.means2d[idx] - origin[:, None, :]
    mx, my = m.unbind(-1)
    log_o = torch.where(valid, torch.log(opacities[idx]), torch.full_like(a, -torch.inf))
    return torch.stack([0.5 * a * mx * mx + 0.5 * c * my * my + b * mx * my - log_o,
                        -a * mx - b * my, -c * my - b * mx, 0.5 * a, 0.5 * c, b], dim=1)


def rasterize(proj: Projected, colors: Tensor, opacities: Tensor, width: int, height: int,
              background: Tensor) -> tuple[Tensor, Tensor]:
    """Front-to-back alpha blending; returns (image [H,W,3], alpha [H,W])."""
    dev, dt = proj.means2d.device, proj.means2d.dtype
    gauss, start, count, tiles_x, tiles_y = _tile_lists(proj, width, height)
    n_tiles = tiles_x * tiles_y
    local = torch.arange(TILE, device=dev, dtype=dt) + 0.5
    v, u = (g.reshape(-1) for g in torch.meshgrid(local, local, indexing="ij"))
    basis = torch.stack([torch.ones_like(u), u, v, u * u, v * v, u * v], dim=-1)   # [P, 6]
    tiles = torch.arange(n_tiles, device=dev)
    origins = torch.stack([tiles % tiles_x, tiles // tiles_x], dim=-1).to(dt) * TILE
    log_min = -torch.log(torch.tensor(ALPHA_MIN, dtype=dt))

    T = torch.ones(n_tiles, TILE * TILE, device=dev, dtype=dt)
    rgb = torch.zeros(n_tiles, TILE * TILE, 3, device=dev, dtype=dt)
    done = torch.zeros(n_tiles, TILE * TILE, device=dev, dtype=torch.bool)
    active = torch.nonzero(count > 0).squeeze(1)
    offsets = torch.arange(DEPTH_CHUNK, device=dev)
    step = 0
    while len(active):
        pos = step + offsets                                       # [D]
        valid = pos[None, :] < count[active, None]                 # [A, D]
        idx = gauss[(start[active, None] + pos[None, :]).clamp(max=max(len(gauss) - 1, 0))]
        s = basis @ _exponent_coeffs(proj, opacities, idx, valid, origins[active])   # [A, P, D]
        # alpha = min(ALPHA_MAX, o·exp(−σ)) with σ ≥ 0 (true for a positive-definite conic;
        # the bound only absorbs rounding), and 0 under ALPHA_MIN: all as bounds on s.
        floor = torch.clamp(-torch.log(opacities[idx]), min=-math.log(ALPHA_MAX))
        torch.maximum(s, floor[:, None, :], out=s)
        s.masked_fill_(s > log_min, torch.inf)
        one_minus = s.neg_().exp_().neg_().add_(1)                     # 1 − alpha, in place
        trans = torch.cumprod(one_minus, dim=-1).mul_(T[active][..., None])  # T after each entry
        # gsplat's exclusive stop: an entry that would take T to T_STOP is not blended, nor
        # anything behind it. T is monotone along the list, so the entries blended are a
        # prefix, and holding T at its last value beyond it makes the later weights vanish.
        n_used = (trans > T_STOP).sum(-1).masked_fill_(done[active], 0)
        T0 = T[active]
        T_end = torch.where(n_used > 0, trans.gather(-1, (n_used - 1).clamp(min=0)[..., None])[..., 0], T0)
        held = torch.maximum(trans, T_end[..., None])
        # Σ_i (T_{i−1} − T_i)·c_i  =  T_0·c_0 + Σ_i T_i·(c_{i+1} − c_i), with c_D = 0.
        c = colors[idx]
        step_colors = torch.cat([c[:, 1:], torch.zeros_like(c[:, :1])], dim=1) - c
        rgb[active] += T0[..., None] * c[:, None, 0, :] + held @ step_colors
        T[active] = T_end
        done[active] |= n_used < DEPTH_CHUNK
        step += DEPTH_CHUNK
        keep = (count[active] > step) & ~done[active].all(-1)
        active = active[keep]

    image = rgb + T[..., None] * background.to(device=dev, dtype=dt)
    image = image.reshape(tiles_y, tiles_x, TILE, TILE, 3).permute(0, 2, 1, 3, 4)
    alpha_img = (1 - T).reshape(tiles_y, tiles_x, TILE, TILE).permute(0, 2, 1, 3)
    H, W = tiles_y * TILE, tiles_x * TILE
    return image.reshape(H, W, 3)[:height, :width], alpha_img.reshape(H, W)[:height, :width]
