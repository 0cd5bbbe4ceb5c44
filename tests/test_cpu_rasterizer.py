"""The fused numba rasterizer (`cpu` backend) against its PyTorch twin (`torch` backend): the
same image, on the demo avatar and on screen-space scenes built to hit every rule (alpha cap,
1/255 cut, exclusive transmittance stop, tile edges, image edges, culled and empty input).
The float64 brute-force reference runs for both backends in test_renderer_math.py."""
import math

import numba
import numpy as np
import pytest
import torch

from avatar_app.avatar import DEMO_SOURCE
from avatar_app.player import Player
from renderer import cpu_backend, torch_backend
from renderer.binding import bind
from renderer.projection import ALPHA_MIN, MAX_EXTENT, Projected
from renderer.render import BACKENDS, backend_device, render, resolve_backend


def psnr(a, b) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 10 * math.log10(1.0 / max(mse, 1e-20))


def screen_scene(seed: int, n: int, width: int, height: int, *, size=(1.0, 8.0), opacity=(0.05, 1.0),
                 margin: float = 0.0, opaque_share: float = 0.0):
    """N random screen-space Gaussians as projection gives them (radius per axis: ceil of
    min(3.33, √(2 ln 255o)) standard deviations; culled when that box misses the image).
    `size`: standard deviations in pixels; `margin`: means up to that far outside the image;
    `opaque_share`: that share gets opacity 1, where the 0.999 cap decides the alpha."""
    rng = np.random.default_rng(seed)
    means = np.stack([rng.uniform(-margin, width + margin, n), rng.uniform(-margin, height + margin, n)], -1)
    sx, sy = rng.uniform(*size, n), rng.uniform(*size, n)
    angle = rng.uniform(0, np.pi, n)
    c, s = np.cos(angle), np.sin(angle)
    cov = np.empty((n, 2, 2))
    cov[:, 0, 0] = c * c * sx * sx + s * s * sy * sy + 0.3
    cov[:, 1, 1] = s * s * sx * sx + c * c * sy * sy + 0.3
    cov[:, 0, 1] = cov[:, 1, 0] = c * s * (sx * sx - sy * sy)
    det = cov[:, 0, 0] * cov[:, 1, 1] - cov[:, 0, 1] ** 2
    conics = np.stack([cov[:, 1, 1], -cov[:, 0, 1], cov[:, 0, 0]], -1) / det[:, None]
    opacities = rng.uniform(*opacity, n)
    opacities[: int(opaque_share * n)] = 1.0
    extent = np.minimum(MAX_EXTENT, np.sqrt(2 * np.log(np.maximum(opacities / ALPHA_MIN, 1.0))))
    radii = np.ceil(extent[:, None] * np.sqrt(np.stack([cov[:, 0, 0], cov[:, 1, 1]], -1)))
    inside = ((means + radii > 0) & (means - radii < [width, height])).all(-1) & (opacities >= ALPHA_MIN)
    radii[~inside] = 0
    depths = rng.uniform(0.5, 5.0, n)
    depths[rng.random(n) < 0.2] = 2.0                      # ties: both keep the input order
    proj = Projected(torch.tensor(means, dtype=torch.float32), torch.tensor(conics, dtype=torch.float32),
                     torch.tensor(depths, dtype=torch.float32), torch.tensor(radii, dtype=torch.int32))
    colors = torch.tensor(rng.uniform(0, 1, (n, 3)), dtype=torch.float32)
    return proj, colors, torch.tensor(opacities, dtype=torch.float32)


SCENES = {  # name: (seed, n, width, height, options)
    "overlapping": (1, 600, 64, 48, {}),
    "tiny": (2, 800, 37, 29, {"size": (0.05, 0.6)}),
    "huge": (3, 25, 50, 70, {"size": (20.0, 90.0), "margin": 40.0}),
    "edge_crossing": (4, 300, 61, 45, {"size": (2.0, 15.0), "margin": 25.0}),
    "semi_transparent": (5, 700, 72, 40, {"opacity": (0.004, 0.3)}),
    "opaque_stack": (6, 400, 56, 56, {"size": (4.0, 25.0), "opacity": (0.9, 1.0), "opaque_share": 0.5}),
    "one_pixel_strip": (7, 120, 93, 1, {"size": (0.5, 4.0)}),
}


@pytest.mark.parametrize("name", SCENES)
def test_cpu_matches_torch_on_screen_scenes(name):
    seed, n, width, height, options = SCENES[name]
    proj, colors, opacities = screen_scene(seed, n, width, height, **options)
    live = int((proj.radii > 0).all(-1).sum())
    assert live > 0 and (name != "edge_crossing" or live < n)
    bg = torch.tensor([0.2, 0.5, 0.9])
    image, alpha = cpu_backend.rasterize(proj, colors, opacities, width, height, bg)
    ref_image, ref_alpha = torch_backend.rasterize(proj, colors, opacities, width, height, bg)
    assert image.shape == (height, width, 3) and alpha.shape == (height, width) and image.dtype == torch.float32
    assert psnr(image, ref_image) >= 60 and psnr(alpha, ref_alpha) >= 60
    assert float((image - ref_image).abs().max()) < 1e-2     # no single pixel far off either
    assert float(alpha.max()) > 0.5                          # the scene shows something


def test_empty_and_all_culled_give_the_background():
    bg = torch.tensor([0.3, 0.6, 0.1])
    empty = Projected(torch.zeros(0, 2), torch.zeros(0, 3), torch.zeros(0), torch.zeros(0, 2, dtype=torch.int32))
    image, alpha = cpu_backend.rasterize(empty, torch.zeros(0, 3), torch.zeros(0), 21, 13, bg)
    assert torch.equal(image, bg.expand(13, 21, 3)) and torch.equal(alpha, torch.zeros(13, 21))
    proj, colors, opacities = screen_scene(8, 50, 40, 30)
    proj.radii.zero_()
    image, alpha = cpu_backend.rasterize(proj, colors, opacities, 40, 30, bg)
    assert torch.equal(image, bg.expand(30, 40, 3)) and torch.equal(alpha, torch.zeros(30, 40))


def test_tile_lists_match_the_torch_twin():
    """Same (tile, depth-ordered Gaussian) lists as torch_backend._tile_lists, ties in input order."""
    proj, colors, opacities = screen_scene(9, 500, 70, 45, size=(1.0, 12.0), margin=10.0)
    gauss, start, count, tiles_x, tiles_y = torch_backend._tile_lists(proj, 70, 45)
    table, rows, offsets = cpu_backend.bin_gaussians(proj, colors, opacities, 70, 45)
    assert (tiles_x, tiles_y) == cpu_backend.tile_grid(70, 45)
    assert np.array_equal(np.diff(offsets), count.numpy())
    # table rows hold each live Gaussian once; map them back through their means and depths
    live = torch.nonzero((proj.radii > 0).all(-1)).squeeze(1).numpy()
    assert len(table) == len(live)
    index = {tuple(proj.means2d[i].numpy()): i for i in live}
    ids = np.array([index[tuple(table[r, :2])] for r in rows])
    assert np.array_equal(ids, gauss.numpy())


def hand_scene(gaussians):
    """Projected from rows (x, y, variance, opacity, depth, r, g, b) of round Gaussians, radius
    as projection gives it."""
    x, y, var, o, depth, r, g, b = (torch.tensor(c, dtype=torch.float32) for c in zip(*gaussians))
    extent = torch.clamp(torch.sqrt(2 * torch.log(torch.clamp(o / ALPHA_MIN, min=1.0))), max=MAX_EXTENT)
    radius = torch.ceil(extent * torch.sqrt(var)).to(torch.int32)
    proj = Projected(torch.stack([x, y], -1), torch.stack([1 / var, torch.zeros_like(var), 1 / var], -1),
                     depth, torch.stack([radius, radius], -1))
    return proj, torch.stack([r, g, b], -1), o


def test_the_last_pixel_of_a_tile_still_blends():
    """Two opaque one-pixel layers stop every pixel of a 13×8 image (two tiles, one partial)
    but the last of each tile; a wide Gaussian behind them must still reach those two."""
    width, height, last = 13, 8, {(7, 7), (12, 7)}
    front = [(px + 0.5, py + 0.5, 0.05, 1.0, depth, 0.0, 1.0, 0.0)
             for depth in (1.0, 1.1) for py in range(height) for px in range(width) if (px, py) not in last]
    proj, colors, opacities = hand_scene(front + [(6.5, 4.0, 400.0, 0.8, 5.0, 1.0, 0.0, 0.0)])
    bg = torch.tensor([0.0, 0.0, 1.0])
    image, _, stats = cpu_backend.rasterize_stats(proj, colors, opacities, width, height, bg)
    reference = torch_backend.rasterize(proj, colors, opacities, width, height, bg)[0]
    for px, py in last:
        assert float(image[py, px, 0]) > 0.7 and float(reference[py, px, 0]) > 0.7
    assert float((image - reference).abs().max()) < 1e-4
    lengths = torch_backend._tile_lists(proj, width, height)[2]
    assert stats[:, 2].tolist() == lengths.tolist()              # to the end: the last entry counts


def test_tiles_stop_at_an_opaque_wall():
    """Forty opaque layers over the whole image: each tile stops after the first two (0.999
    each), so the blend visits two list entries per tile, not forty."""
    layers = [(16.0, 12.0, 4000.0, 1.0, 1.0 + 0.1 * k, 0.1 * (k % 10), 0.5, 0.2) for k in range(40)]
    proj, colors, opacities = hand_scene(layers)
    bg = torch.tensor([0.3, 0.3, 0.3])
    image, _, stats = cpu_backend.rasterize_stats(proj, colors, opacities, 32, 24, bg)
    reference = torch_backend.rasterize(proj, colors, opacities, 32, 24, bg)[0]
    assert psnr(image, reference) >= 60
    assert stats[:, 2].max() <= 3 and stats[:, 1].sum() <= 32 * 24 * 2


def test_threads_give_the_same_image():
    proj, colors, opacities = screen_scene(10, 900, 83, 67, size=(1.0, 10.0))
    bg = torch.tensor([1.0, 1.0, 1.0])
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = cpu_backend.rasterize(proj, colors, opacities, 83, 67, bg)[0]
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = cpu_backend.rasterize(proj, colors, opacities, 83, 67, bg)[0]
    finally:
        numba.set_num_threads(before)
    assert numba.get_num_threads() == before
    assert torch.equal(one, many)


def test_backend_names():
    assert BACKENDS == ("auto", "cpu", "torch", "gsplat")
    assert resolve_backend("torch") == "torch" and backend_device("torch") == torch.device("cpu")
    assert resolve_backend("cpu") == "cpu" and backend_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_backend("auto") == "cpu"


@pytest.fixture(scope="module")
def demo_frame():
    """The posed demo head (learned driver's first frame), turned a little, at 200×152."""
    player = Player(DEMO_SOURCE.load(), backend="cpu")
    player.set_view(width=200, height=152, yaw=20.0, pitch=5.0, background=(0.1, 0.2, 0.3))
    means, quats, scales = bind(player.gaussians, player.rig(player.flame_params(0, 1)), player.rig.faces)
    return player.gaussians.with_world(means[0], quats[0], scales[0]), player.camera(), player.view.background


def test_cpu_matches_torch_on_the_demo(demo_frame):
    g, camera, background = demo_frame
    bg = torch.tensor(background)
    cpu, reference = render(g, camera, bg, "cpu"), render(g, camera, bg, "torch")
    assert cpu.shape == (152, 200, 3)
    covered = float((cpu - bg).abs().amax(-1).gt(0.05).float().mean())
    assert covered > 0.1                                                   # the head shows
    assert psnr(cpu, reference) >= 60
