"""CPU backend frames per second vs a naive tile renderer, on avatar-like scenes.

Scenes: N flat Gaussians on a head-sized ellipsoid shell (as an avatar's skin), seen
frontally so the head fills ~80% of the frame. The naive reference shares the projection
and the per-tile depth-sorted lists but blends with a Python loop per pixel over its tile's
list (vectorised over the list, stopping at the same transmittance rule). Both images are
compared (PSNR) so the speed-up is at equal output.

    python benchmarks/render_speed.py            # full table (several minutes on 2 cores)
    python benchmarks/render_speed.py --quick    # 10k only
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch

from renderer.camera import frame_head, orbit_camera
from renderer.cpu_backend import ALPHA_MAX, T_STOP, TILE, _tile_lists, rasterize
from renderer.gaussians import GaussianSet, rgb_to_sh0
from renderer.projection import ALPHA_MIN, project
from renderer.rotations import rotmat_to_quat
from renderer.sh import sh_colors


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


def naive_render(g: GaussianSet, cam, background: torch.Tensor) -> np.ndarray:
    proj = project(g.means, g.quats, g.scales, cam.viewmat, cam.K, cam.width, cam.height, g.opacities)
    colors = sh_colors(g.sh, g.means, cam.center).numpy()
    gauss, start, count, tiles_x, tiles_y = _tile_lists(proj, cam.width, cam.height)
    m2, con, op = proj.means2d.numpy(), proj.conics.numpy(), g.opacities.numpy()
    bg = background.numpy()
    out = np.tile(bg, (cam.height, cam.width, 1)).astype(np.float32)
    for tile in range(tiles_x * tiles_y):
        ids = gauss[start[tile]:start[tile] + count[tile]].numpy()
        if len(ids) == 0:
            continue
        tx, ty = tile % tiles_x, tile // tiles_x
        for py in range(ty * TILE, min((ty + 1) * TILE, cam.height)):
            for px in range(tx * TILE, min((tx + 1) * TILE, cam.width)):
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
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    counts = [10_000] if args.quick else [10_000, 50_000, 100_000]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'gaussians':>10} {'size':>8} {'cpu fps':>9} {'naive fps':>10} {'speed-up':>9} {'PSNR dB':>8}")
    bg = torch.ones(3)
    for n in counts:
        g = shell_scene(n)
        for size in (256, 512):
            target, dist = frame_head(g.means, size, size)
            cam = orbit_camera(target, 0, 0, dist, size, size)

            def ours():
                proj = project(g.means, g.quats, g.scales, cam.viewmat, cam.K, size, size, g.opacities)
                return rasterize(proj, sh_colors(g.sh, g.means, cam.center), g.opacities, size, size, bg)[0]

            with torch.no_grad():
                image = ours()
                t_ours = timed(ours, 5)
                start = time.perf_counter()
                reference = naive_render(g, cam, bg)
                t_naive = time.perf_counter() - start
            mse = float(np.mean((image.numpy() - reference) ** 2))
            print(f"{n:>10,} {size:>4}x{size:<3} {1 / t_ours:>9.2f} {1 / t_naive:>10.3f} "
                  f"{t_naive / t_ours:>8.0f}x {10 * math.log10(1 / max(mse, 1e-20)):>8.1f}", flush=True)


if __name__ == "__main__":
    main()
