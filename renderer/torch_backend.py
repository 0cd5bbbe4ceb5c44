"""The `torch` backend: gsplat's classic tile algorithm in PyTorch, vectorized over tiles, pixels
and depth. The readable twin of the fused `cpu` backend (`cpu_backend.py`), which must give the
same image; it also runs on any torch device. TILE, ALPHA_MAX and T_STOP are defined here only.

Gaussians are binned into tiles and depth-sorted per tile; blending then walks the per-tile
lists front to back, a chunk of entries at a time for all unfinished tiles at once, and a
tile leaves the loop when every pixel's transmittance has hit the stop threshold, so opaque
surfaces cost only their first few layers. Tiles are 8×8 rather than gsplat's 16×16: the
screen radius bounds each Gaussian exactly where its alpha falls under 1/255, so the tile
size changes which zero terms are skipped, never the image, and avatar splats of a few
pixels waste far fewer evaluations on small tiles.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .projection import ALPHA_MIN, Projected

TILE = 8
DEPTH_CHUNK = 16      # depth entries per step while many tiles are busy
MAX_CHUNK = 256
STEP_BUDGET = 1 << 22  # elements of one [tiles, pixels, entries] step tensor
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


def _exponent_coeffs(table: Tensor, origin: Tensor) -> Tensor:
    """Coefficients [A, 6, D] of s(u, v) = σ(u, v) − ln(o) over pixel basis (1, u, v, u², v², uv),
    in tile-local pixel coordinates, so that alpha = exp(−s) for a whole tile is one matmul.
    `table` [A, D, ≥6] holds mean x, y, conic a, b, c and ln(o) per list entry."""
    mx, my = table[..., 0] - origin[:, None, 0], table[..., 1] - origin[:, None, 1]
    a, b, c, log_o = table[..., 2], table[..., 3], table[..., 4], table[..., 5]
    return torch.stack([0.5 * a * mx * mx + 0.5 * c * my * my + b * mx * my - log_o,
                        -a * mx - b * my, -c * my - b * mx, 0.5 * a, 0.5 * c, b], dim=1)


def _chunk_size(active_tiles: int) -> int:
    """Depth entries per step: few while many tiles are busy (most finish after a few layers),
    more for the long-tailed tiles left at the end, at a roughly constant tensor size."""
    size = DEPTH_CHUNK
    while size < MAX_CHUNK and active_tiles * TILE * TILE * size * 2 <= STEP_BUDGET:
        size *= 2
    return size


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
    log_o = torch.log(opacities.to(dt))
    # One row per Gaussian, gathered once per step: mean, conic, ln(o), colour. A last row
    # with ln(o) = −inf pads the lists, so padding contributes nothing.
    table = torch.cat([proj.means2d, proj.conics, log_o[:, None], colors.to(dt)], dim=1)
    pad = torch.zeros(1, table.shape[1], device=dev, dtype=dt)
    pad[0, 5] = -torch.inf
    table = torch.cat([table, pad])
    gauss = torch.cat([gauss, torch.tensor([len(table) - 1], device=dev)])

    T = torch.ones(n_tiles, TILE * TILE, device=dev, dtype=dt)
    rgb = torch.zeros(n_tiles, TILE * TILE, 3, device=dev, dtype=dt)
    done = torch.zeros(n_tiles, TILE * TILE, device=dev, dtype=torch.bool)
    active = torch.nonzero(count > 0).squeeze(1)
    stop = torch.tensor([-T_STOP], device=dev, dtype=dt)
    step = 0
    while len(active):
        chunk = _chunk_size(len(active))
        pos = step + torch.arange(chunk, device=dev)
        entry = torch.where(pos[None, :] < count[active, None], start[active, None] + pos[None, :], len(gauss) - 1)
        rows = table[gauss[entry]]                                      # [A, D, 9]
        s = basis @ _exponent_coeffs(rows, origins[active])             # [A, P, D]
        alpha = s.neg_().exp_().clamp_(max=ALPHA_MAX)                   # in place, as are the next
        one_minus = torch.nn.functional.threshold_(alpha, ALPHA_MIN, 0.0).neg_().add_(1)
        T0, finished = T[active], done[active]
        # −T after each entry: non-decreasing along the list, so the entries that keep
        # T above T_STOP (those gsplat blends; its stop is exclusive) are a searchable prefix.
        neg_trans = torch.cumprod(one_minus, dim=-1).mul_(-T0[..., None])
        n_used = torch.searchsorted(neg_trans, stop.expand(neg_trans.shape[:-1] + (1,)).contiguous())[..., 0]
        n_used.masked_fill_(finished, 0)
        last = neg_trans.gather(-1, (n_used - 1).clamp(min=0)[..., None])[..., 0]
        T_end = torch.where(n_used > 0, -last, T0)
        # Σ_i (T_{i−1} − T_i)·c_i = T_0·c_0 + Σ_i T_i·(c_{i+1} − c_i), with c_D = 0; holding T
        # at T_end past the prefix makes the later entries' weights vanish.
        held_neg = torch.minimum(neg_trans, -T_end[..., None], out=neg_trans)
        c = rows[..., 6:9]
        step_colors = torch.cat([c[:, 1:], torch.zeros_like(c[:, :1])], dim=1) - c
        rgb[active] += T0[..., None] * c[:, None, 0, :] - held_neg @ step_colors
        T[active] = T_end
        done[active] = finished | (n_used < chunk)
        step += chunk
        active = active[(count[active] > step) & ~done[active].all(-1)]

    image = rgb + T[..., None] * background.to(device=dev, dtype=dt)
    image = image.reshape(tiles_y, tiles_x, TILE, TILE, 3).permute(0, 2, 1, 3, 4)
    alpha_img = (1 - T).reshape(tiles_y, tiles_x, TILE, TILE).permute(0, 2, 1, 3)
    H, W = tiles_y * TILE, tiles_x * TILE
    return image.reshape(H, W, 3)[:height, :width], alpha_img.reshape(H, W)[:height, :width]
