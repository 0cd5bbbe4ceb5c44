"""Where a CPU frame's time goes, stage by stage, before and after the fused per-Gaussian path.

Per frame at 512²: FLAME forward (8 frames a batch, as the Player poses them), binding,
projection and SH colours, and the blend (cpu_backend.rasterize, the same for both paths).
"before" is the path as it was: bind() (world quaternions, the triangle frame's quaternion
computed per Gaussian) → project() → sh_colors(), in PyTorch. "after" is what render_cpu and the
Player run now: bind_covariances() (world means and covariances, numba) → project_shade()
(projection and SH in one numba pass). Avatars: the demo (40,933 Gaussians) and a 100k one made
from it by resampling its Gaussians (each keeps its triangle, sorted by triangle as the demo's
are; moved within the triangle's plane by up to its own size, in-plane scales shrunk by √(n/N)).

    python benchmarks/stage_times.py [--threads 1 2] [--repeats 21] [--clock wall|cpu]

Times are ms per frame, median of `repeats` runs (min in parentheses); torch and numba both get
the thread count. `--clock cpu` times with the calling thread's CPU time instead of the wall
clock: on a machine shared with other work, it leaves out the time the process waits for a
core, and with one thread all the work runs on the calling thread (not meaningful for more).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numba
import numpy as np
import torch

from avatar_app.avatar import SIGNAL_DEMO_SOURCE
from avatar_app.player import Player
from renderer.binding import bind_covariances, triangle_frames
from renderer.cpu_backend import rasterize
from renderer.gaussians import GaussianSet
from renderer.projection import project, project_shade
from renderer.rotations import quat_multiply, rotmat_to_quat
from renderer.sh import sh_colors

BATCH = 8  # frames posed at a time, as Player.render_range on the CPU


def bind_before(g: GaussianSet, vertices: torch.Tensor, faces: torch.Tensor):
    """renderer.binding.bind as it was before the fused path (quaternion per Gaussian)."""
    R, k, c = triangle_frames(vertices, faces)
    b = g.binding
    R, k, c = R[..., b, :, :], k[..., b, None], c[..., b, :]
    means = k * (R @ g.means[..., None])[..., 0] + c
    quats = quat_multiply(rotmat_to_quat(R), torch.nn.functional.normalize(g.quats, dim=-1))
    return means, quats, g.scales * k


def resampled(g: GaussianSet, n: int, seed: int = 0) -> GaussianSet:
    """n Gaussians drawn from g's, each on its own triangle (see the module docstring)."""
    rng = np.random.default_rng(seed)
    idx = torch.from_numpy(np.sort(rng.integers(0, len(g), n)))
    shrink = (len(g) / n) ** 0.5
    means = g.means[idx].clone()
    means[:, [0, 2]] += torch.from_numpy(rng.uniform(-1, 1, (n, 2)).astype(np.float32)) * g.scales[idx][:, [0, 2]]
    scales = g.scales[idx] * torch.tensor([shrink, 1.0, shrink])
    return GaussianSet(means, g.quats[idx], scales, g.opacities[idx], g.sh[idx], g.binding[idx])


CLOCK = time.perf_counter


def timed(fn, repeats: int, per: int = 1) -> tuple[float, float]:
    """(median, min) ms of fn() / per."""
    fn()  # warm: numba kernels load from their cache (or compile) on first use
    times = []
    for _ in range(repeats):
        start = CLOCK()
        fn()
        times.append((CLOCK() - start) * 1e3 / per)
    return statistics.median(times), min(times)


def cell(t: tuple[float, float]) -> str:
    return f"{t[0]:6.2f} ({t[1]:5.2f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.thread_time if args.clock == "cpu" else time.perf_counter

    player = Player(SIGNAL_DEMO_SOURCE.load(), backend="cpu")
    player.set_emotions({"happy": 0.7, "surprised": 0.3})
    player.view.width = player.view.height = args.size
    camera, faces, background = player.camera(), player.rig.faces, torch.ones(3)
    params = player.flame_params(0, BATCH)
    avatars = [player.gaussians, resampled(player.gaussians, 100_000)]
    print(f"torch {torch.__version__}, numba {numba.__version__}, {args.size}², ms per frame ({args.clock} clock): "
          f"median (min) of {args.repeats}")
    header = (f"{'threads':>7} {'Gaussians':>9} {'path':>6} | {'FLAME':>14} {'bind':>14} {'project':>14} "
              f"{'SH':>14} {'bind+proj+SH':>14} | {'blend':>14}")
    print(header)
    print("-" * len(header))
    with torch.no_grad():
        for threads in args.threads:
            torch.set_num_threads(threads)
            numba.set_num_threads(threads)
            flame = timed(lambda: player.rig(params), args.repeats, BATCH)
            vertices = player.rig(params)
            for g in avatars:
                means, quats, scales = bind_before(g, vertices, faces)
                new_means, covs, _ = bind_covariances(g, vertices, faces)
                before = {
                    "bind": timed(lambda: bind_before(g, vertices, faces), args.repeats, BATCH),
                    "project": timed(lambda: project(means[0], quats[0], scales[0], camera.viewmat, camera.K,
                                                     camera.width, camera.height, opacities=g.opacities), args.repeats),
                    "SH": timed(lambda: sh_colors(g.sh, means[0], camera.center), args.repeats),
                }
                after = {
                    "bind": timed(lambda: bind_covariances(g, vertices, faces), args.repeats, BATCH),
                    "project+SH": timed(lambda: project_shade(new_means[0], covs[0], g.opacities, g.sh, camera),
                                        args.repeats),
                }
                proj, colors = project_shade(new_means[0], covs[0], g.opacities, g.sh, camera)
                blend = timed(lambda: rasterize(proj, colors, g.opacities, camera.width, camera.height, background),
                              max(5, args.repeats // 3))
                total_before = tuple(sum(v[i] for v in before.values()) for i in range(2))
                total_after = tuple(sum(v[i] for v in after.values()) for i in range(2))
                print(f"{threads:>7} {len(g):>9,} {'before':>6} | {cell(flame)} {cell(before['bind'])} "
                      f"{cell(before['project'])} {cell(before['SH'])} {cell(total_before)} | {cell(blend)}")
                print(f"{threads:>7} {len(g):>9,} {'after':>6} | {cell(flame)} {cell(after['bind'])} "
                      f"{'fused:':>14} {cell(after['project+SH'])} {cell(total_after)} | {cell(blend)}", flush=True)


if __name__ == "__main__":
    main()
