"""gsplat (CUDA) against our CPU backend and the batched GPU path of the Player (tests marked
`cuda`, skipped without a GPU), and the writer thread that encodes while frames render (CPU).

The batched path's logic (batches, look-ahead, cancellation, errors, require_visible) is also run
on the CPU with gsplat's call and the pinned read-back replaced by CPU stand-ins."""
import dataclasses
import hashlib
import math
import threading
import time

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import renderer.gsplat_backend as gsplat_backend
from assets import DEMO_AUDIO
from avatar_app.avatar import SIGNAL_DEMO_SOURCE, load_demo
from avatar_app.clip import clip_from_audio
from avatar_app.player import Cancelled, Player
from avatar_app.video import write_behind, write_mp4, write_png_folder
from common.errors import InputError
from renderer.binding import bind
from renderer.camera import Camera, orbit_camera
from renderer.gaussians import GaussianSet
from renderer.gsplat_backend import GPU_BATCH, rasterize_batch, render_gsplat
from renderer.render import render_cpu

cuda = pytest.mark.cuda
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU for gsplat")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(1.0 / max(float(np.mean((a - b) ** 2)), 1e-20))


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "frame-writer"]


@pytest.fixture(scope="module")
def demo():
    return SIGNAL_DEMO_SOURCE.load()


def small_player(avatar, backend="cpu", size=48, seconds=0.7) -> Player:
    player = Player(avatar, backend=backend)
    player.view.width = player.view.height = size
    player.clip = clip_from_audio(DEMO_AUDIO, player.driver, 30, duration=seconds)
    return player


# --- gsplat on a GPU ---------------------------------------------------------------------------

@cuda
@needs_cuda
def test_random_scene_matches_cpu():
    g = torch.Generator().manual_seed(0)
    n = 2000
    scene = GaussianSet(torch.randn(n, 3, generator=g) * 0.3, torch.randn(n, 4, generator=g),
                        torch.rand(n, 3, generator=g) * 0.05 + 0.005, torch.rand(n, generator=g),
                        torch.randn(n, 4, 3, generator=g) * 0.5)
    cam = orbit_camera(torch.zeros(3), 20, 10, 2.0, 200, 150)
    bg = torch.tensor([0.1, 0.2, 0.3])
    cpu = render_cpu(scene, cam, bg)[0].numpy()
    gpu = render_gsplat(scene.to("cuda"), cam, bg)[0].cpu().numpy()
    assert psnr(cpu, gpu) >= 45


@cuda
@needs_cuda
def test_demo_clip_matches_cpu():
    players = {b: Player(load_demo(), backend=b) for b in ("cpu", "gsplat")}
    for p in players.values():
        p.view.width = p.view.height = 256
        p.clip = clip_from_audio(DEMO_AUDIO, p.driver, 30, duration=1.0)
    scores = []
    for a, b in zip(players["cpu"].render_range(0, 30, batch=10), players["gsplat"].render_range(0, 30, batch=10)):
        scores.append(psnr(a / 255.0, b / 255.0))
    print("CPU vs gsplat PSNR per frame:", [round(s, 1) for s in scores])
    assert min(scores) >= 40


@cuda
@needs_cuda
def test_one_gsplat_call_for_a_batch_equals_one_call_per_frame(demo):
    player = small_player(demo, "gsplat", size=256)
    g, cam = player.gaussians, player.camera()
    means, quats, scales = player._posed(0, 12)
    bg = torch.tensor(player.view.background)
    viewmat, K, background = gsplat_backend.device_view(cam, bg, "cuda")
    batch, alphas = rasterize_batch(means, quats, scales, g.opacities, g.sh, viewmat, K, cam.width, cam.height,
                                    background)
    assert batch.shape == (12, 256, 256, 3) and alphas.shape == (12, 256, 256)
    for k in range(12):
        single, alpha = render_gsplat(g.with_world(means[k], quats[k], scales[k]), cam, bg)
        torch.testing.assert_close(batch[k], single, atol=1e-5, rtol=0)
        torch.testing.assert_close(alphas[k], alpha, atol=1e-5, rtol=0)


@cuda
@needs_cuda
def test_batched_frames_equal_single_frame_renders(demo):
    player = small_player(demo, "gsplat", size=256, seconds=1.0)
    batched = list(player.render_range(0, 30, batch=12))
    default = list(player.render_range(0, 30))  # GPU_BATCH at a time
    singles = [player.render_frame(i) for i in range(30)]
    assert all(f.dtype == np.uint8 and f.shape == (256, 256, 3) for f in batched)
    for frames in (batched, default):
        diff = np.abs(np.stack(frames).astype(int) - np.stack(singles))
        # the same rasterization; FLAME posed 12 or 32 frames at a time may round its last bit apart
        assert diff.max() <= 2 and (diff > 0).mean() < 1e-3


@cuda
@needs_cuda
def test_gpu_frames_through_the_writer_thread_equal_the_synchronous_mp4(demo, tmp_path):
    player = small_player(demo, "gsplat", size=128, seconds=1.0)
    n = player.clip.num_frames
    digests = []
    for threaded in (True, False):
        out = tmp_path / f"{threaded}.mp4"
        write_mp4(player.render_range(0, n), out, (128, 128), 30, n, player.clip.audio, threaded=threaded)
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
    assert digests[0] == digests[1]


@cuda
@needs_cuda
def test_gpu_cancellation_and_blank_renders(demo, tmp_path):
    player = small_player(demo, "gsplat", size=64, seconds=2.0)
    cancel = threading.Event()
    made = []
    with pytest.raises(Cancelled):
        for index, _frame in enumerate(player.render_range(0, player.clip.num_frames, batch=8, cancel=cancel)):
            made.append(index)
            if index == 10:
                cancel.set()
    assert made == list(range(11))
    gaussians = dataclasses.replace(demo.gaussians, opacities=demo.gaussians.opacities * 0 + 1e-4)
    blank = small_player(dataclasses.replace(demo, gaussians=gaussians), "gsplat", size=32, seconds=0.2)
    with pytest.raises(InputError, match="nothing of the avatar is visible"):
        assert len(list(blank.render_range(0, 6, require_visible=True))) == 6


# --- the batched path's logic on the CPU (gsplat and the pinned read-back stood in for) --------

class CpuStandIns:
    """rasterize_batch through our CPU rasterizer and a read-back that hands the frames over:
    the gsplat branch of Player.render_range then runs on the CPU."""

    def __init__(self, monkeypatch):
        self.batches: list[int] = []
        monkeypatch.setattr(gsplat_backend, "rasterize_batch", self.rasterize_batch)
        monkeypatch.setattr(gsplat_backend, "Readback", lambda device: self)

    def rasterize_batch(self, means, quats, scales, opacities, sh, viewmat, K, width, height, background):
        self.batches.append(len(means))
        camera = Camera(viewmat, K, width, height)
        out = [render_cpu(GaussianSet(m, q, s, opacities, sh), camera, background) for m, q, s in
               zip(means, quats, scales)]
        return torch.stack([image for image, _ in out]), torch.stack([alpha for _, alpha in out])

    def start(self, frames, flags):
        return lambda: (frames.numpy(), flags.numpy())


def as_gsplat(player: Player) -> Player:
    player.backend = "gsplat"  # device stays the CPU: the stand-ins render there
    return player


def one_by_one(player: Player, first: int, last: int) -> list[np.ndarray]:
    """Frames first..last-1 posed together (as a batch is) and rendered one at a time on the CPU."""
    means, quats, scales = bind(player.gaussians, player.rig(player.flame_params(first, last)), player.rig.faces)
    background = torch.tensor(player.view.background)
    images = [render_cpu(player.gaussians.with_world(m, q, s), player.camera(), background)[0]
              for m, q, s in zip(means, quats, scales)]
    return [(image.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy() for image in images]


def test_batched_branch_gives_the_frames_of_one_render_per_frame(demo, monkeypatch):
    stand_ins = CpuStandIns(monkeypatch)
    player = as_gsplat(small_player(demo))
    reference = one_by_one(player, 0, 8) + one_by_one(player, 8, 16) + one_by_one(player, 16, 20)
    frames = list(player.render_range(0, 20, batch=8))
    assert stand_ins.batches == [8, 8, 4]
    assert len(frames) == 20 and all(np.array_equal(a, b) for a, b in zip(frames, reference))
    assert any(not np.array_equal(frames[0], f) for f in frames[1:])  # the mouth moves
    stand_ins.batches.clear()
    assert np.array_equal(player.render_frame(13), one_by_one(player, 13, 14)[0]) and stand_ins.batches == [1]
    list(player.render_range(0, 20))
    assert stand_ins.batches[1:] == [min(20, GPU_BATCH)]  # the default batch with gsplat


def test_batched_branch_of_a_static_scene(demo, monkeypatch):
    static = dataclasses.replace(demo, gaussians=dataclasses.replace(demo.gaussians, binding=None), rig=None,
                                 params=None)
    reference = small_player(static).render_frame(0)
    CpuStandIns(monkeypatch)
    frames = list(as_gsplat(small_player(static)).render_range(0, 5, batch=3))
    assert len(frames) == 5 and all(np.array_equal(f, reference) for f in frames)


def test_batched_branch_cancels_between_frames_and_renders_one_batch_ahead(demo, monkeypatch):
    stand_ins = CpuStandIns(monkeypatch)
    player = as_gsplat(small_player(demo))
    cancel = threading.Event()
    made = []
    with pytest.raises(Cancelled):
        for index, _ in enumerate(player.render_range(0, 21, batch=4, cancel=cancel)):
            made.append(index)
            if index == 5:
                cancel.set()
    assert made == list(range(6))
    assert stand_ins.batches == [4, 4, 4]  # batch 3 was on its way when frame 5 was shown
    cancel.set()
    with pytest.raises(Cancelled):
        next(player.render_range(0, 4, cancel=cancel))


def test_batched_branch_raises_after_the_frames_before_the_error(demo, monkeypatch):
    CpuStandIns(monkeypatch)
    player = as_gsplat(small_player(demo))
    posed = player._posed

    def failing(first, last):
        if first >= 8:
            raise InputError("frame 8 poses Gaussians at infinite or undefined positions")
        return posed(first, last)
    monkeypatch.setattr(player, "_posed", failing)
    made = []
    with pytest.raises(InputError, match="frame 8"):
        made.extend(player.render_range(0, 20, batch=4))
    assert len(made) == 8


def test_batched_branch_refuses_a_range_that_shows_nothing(demo, monkeypatch):
    CpuStandIns(monkeypatch)
    gaussians = dataclasses.replace(demo.gaussians, opacities=demo.gaussians.opacities * 0 + 1e-4)
    player = as_gsplat(small_player(dataclasses.replace(demo, gaussians=gaussians), size=32))
    made = []
    with pytest.raises(InputError, match="nothing of the avatar is visible"):
        made.extend(player.render_range(0, 6, batch=4, require_visible=True))
    assert len(made) == 6
    assert len(list(player.render_range(0, 6, batch=4))) == 6  # without require_visible: blank frames


# --- the writer thread (CPU) --------------------------------------------------------------------

def numbered(count: int, size=(8, 8)):
    for i in range(count):
        yield np.full((*size, 3), i % 256, np.uint8)


def test_frames_are_written_in_order_while_the_next_ones_are_made():
    rng = np.random.default_rng(0)
    written, threads = [], set()

    def write(frame):
        time.sleep(float(rng.uniform(0, 0.002)))
        written.append(int(frame[0, 0, 0]))
        threads.add(threading.current_thread().name)
    assert write_behind(numbered(300), write, budget=8 * 8 * 3 * 5) == 300
    assert written == [i % 256 for i in range(300)] and threads == {"frame-writer"}
    assert not writer_threads()
    assert write_behind(iter([]), write) == 0


def test_a_producer_error_stops_the_writer_and_leaves_no_file(tmp_path):
    def frames():
        yield from numbered(5, (32, 32))
        raise ValueError("renderer broke")
    for threaded in (True, False):
        with pytest.raises(ValueError, match="renderer broke"):
            write_mp4(frames(), tmp_path / "clip.mp4", (32, 32), 30, 10, threaded=threaded)
        assert list(tmp_path.iterdir()) == [] and not writer_threads()


def test_a_writer_error_stops_the_producer_and_leaves_no_file(tmp_path):
    made, closed = [], []

    def frames():
        try:
            for i in range(10_000):
                made.append(i)
                yield np.zeros((32, 48, 3) if i == 5 else (32, 32, 3), np.uint8)  # frame 5 has the wrong size
        finally:
            closed.append(True)
    with pytest.raises(ValueError, match=r"frame 5 is uint8 32x48x3, expected uint8 32x32x3"):
        write_mp4(frames(), tmp_path / "clip.mp4", (32, 32), 30, 10_000)
    assert closed == [True] and len(made) < 5 + 64 + 16  # stopped within about the queue's length, not 10,000
    assert list(tmp_path.iterdir()) == [] and not writer_threads()

    def failing_write(frame):
        if frame[0, 0, 0] == 3:
            raise OSError("disk full")
    for threaded in (True, False):
        with pytest.raises(OSError, match="disk full"):
            write_behind(numbered(10_000), failing_write, threaded=threaded)
    with pytest.raises(TypeError):  # no PNG holds complex numbers
        write_png_folder((np.zeros((8, 8, 3), np.complex64 if i == 2 else np.uint8) for i in range(10_000)),
                         tmp_path / "pngs")
    assert list(tmp_path.iterdir()) == [] and not writer_threads()


def test_an_interrupt_while_the_writer_is_busy_stops_both_at_once():
    def frames():
        yield from numbered(3)
        raise KeyboardInterrupt

    def slow(frame):
        time.sleep(0.2)
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        write_behind(frames(), slow)
    assert time.perf_counter() - start < 0.6 and not writer_threads()  # not all three frames were written


def test_cancelled_recording_stops_rendering_and_writing(demo, tmp_path):
    player = small_player(demo, size=32, seconds=2.0)
    cancel = threading.Event()
    shown = []

    def on_frame(index, _frame):
        shown.append(index)
        if index == 3:
            cancel.set()
    for out in (tmp_path / "clip.mp4", tmp_path / "frames"):
        shown.clear()
        with pytest.raises(Cancelled):
            player.record(out, cancel=cancel, on_frame=on_frame)
        cancel.clear()
        assert shown == [0, 1, 2, 3] and list(tmp_path.iterdir()) == [] and not writer_threads()


def test_the_writer_thread_writes_the_synchronous_mp4_and_pngs(demo, tmp_path):
    player = small_player(demo, size=64, seconds=1.0)
    n = player.clip.num_frames
    frames = list(player.render_range(0, n))
    for threaded in (True, False):
        write_mp4(iter(frames), tmp_path / f"{threaded}.mp4", (64, 64), 30, n, player.clip.audio, threaded=threaded)
        assert write_png_folder(iter(frames), tmp_path / f"png{threaded}", threaded=threaded) == n
    assert (tmp_path / "True.mp4").read_bytes() == (tmp_path / "False.mp4").read_bytes()
    for i in (0, n // 2, n - 1):
        png = iio.imread(tmp_path / "pngTrue" / f"frame_{i:05d}.png")
        assert np.array_equal(png, frames[i]) and np.array_equal(png, iio.imread(tmp_path / "pngFalse" / f"frame_{i:05d}.png"))
