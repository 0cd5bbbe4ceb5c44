"""Proof of the GPU path on a machine with an NVIDIA GPU (run by `benchmarks/gpu_check.sh`).

Prints
1. CPU-vs-gsplat PSNR per frame on the demo avatar and on a 100k-Gaussian avatar bound to the
   demo FLAME's triangles, frames spread over the demo clip (the Player's own frames, uint8);
2. a timing table at 512², 100k Gaussians: raster only (posed Gaussians already on the GPU, one
   gsplat call per batch), end to end (`Player.render_range`: weights → FLAME → bind → gsplat →
   uint8 → pinned read-back, frames in host memory) and their ratio, for several batch sizes;
   an MP4 recorded with the writer thread and without;
3. the viewport's path (`Player.render_frame` on a snapshot, as the app's render thread calls
   it, without Qt) at the app's preview and full sizes, playing and orbiting a paused frame.
Targets (printed beside the numbers): end to end ≤ 1.3× the raster-only time per frame;
≥ 1000 frames/s end to end in batches at 512² with 100k Gaussians; PSNR ≥ 40 dB.

    python benchmarks/gpu_check.py              # needs CUDA and gsplat
    python benchmarks/gpu_check.py --dry-run    # any machine: the same steps, small, all on the CPU

Exit status: 1 when a PSNR is under its floor (the GPU images are wrong), else 0; with --strict
also 1 when a speed target is missed.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from assets import DEMO_AUDIO
from avatar_app.avatar import SIGNAL_DEMO_SOURCE, Avatar
from avatar_app.clip import clip_from_audio
from avatar_app.player import Player
from avatar_app.video import write_mp4
from models.rig.flame import FlameParams
from renderer.binding import bind, triangle_frames
from renderer.gaussians import GaussianSet
from renderer.render import render_cpu

PSNR_FLOOR = 40.0          # dB, as tests/test_gsplat_backend.py
E2E_OVER_RASTER = 1.3      # end to end time per frame ≤ this × raster-only time per frame
BATCH_FPS = 1000.0         # frames/s end to end in batches at 512², 100k Gaussians
VIEWPORT_SIZES = {"preview (CPU only)": (256, 132), "full": (770, 400), "full, 2× HiDPI": (1540, 800),
                  "square": (512, 512)}  # the viewport of a 1100×760 window (gui/main_window.py)


def dense_avatar(avatar: Avatar, count: int, seed: int = 0) -> Avatar:
    """`avatar` with `count` Gaussians sampled on the triangles its Gaussians ride: each new one
    copies a random original's triangle, look (SH, opacity, rotation) and offset along the normal,
    at a random point of that triangle, its in-plane scales shrunk so the surface stays covered
    about as densely."""
    g, rig = avatar.gaussians, avatar.rig
    rng = torch.Generator().manual_seed(seed)
    source = torch.randint(len(g), (count,), generator=rng)
    faces = g.binding[source]
    vertices = rig(FlameParams.neutral(1, avatar.params.shape, avatar.params.static_offset))[0].double()
    R, k, c = (t.double() for t in triangle_frames(vertices, rig.faces.cpu()))
    corners = vertices[rig.faces.cpu()[faces]]  # (count, 3, 3)
    r1, r2 = torch.rand(count, generator=rng, dtype=torch.float64), torch.rand(count, generator=rng, dtype=torch.float64)
    s = r1.sqrt()
    bary = torch.stack([1 - s, s * (1 - r2), s * r2], -1)
    points = (bary[..., None] * corners).sum(1)
    local = torch.einsum("nji,nj->ni", R[faces], points - c[faces]) / k[faces, None]
    local[:, 1] = g.means[source, 1].double()  # the original's offset along the normal
    shrink = math.sqrt(len(g) / count)
    scales = g.scales[source].clone()
    scales[:, [0, 2]] *= shrink
    dense = GaussianSet(local.float(), g.quats[source].clone(), scales, g.opacities[source].clone(),
                        g.sh[source].clone(), faces.clone())
    return dataclasses.replace(avatar, gaussians=dense, source=f"{avatar.source} ({count:,} sampled Gaussians)")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) / 255 - b.astype(np.float64) / 255) ** 2))
    return 10 * math.log10(1.0 / max(mse, 1e-20))


def demo_clip_player(avatar: Avatar, backend: str, size: tuple[int, int], fps: float = 30.0) -> Player:
    player = Player(avatar, backend=backend)
    player.set_view(width=size[0], height=size[1])
    player.clip = clip_from_audio(DEMO_AUDIO, player.driver, fps)
    return player


class Gpu:
    """The GPU side of the check, or its CPU stand-in for --dry-run."""

    def __init__(self, dry_run: bool) -> None:
        self.dry_run = dry_run
        self.backend = "cpu" if dry_run else "gsplat"

    def sync(self) -> None:
        if not self.dry_run:
            torch.cuda.synchronize()

    def raster(self, player: Player) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
        """Images [B,H,W,3] of posed Gaussians [B,N,·] under the player's view: one gsplat call."""
        camera, g = player.camera(), player.gaussians
        background = torch.tensor(player.view.background)
        if self.dry_run:
            return lambda m, q, s: torch.stack([render_cpu(g.with_world(*x), camera, background)[0]
                                                for x in zip(m, q, s)])
        from renderer.gsplat_backend import device_view, rasterize_batch
        viewmat, K, bg = device_view(camera, background, player.device)
        return lambda m, q, s: rasterize_batch(m, q, s, g.opacities, g.sh, viewmat, K, camera.width,
                                               camera.height, bg)[0]


def timed(run: Callable[[], int], sync: Callable[[], None], seconds: float) -> float:
    """Frames per second of `run` (which returns how many frames it made), repeated for about
    `seconds` after one warm-up run."""
    run()
    sync()
    frames, start = 0, time.perf_counter()
    while True:
        frames += run()
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return frames / elapsed


def mark(ok: bool) -> str:
    return "met" if ok else "NOT met"


def check_psnr(avatars: dict[str, Avatar], gpu: Gpu, size: int, count: int) -> bool:
    print(f"## CPU vs {gpu.backend}: PSNR per frame ({size}×{size}, demo clip, floor {PSNR_FLOOR:.0f} dB)\n")
    ok = True
    for name, avatar in avatars.items():
        cpu = demo_clip_player(avatar, "cpu", (size, size))
        other = demo_clip_player(avatar, gpu.backend, (size, size))
        frames = np.linspace(0, cpu.clip.num_frames - 1, count).round().astype(int)
        scores = [psnr(cpu.render_frame(int(i)), other.render_frame(int(i))) for i in frames]
        # the same frames from a batch must be the same images as one by one
        batch = list(other.render_range(int(frames[0]), int(frames[0]) + 8))
        singles = [other.render_frame(int(frames[0]) + j) for j in range(8)]
        batch_diff = max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(batch, singles))
        ok = ok and min(scores) >= PSNR_FLOOR and batch_diff <= 2
        print(f"{name} ({len(avatar.gaussians):,} Gaussians), frames {', '.join(map(str, frames))}:")
        shown = ["inf" if s > 199 else f"{s:.1f}" for s in scores]  # identical images
        print(f"  PSNR dB: {', '.join(shown)}  (min {shown[int(np.argmin(scores))]}: "
              f"{mark(min(scores) >= PSNR_FLOOR)})")
        print(f"  batch of 8 vs one by one: max difference {batch_diff} levels ({mark(batch_diff <= 2)})\n")
    return ok


def check_speed(avatar: Avatar, gpu: Gpu, size: int, batches: list[int], seconds: float,
                clip_frames: int | None) -> bool:
    player = demo_clip_player(avatar, gpu.backend, (size, size), fps=120.0)  # 851 frames of speech
    total = clip_frames or player.clip.num_frames
    raster = gpu.raster(player)
    # FLAME + binding done once (as the gsplat path poses): raster only from here
    posed = bind(player.gaussians, player.rig(player.flame_params(0, max(batches))), player.rig.faces)
    list(player.render_range(0, total))  # weights of the whole clip made once (kept by the Player)
    rows = []
    for b in batches:
        args = tuple(t[:b] for t in posed)
        raster_fps = timed(lambda: len(raster(*args)), gpu.sync, seconds)

        def end_to_end() -> int:
            return sum(1 for _ in player.render_range(0, total, batch=b))
        e2e_fps = timed(end_to_end, gpu.sync, seconds)
        rows.append((b, raster_fps, e2e_fps))

    print(f"## Speed: {size}×{size}, {len(avatar.gaussians):,} Gaussians, backend {gpu.backend}, "
          f"end to end over {total} frames of the demo clip\n")
    print("| batch | raster only frames/s | end to end frames/s | end to end ms/frame | e2e ÷ raster time "
          f"(≤ {E2E_OVER_RASTER}) |")
    print("|---:|---:|---:|---:|---|")
    for b, r, e in rows:
        print(f"| {b} | {r:,.0f} | {e:,.0f} | {1000 / e:.3f} | {r / e:.2f} ({mark(r / e <= E2E_OVER_RASTER)}) |")
    from renderer.gsplat_backend import GPU_BATCH
    default = min(rows, key=lambda row: abs(row[0] - GPU_BATCH))
    best = max(e for b, _, e in rows if b > 1)
    ratio_ok = default[1] / default[2] <= E2E_OVER_RASTER
    fps_ok = best >= BATCH_FPS
    print(f"\ntarget end to end ≤ {E2E_OVER_RASTER}× raster-only time at the default batch ({default[0]}): "
          f"{default[1] / default[2]:.2f}×, {mark(ratio_ok)}")
    print(f"target ≥ {BATCH_FPS:,.0f} frames/s end to end in batches: {best:,.0f}, {mark(fps_ok)}\n")

    # recording: the same frames, encoded while the next batch renders, or in turn
    player.clip = clip_from_audio(DEMO_AUDIO, player.driver, 30.0)
    n = min(player.clip.num_frames, clip_frames or player.clip.num_frames)
    list(player.render_range(0, n))  # the new clip's weights, made before the clock starts
    print(f"| MP4 of {n} frames ({size}×{size}, libx264) | frames/s |")
    print("|---|---:|")
    with tempfile.TemporaryDirectory() as scratch:
        for threaded in (True, False):
            start = time.perf_counter()
            write_mp4(player.render_range(0, n), Path(scratch) / f"{threaded}.mp4", (size, size),
                      player.clip.fps, n, threaded=threaded)
            fps = n / (time.perf_counter() - start)
            print(f"| {'writer thread' if threaded else 'synchronous'} | {fps:,.0f} |")
        same = (Path(scratch) / "True.mp4").read_bytes() == (Path(scratch) / "False.mp4").read_bytes()
    print(f"\nthe two MP4s are {'identical' if same else 'DIFFERENT'}\n")
    return ratio_ok and fps_ok and same


def check_viewport(avatars: dict[str, Avatar], gpu: Gpu, seconds: float, sizes: dict[str, tuple[int, int]]) -> None:
    print(f"## Viewport path: Player.render_frame on a snapshot (as gui/render_worker.py), backend {gpu.backend}\n")
    print("| avatar | size | playing frames/s | ms | orbiting a paused frame frames/s | ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, avatar in avatars.items():
        player = demo_clip_player(avatar, gpu.backend, (512, 512))
        for label, (w, h) in sizes.items():
            state = {"frame": 0, "yaw": 0.0}

            def playing() -> int:
                snap = player.snapshot()
                snap.set_view(width=w, height=h)
                snap.render_frame(state["frame"] % player.clip.num_frames)
                state["frame"] += 1
                return 1

            def orbiting() -> int:
                state["yaw"] = (state["yaw"] + 2.0) % 360 - 180
                snap = player.snapshot()
                snap.set_view(width=w, height=h, yaw=state["yaw"])
                snap.render_frame(40)
                return 1
            play, orbit = timed(playing, gpu.sync, seconds), timed(orbiting, gpu.sync, seconds)
            print(f"| {name} | {label} {w}×{h} | {play:,.0f} | {1000 / play:.2f} | {orbit:,.0f} | {1000 / orbit:.2f} |")
    print()


def environment(gpu: Gpu) -> None:
    print("# GPU check" + (" (dry run: all on the CPU, small)" if gpu.dry_run else ""))
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, {os.cpu_count()} cores")
    if not gpu.dry_run:
        import gsplat
        props = torch.cuda.get_device_properties(0)
        print(f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability "
              f"{props.major}.{props.minor}; CUDA {torch.version.cuda}; gsplat {gsplat.__version__}")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="the same steps, small and on the CPU")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a speed target is missed")
    parser.add_argument("--gaussians", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=8, help="frames compared per avatar")
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args(argv)
    gpu = Gpu(args.dry_run)
    if not gpu.dry_run and not torch.cuda.is_available():
        print("no CUDA GPU: skipped")
        return 0
    torch.set_grad_enabled(False)
    environment(gpu)
    demo = SIGNAL_DEMO_SOURCE.load()  # the hand-made blendshapes and signal driver: no network, quick
    dense = dense_avatar(demo, args.gaussians)
    avatars = {"demo": demo, f"{args.gaussians // 1000}k": dense}
    if gpu.dry_run:
        psnr_ok = check_psnr(avatars, gpu, 48, 3)
        speed_ok = check_speed(dense, gpu, 48, [1, 4], 0.05, clip_frames=8)
        check_viewport({"demo": demo}, gpu, 0.05, {"preview": (64, 34)})
    else:
        psnr_ok = check_psnr(avatars, gpu, args.size, args.frames)
        speed_ok = check_speed(dense, gpu, args.size, [1, 8, 16, 32, 64], args.seconds, clip_frames=None)
        check_viewport(avatars, gpu, args.seconds, VIEWPORT_SIZES)
    print(f"PSNR: {'pass' if psnr_ok else 'FAIL'}; speed targets: {'met' if speed_ok else 'NOT met'}")
    return 0 if psnr_ok and (speed_ok or not args.strict) else 1


if __name__ == "__main__":
    sys.exit(main())
