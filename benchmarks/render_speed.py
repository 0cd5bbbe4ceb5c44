"""CPU rasterizers on avatar-like scenes: `cpu` (fused numba), `torch` (its PyTorch twin) and a
naive per-pixel Python loop, on the same projected Gaussians, with the images compared.

Scenes: N flat Gaussians on a head-sized ellipsoid shell (as an avatar's skin), seen frontally
so the head fills ~80% of the frame. The naive reference shares the projection and the torch
backend's per-tile depth-sorted lists but blends with a Python loop per pixel over its tile's
list (vectorised over the list, stopping at the same transmittance rule); it runs only up to
100k Gaussians at 512².

Per scene: frames per second of each backend's whole frame (`render_cpu`: projection, SH colours,
rasterization) and of the rasterization alone, the cpu/torch ratios measured in this run, PSNR
of cpu against torch and against naive; then the cpu blend's work: binning and blend times,
Gaussian–pixel pairs evaluated (on pixels not yet stopped) and blended, nanoseconds per pair.

    python benchmarks/render_speed.py                # 10k–400k × 256²–1024² (a few minutes on 2 cores)
    python benchmarks/render_speed.py --quick        # 10k and 100k at 256² and 512²
    python benchmarks/render_speed.py --threads 1    # numba and torch threads
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import numba
import numpy as np
import torch

from renderer import cpu_backend, torch_backend
from renderer.camera import frame_head, orbit_camera
from renderer.gaussians import GaussianSet, rgb_to_sh0
from renderer.projection import ALPHA_MIN, project
from renderer.render import render_cpu
from renderer.rotations import rotmat_to_quat
from renderer.sh import sh_colors
from renderer.torch_backend import ALPHA_MAX, T_STOP, TILE, _tile_lists

NAIVE_MAX = (100_000, 512 * 512)   # the naive loop runs up to this many Gaussians and pixels


def shell_scene(n: int, seed: int = 0) -> GaussianSet:
    g = torch.Generator().manual_seed(seed)
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    radii = torch.tensor([0.078, 0.105, 0.092])
    means = d * radii
    normal = torch.nn.functional.normalize(d / radii, dim=-1)
    tangent = torch.nn.functional.normalize(torch.linalg.cross(normal, torch.randn(n, 3, generator=g)), dim=-1)
    R = torch.stack([tangent, normal, torch.linalg.cross(tangent, normal)], dim=-1)
    spacing = math.sqrt(0.1 / n)
    scales = torch.stack([torch.full((n,), 0.9 * spacing), torch.full((n,), 3e-4), torch.full((n,), 0.9 * spacing)], -1)
    rgb = 0.3 + 0.6 * torch.rand(n, 3, generator=g)
    return GaussianSet(means, rotmat_to_quat(R), scales, torch.full((n,), 0.98), rgb_to_sh0(rgb)[:, None])


def naive_render(proj, colors: torch.Tensor, opacities: torch.Tensor, width: int, height: int,
                 background: torch.Tensor) -> np.ndarray:
    gauss, start, count, tiles_x, tiles_y = _tile_lists(proj, width, height)
    m2, con, op, colors = proj.means2d.numpy(), proj.conics.numpy(), opacities.numpy(), colors.numpy()
    bg = background.numpy()
    out = np.tile(bg, (height, width, 1)).astype(np.float32)
    for tile in range(tiles_x * tiles_y):
        ids = gauss[start[tile]:start[tile] + count[tile]].numpy()
        if len(ids) == 0:
            continue
        tx, ty = tile % tiles_x, tile // tiles_x
        for py in range(ty * TILE, min((ty + 1) * TILE, height)):
            for px in range(tx * TILE, min((tx + 1) * TILE, width)):
                dx, dy = m2[ids, 0] - (px + 0.5), m2[ids, 1] - (py + 0.5)
                sigma = 0.5 * (con[ids, 0] * dx * dx + con[ids, 2] * dy * dy) + con[ids, 1] * dx * dy
                alpha = np.minimum(ALPHA_MAX, op[ids] * np.exp(-sigma))
                alpha[(alpha < ALPHA_MIN) | (sigma < 0)] = 0
                trans = np.cumprod(1 - alpha)
                used = trans > T_STOP
                before = np.concatenate([[1.0], trans[:-1]])
                w = np.where(used, alpha * before, 0)
                t_end = trans[used][-1] if used.any() else 1.0
                out[py, px] = w @ colors[ids] + t_end * bg
    return out


def timed(fn, repeats: int) -> float:
    """Median seconds of `repeats` calls, after one untimed call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def psnr(a, b) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 10 * math.log10(1 / max(mse, 1e-20))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10k and 100k Gaussians at 256² and 512²")
    parser.add_argument("--threads", type=int, help="numba and torch threads (default: as they are)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.threads:
        numba.set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
    counts = [10_000, 100_000] if args.quick else [10_000, 50_000, 100_000, 400_000]
    sizes = [256, 512] if args.quick else [256, 512, 1024]
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), numba {numba.__version__} "
          f"({numba.get_num_threads()} threads, {numba.threading_layer() if _warm() else '?'} layer)")
    print(f"{'gaussians':>9} {'size':>9} | {'frame fps: cpu':>14} {'torch':>6} | {'raster fps: cpu':>15} {'torch':>6} "
          f"{'naive':>6} | {'cpu/torch frame':>15} {'raster':>6} | {'PSNR cpu-torch':>14} {'cpu-naive':>9}")
    detail = []
    bg = torch.ones(3)
    for n in counts:
        g = shell_scene(n)
        for size in sizes:
            target, dist = frame_head(g.means, size, size)
            cam = orbit_camera(target, 0, 0, dist, size, size)
            repeats = args.repeats if n * size * size <= 100_000 * 512 * 512 else max(2, args.repeats // 2)
            with torch.no_grad():
                proj = project(g.means, g.quats, g.scales, cam.viewmat, cam.K, size, size, g.opacities)
                colors = sh_colors(g.sh, g.means, cam.center)
                raster = {name: (lambda m=module: m.rasterize(proj, colors, g.opacities, size, size, bg))
                          for name, module in (("cpu", cpu_backend), ("torch", torch_backend))}
                t_frame = {name: timed(lambda b=name: render_cpu(g, cam, bg, backend=b), repeats)
                           for name in ("cpu", "torch")}
                t_raster = {name: timed(fn, repeats) for name, fn in raster.items()}
                image, _, stats = cpu_backend.rasterize_stats(proj, colors, g.opacities, size, size, bg)
                reference = raster["torch"]()[0]
                naive_fps, naive_psnr = "-", "-"
                if n <= NAIVE_MAX[0] and size * size <= NAIVE_MAX[1]:
                    start = time.perf_counter()
                    naive = naive_render(proj, colors, g.opacities, size, size, bg)
                    naive_fps = f"{1 / (time.perf_counter() - start):.3f}"
                    naive_psnr = f"{psnr(image, naive):.1f}"
                binned = cpu_backend.bin_gaussians(proj, colors, g.opacities, size, size)
                t_bin = timed(lambda: cpu_backend.bin_gaussians(proj, colors, g.opacities, size, size), repeats)
                t_blend = timed(lambda: cpu_backend.blend(*binned, size, size, bg), repeats)
            print(f"{n:>9,} {f'{size}x{size}':>9} | {1 / t_frame['cpu']:>14.2f} {1 / t_frame['torch']:>6.2f} | "
                  f"{1 / t_raster['cpu']:>15.2f} {1 / t_raster['torch']:>6.2f} {naive_fps:>6} | "
                  f"{t_frame['torch'] / t_frame['cpu']:>14.1f}x {t_raster['torch'] / t_raster['cpu']:>5.1f}x | "
                  f"{psnr(image, reference):>14.1f} {naive_psnr:>9}", flush=True)
            evaluated, blended = int(stats[:, 0].sum()), int(stats[:, 1].sum())
            detail.append((n, size, t_bin, t_blend, len(binned[1]), evaluated, blended))
    print("\ncpu backend detail (blend pairs: a Gaussian and a pixel not yet stopped in a tile row its box reaches)")
    print(f"{'gaussians':>9} {'size':>9} | {'bin ms':>7} {'blend ms':>8} | {'list entries':>12} {'pairs evaluated':>15} "
          f"{'blended':>10} | {'ns/pair':>7} {'ns/blended':>10}")
    for n, size, t_bin, t_blend, entries, evaluated, blended in detail:
        print(f"{n:>9,} {f'{size}x{size}':>9} | {t_bin * 1e3:>7.2f} {t_blend * 1e3:>8.2f} | {entries:>12,} "
              f"{evaluated:>15,} {blended:>10,} | {t_blend * 1e9 / max(evaluated, 1):>7.2f} "
              f"{t_blend * 1e9 / max(blended, 1):>10.2f}")


def _warm() -> bool:
    """Render once on the cpu backend (compiling or loading its kernels): the threading layer is
    known only after a parallel kernel has run."""
    g = shell_scene(100)
    target, dist = frame_head(g.means, 32, 32)
    with torch.no_grad():
        render_cpu(g, orbit_camera(target, 0, 0, dist, 32, 32), torch.ones(3))
    return True


if __name__ == "__main__":
    main()
