"""The `cpu` backend: gsplat's classic tile rasterizer as fused numba kernels (the default on CPU).

Same rules and image as its readable twin `torch_backend.py` (which the tests compare it with)
and as gsplat 1.5.3's `RasterizeToPixels3DGSFwd.cu`, in float32 (§Rasterization):

- Binning (`_bin`): the live Gaussians (radii > 0) are put in depth order once (a stable LSD
  radix sort of the float32 depths as unsigned integers, ties in input order), then
  counting-sorted by tile (count per tile, prefix sum, scatter in depth order: first into tile
  rows, then each row into its tiles, few write streams at a time), which keeps the depth
  order inside every tile. Tile ranges are computed as the torch twin computes them (8×8
  `TILE`s overlapping mean ± radius, in float32), so both build the same lists. The blend's
  per-Gaussian table is written grouped by the tile holding each Gaussian's centre, so that a
  tile's list reads rows lying together in memory (this halves the blend at 400k Gaussians
  against input order). It runs on one thread (see `_bin` for why).
- Blending (`_blend`, `prange` over chunks of tiles taken dynamically, so a thread delayed by
  another process does not hold up the frame): each tile walks its list once, front to back,
  keeping its pixels' transmittance and colour in a small scratch array. A Gaussian visits
  the tile rows its screen box reaches (outside the box its alpha is below 1/255 by the
  radius' definition, the bound tile binning already relies on), one 8-pixel row at a time,
  branch-free so that LLVM turns the row into vector instructions. Per pixel: centre at
  +0.5, σ = ½(a dx² + c dy²) + b dx dy, skipped when σ < 0; alpha = min(0.999, o·exp(−σ)),
  skipped when below 1/255; the pixel stops at the first Gaussian whose T·(1 − α) ≤ 1e-4,
  which is not blended (gsplat's exclusive stop); a tile row whose pixels have all stopped is
  skipped, and the tile leaves its list once all its pixels have stopped.
  Final colour C + T·background, alpha 1 − T. exp is Cephes' float32 `expf` polynomial
  (under 1 ulp from the exact value on [−30, 0]; gsplat's `__expf` is a cruder approximation),
  written out so that it vectorizes: libm's exp is a call that would keep the row scalar.

Threads: as the projection kernels (`projection.kernel_threads`), the smaller of numba's and
torch's thread counts of the calling thread, so `numba.set_num_threads` or
`torch.set_num_threads` by the caller holds (a stimulus worker's share of the cores, say);
nothing is set at import or left changed. The kernels compile on first use (about 5 s on the
2-core development machine) and are cached on disk (`cache=True`, next to this file or in
numba's user cache), so later processes load them (about 0.3 s).
"""
from __future__ import annotations

import numpy as np
import torch
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic
from torch import Tensor

from .projection import ALPHA_MIN, Projected, _f32, kernel_threads
from .torch_backend import ALPHA_MAX, T_STOP, TILE

TILES_PER_CHUNK = 8   # tiles a blend thread takes at a time

# float32 constants: a bare Python float would make numba compute in float64.
_HALF = np.float32(0.5)
_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)
_TILE_F = np.float32(TILE)
_ALPHA_MAX = np.float32(ALPHA_MAX)
_ALPHA_MIN = np.float32(ALPHA_MIN)
_T_STOP = np.float32(T_STOP)
# exp(−σ) for σ in [0, 30]: beyond 30, o·exp(−σ) < 1/255 for any o ≤ 1 (and stays a normal float)
_SIGMA_CAP = np.float32(30.0)
_LOG2E = np.float32(1.44269504088896341)
_ROUND = np.float32(12582912.0)   # 1.5·2²³: adding then subtracting it rounds to an integer
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
_EXP_P = tuple(np.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                       4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
_P0, _P1, _P2, _P3, _P4, _P5 = _EXP_P

# Columns of the blend's per-Gaussian table.
_MX, _MY, _CA, _CB, _CC, _OP, _R, _G, _B, _RY = range(10)
_ROW = 10


@intrinsic
def _int_bits_as_float(typingctx, bits):
    """The float32 whose IEEE bits are the int32 `bits` (a register move)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@njit(inline="always")
def _exp_neg(sigma):
    """exp(−sigma) in float32 for sigma in [0, _SIGMA_CAP]: Cephes expf (x = n·ln2 + r, a
    degree-7 polynomial in r, times 2ⁿ built from its exponent bits)."""
    x = -sigma
    n = (x * _LOG2E + _ROUND) - _ROUND
    r = x - n * _LN2_HI
    r = r - n * _LN2_LO
    p = ((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5
    y = p * (r * r) + r + _ONE
    return y * _int_bits_as_float((np.int32(n) + np.int32(127)) << np.int32(23))


@njit(cache=True)
def _radix_sort_high(items):
    """`items` (uint64) stably sorted by their high 32 bits: LSD radix sort, 8 bits a pass,
    skipping a pass where every item has the same digit."""
    n = len(items)
    src, dst = items, np.empty(n, np.uint64)
    count = np.empty(257, np.int64)
    for shift in range(32, 64, 8):
        count[:] = 0
        for k in range(n):
            count[((src[k] >> np.uint64(shift)) & np.uint64(255)) + np.uint64(1)] += 1
        if count[1:].max() == n:
            continue
        for d in range(256):
            count[d + 1] += count[d]
        for k in range(n):
            d = (src[k] >> np.uint64(shift)) & np.uint64(255)
            dst[count[d]] = src[k]
            count[d] += 1
        src, dst = dst, src
    return src


@njit(inline="always")
def _tile_index(v, limit):
    """A floored or ceiled tile coordinate clamped to [0, limit] (NaN → 0), as an int."""
    if not v > _ZERO:
        return 0
    return int(min(v, np.float32(limit)))


@njit(cache=True)
def _bin(means2d, conics, depths, radii, colors, opacities, tiles_x, tiles_y):
    """(table [n_live, _ROW] of the live Gaussians grouped by the tile of their centre,
    table rows grouped by tile in depth order, each tile's start offset [n_tiles + 1]).
    One thread: parallel passes each wait for the slowest thread, and under a busy machine
    (threads descheduled) five of them cost ten times the work (measured: 80 ms for 8 ms)."""
    n = len(depths)
    n_tiles = tiles_x * tiles_y
    inv_tile = _ONE / _TILE_F                           # a power of two: x·⅛ is x/8 exactly
    bits = depths.view(np.uint32)

    # 1. Per Gaussian (input order): tile range x0, x1, y0, y1 and the tile of its centre
    #    (−1: culled); list entries per tile and per tile row, Gaussians per centre tile; the
    #    sort keys of the live ones: depth as an unsigned integer of the same order << 32 | i.
    info = np.empty((n, 5), np.int32)
    start = np.zeros(n_tiles + 1, np.int64)
    band_start = np.zeros(tiles_y + 1, np.int64)
    home_row = np.zeros(n_tiles + 1, np.int64)
    keyed = np.empty(n, np.uint64)
    n_live = 0
    for i in range(n):
        if not (radii[i, 0] > 0 and radii[i, 1] > 0):
            info[i, 4] = -1
            continue
        cx, cy = means2d[i, 0], means2d[i, 1]
        rx, ry = np.float32(radii[i, 0]), np.float32(radii[i, 1])
        x0 = _tile_index(np.floor((cx - rx) * inv_tile), tiles_x)
        x1 = _tile_index(np.ceil((cx + rx) * inv_tile), tiles_x)
        y0 = _tile_index(np.floor((cy - ry) * inv_tile), tiles_y)
        y1 = _tile_index(np.ceil((cy + ry) * inv_tile), tiles_y)
        info[i, 0], info[i, 1], info[i, 2], info[i, 3] = x0, x1, y0, y1
        for ty in range(y0, y1):
            band_start[ty + 1] += 1
            for tx in range(x0, x1):
                start[ty * tiles_x + tx + 1] += 1
        hx = min(_tile_index(np.floor(cx * inv_tile), tiles_x), tiles_x - 1)
        hy = min(_tile_index(np.floor(cy * inv_tile), tiles_y), tiles_y - 1)
        info[i, 4] = hy * tiles_x + hx
        home_row[hy * tiles_x + hx + 1] += 1
        b = bits[i]
        key = ~b if b & np.uint32(0x80000000) else b | np.uint32(0x80000000)
        keyed[n_live] = (np.uint64(key) << np.uint64(32)) | np.uint64(i)
        n_live += 1
    for t in range(n_tiles):
        start[t + 1] += start[t]
        home_row[t + 1] += home_row[t]
    for ty in range(tiles_y):
        band_start[ty + 1] += band_start[ty]

    # 2. The table, one row per live Gaussian with all the blend reads about it, grouped by
    #    centre tile (in input order within one); info[i, 4] becomes the row.
    table = np.empty((n_live, _ROW), np.float32)
    for i in range(n):
        home = info[i, 4]
        if home < 0:
            continue
        r = home_row[home]
        home_row[home] += 1
        info[i, 4] = r
        table[r, _MX], table[r, _MY] = means2d[i, 0], means2d[i, 1]
        table[r, _CA], table[r, _CB], table[r, _CC] = conics[i, 0], conics[i, 1], conics[i, 2]
        table[r, _OP] = opacities[i]
        table[r, _R], table[r, _G], table[r, _B] = colors[i, 0], colors[i, 1], colors[i, 2]
        table[r, _RY] = np.float32(radii[i, 1])

    # 3. Depth order, stable: equal depths keep the input order, as the torch twin's sort.
    order = _radix_sort_high(keyed[:n_live])

    # 4. Scatter in depth order in two stable passes with few write streams each: entries
    #    (row << 32 | x0 << 16 | x1) into tile rows, then each tile row's into its tiles.
    band_fill = band_start[:-1].copy()
    band = np.empty(band_start[tiles_y], np.int64)
    for k in range(n_live):
        i = np.int64(order[k] & np.uint64(0xFFFFFFFF))
        entry = (np.int64(info[i, 4]) << 32) | (np.int64(info[i, 0]) << 16) | np.int64(info[i, 1])
        for ty in range(info[i, 2], info[i, 3]):
            band[band_fill[ty]] = entry
            band_fill[ty] += 1
    gauss = np.empty(start[n_tiles], np.int32)
    fill = start[:-1].copy()
    for ty in range(tiles_y):
        row_fill = fill[ty * tiles_x:(ty + 1) * tiles_x]
        for e in range(band_start[ty], band_start[ty + 1]):
            entry = band[e]
            r = np.int32(entry >> 32)
            for tx in range((entry >> 16) & 0xFFFF, entry & 0xFFFF):
                gauss[row_fill[tx]] = r
                row_fill[tx] += 1
    return table, gauss, start


@njit(parallel=True, fastmath=False, cache=True)
def _blend(table, gauss, start, tiles_x, tiles_y, width, height, background, image, alpha_out, stats):
    """Front-to-back blending of every tile into image [H,W,3] and alpha_out [H,W]; per tile,
    stats[tile] = (Gaussian–pixel pairs evaluated on pixels not yet stopped, pairs blended,
    list entries visited before the tile stopped)."""
    n_tiles = tiles_x * tiles_y
    n_chunks = (n_tiles + TILES_PER_CHUNK - 1) // TILES_PER_CHUNK
    bg0, bg1, bg2 = background[0], background[1], background[2]
    for chunk in prange(n_chunks):
        # per tile row: transmittance T (negated once the pixel has stopped, −1 outside the
        # image), then the accumulated r, g, b
        S = np.empty((TILE, 4, TILE), np.float32)
        row_left = np.empty(TILE, np.int64)
        for tile in range(chunk * TILES_PER_CHUNK, min((chunk + 1) * TILES_PER_CHUNK, n_tiles)):
            px0, py0 = (tile % tiles_x) * TILE, (tile // tiles_x) * TILE
            nx, ny = min(TILE, width - px0), min(TILE, height - py0)
            for i in range(TILE):
                for j in range(TILE):
                    S[i, 0, j] = _ONE if i < ny and j < nx else -_ONE
                    S[i, 1, j] = _ZERO
                    S[i, 2, j] = _ZERO
                    S[i, 3, j] = _ZERO
            left = nx * ny                           # pixels still blending, in all
            for i in range(TILE):
                row_left[i] = nx if i < ny else 0    # and per row
            evaluated = 0
            blended = 0
            top = np.float32(py0) + _HALF
            visited = start[tile + 1] - start[tile]
            for k in range(start[tile], start[tile + 1]):
                g = gauss[k]
                mx, my, ry = table[g, _MX], table[g, _MY], table[g, _RY]
                # tile rows whose pixel centres lie within ±radius of the mean
                lo = np.ceil(my - ry - top)
                hi = np.floor(my + ry - top) + _ONE
                r0 = int(min(lo, np.float32(ny))) if lo > _ZERO else 0       # (NaN → every row)
                r1 = int(max(hi, _ZERO)) if hi < np.float32(ny) else ny
                ca, cb, cc, o = table[g, _CA], table[g, _CB], table[g, _CC], table[g, _OP]
                cr, cg, cbl = table[g, _R], table[g, _G], table[g, _B]
                for r in range(r0, r1):
                    if row_left[r] == 0:
                        continue
                    dy = my - (np.float32(py0 + r) + _HALF)
                    stops = 0
                    used = 0
                    free_px = 0
                    for j in range(TILE):                # vectorized by LLVM: keep it branch-free
                        dx = mx - (np.float32(px0 + j) + _HALF)
                        sigma = _HALF * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
                        s = min(sigma, _SIGMA_CAP) if sigma >= _ZERO else _ZERO   # NaN → 0 (not live)
                        a = min(_ALPHA_MAX, o * _exp_neg(s))
                        t = S[r, 0, j]
                        next_t = t * (_ONE - a)
                        free = t > _ZERO
                        live = free & (sigma >= _ZERO) & (a >= _ALPHA_MIN)
                        stop = live & (next_t <= _T_STOP)
                        use = live & (next_t > _T_STOP)
                        w = a * t if use else _ZERO
                        S[r, 1, j] += cr * w
                        S[r, 2, j] += cg * w
                        S[r, 3, j] += cbl * w
                        S[r, 0, j] = next_t if use else (-t if stop else t)
                        stops += np.int32(stop)
                        used += np.int32(use)
                        free_px += np.int32(free)
                    left -= stops
                    row_left[r] -= stops
                    blended += used
                    evaluated += free_px
                if left == 0:
                    visited = k + 1 - start[tile]
                    break
            stats[tile, 0] = evaluated
            stats[tile, 1] = blended
            stats[tile, 2] = visited
            for i in range(ny):
                for j in range(nx):
                    t = abs(S[i, 0, j])
                    image[py0 + i, px0 + j, 0] = S[i, 1, j] + t * bg0
                    image[py0 + i, px0 + j, 1] = S[i, 2, j] + t * bg1
                    image[py0 + i, px0 + j, 2] = S[i, 3, j] + t * bg2
                    alpha_out[py0 + i, px0 + j] = _ONE - t


def tile_grid(width: int, height: int) -> tuple[int, int]:
    return (width + TILE - 1) // TILE, (height + TILE - 1) // TILE


def bin_gaussians(proj: Projected, colors: Tensor, opacities: Tensor, width: int,
                  height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The blend's inputs: (table [live, 10], table rows by tile in depth order, each tile's
    start offset [n_tiles + 1])."""
    tiles_x, tiles_y = tile_grid(width, height)
    radii = np.ascontiguousarray(proj.radii.detach().to("cpu", torch.int32).numpy())
    return _bin(_f32(proj.means2d), _f32(proj.conics), _f32(proj.depths), radii,
                _f32(colors).reshape(-1, 3), _f32(opacities).reshape(-1), tiles_x, tiles_y)


def blend(table: np.ndarray, gauss: np.ndarray, start: np.ndarray, width: int, height: int,
          background: Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image [H,W,3], alpha [H,W], per tile [n_tiles, 3]: Gaussian–pixel pairs evaluated (a
    Gaussian and a not yet stopped pixel of a tile row its box reaches), pairs blended (its
    alpha counted), list entries visited before the tile stopped)."""
    tiles_x, tiles_y = tile_grid(width, height)
    image = np.empty((height, width, 3), np.float32)
    alpha = np.empty((height, width), np.float32)
    stats = np.empty((tiles_x * tiles_y, 3), np.int64)
    with kernel_threads():   # dynamic chunks of 1: a thread takes the next chunk
        _blend(table, gauss, start, tiles_x, tiles_y, width, height, _f32(background).reshape(3),
               image, alpha, stats)
    return image, alpha, stats


def rasterize_stats(proj: Projected, colors: Tensor, opacities: Tensor, width: int, height: int,
                    background: Tensor) -> tuple[Tensor, Tensor, np.ndarray]:
    """`rasterize`, plus the blend's per-tile counts [n_tiles, 3] (see `blend`)."""
    if width <= 0 or height <= 0:
        return torch.zeros(max(height, 0), max(width, 0), 3), torch.zeros(max(height, 0), max(width, 0)), \
            np.zeros((0, 3), np.int64)
    image, alpha, stats = blend(*bin_gaussians(proj, colors, opacities, width, height),
                                width, height, background)
    return torch.from_numpy(image), torch.from_numpy(alpha), stats


def rasterize(proj: Projected, colors: Tensor, opacities: Tensor, width: int, height: int,
              background: Tensor) -> tuple[Tensor, Tensor]:
    """Front-to-back alpha blending; returns (image [H,W,3], alpha [H,W]), float32 on the CPU."""
    image, alpha, _ = rasterize_stats(proj, colors, opacities, width, height, background)
    return image, alpha
