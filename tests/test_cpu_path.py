"""The CPU path's fused stages (binding.bind_covariances → projection.project_shade) against the
readable path they replace (bind → project → sh_colors): the same math in float32, so values
agree to rounding and a screen radius may differ only where ceil's argument (or a culling
margin) lies within rounding of its threshold."""
import math

import numba
import numpy as np
import pytest
import torch

from renderer.binding import bind, bind_covariances
from renderer.camera import orbit_camera
from renderer.gaussians import GaussianSet
from renderer.projection import (
    ALPHA_MIN,
    EPS2D,
    MAX_EXTENT,
    covariance_3d,
    pack_covariances,
    packed_covariances,
    project,
    project_covariances,
    project_shade,
)
from renderer.render import render_cpu
from renderer.sh import sh_colors


def random_mesh(seed: int, frames: int = 3, v: int = 60, f: int = 90) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    verts = torch.randn(frames, v, 3, generator=g) * 0.3
    faces = torch.stack([torch.randperm(v, generator=g)[:3] for _ in range(f)])
    return verts, faces


def random_bound(n: int, num_faces: int, seed: int, degree: int = 1) -> GaussianSet:
    g = torch.Generator().manual_seed(seed)
    return GaussianSet(
        means=torch.randn(n, 3, generator=g) * 0.5, quats=torch.randn(n, 4, generator=g),
        scales=torch.rand(n, 3, generator=g) * 0.3 + 0.01, opacities=torch.rand(n, generator=g),
        sh=torch.randn(n, (degree + 1) ** 2, 3, generator=g) * 0.5,
        binding=torch.randint(0, num_faces, (n,), generator=g),
    )


def old_path(g: GaussianSet, means, quats, scales, cam):
    proj = project(means, quats, scales, cam.viewmat, cam.K, cam.width, cam.height, opacities=g.opacities)
    return proj, sh_colors(g.sh, means, cam.center)


def radius_ties(means, quats, scales, opacities, cam, which) -> np.ndarray:
    """For Gaussians `which`: whether their radius or culling sits at a threshold in float64 (the
    old path's float32 rounding and ours may then fall either side)."""
    R, t = cam.viewmat[:3, :3].double(), cam.viewmat[:3, 3].double()
    mc = means.double() @ R.T + t
    cov = R @ covariance_3d(quats.double(), scales.double()) @ R.T
    fx, fy, cx, cy = (float(cam.K[i, j]) for i, j in ((0, 0), (1, 1), (0, 2), (1, 2)))
    x, y, z = mc.unbind(-1)
    lim = 1.3 * 0.5 * cam.width / fx, 1.3 * 0.5 * cam.height / fy   # the principal point is centred
    u, v = (x / z).clamp(-lim[0], lim[0]), (y / z).clamp(-lim[1], lim[1])
    J = torch.zeros(len(z), 2, 3, dtype=torch.float64)
    J[:, 0, 0], J[:, 0, 2], J[:, 1, 1], J[:, 1, 2] = fx / z, -fx * u / z, fy / z, -fy * v / z
    cov2d = J @ cov @ J.transpose(1, 2)
    a, c = cov2d[:, 0, 0] + EPS2D, cov2d[:, 1, 1] + EPS2D
    extent = torch.clamp(torch.sqrt(2 * torch.log((opacities.double() / ALPHA_MIN).clamp(min=1))), max=MAX_EXTENT)
    args = torch.stack([extent * a.clamp(min=0).sqrt(), extent * c.clamp(min=0).sqrt()], -1)
    near_integer = ((args - args.round()).abs() < 1e-4 * args.clamp(min=1)).any(-1)
    centre = torch.stack([fx * x / z + cx, fy * y / z + cy], -1)
    size = torch.tensor([cam.width, cam.height], dtype=torch.float64)
    edges = torch.cat([centre + args.ceil(), centre - args.ceil() - size], -1)
    at_edge = (edges.abs() < 1e-3).any(-1)
    return (near_integer | at_edge)[which].numpy()


def assert_same_projection(new, new_colors, old, old_colors, ties) -> None:
    """`ties(indices)` says which of the Gaussians whose radii differ are at a threshold."""
    differ = torch.nonzero((new.radii != old.radii).any(-1)).squeeze(1)
    assert ties(differ).all(), f"radii differ off any tie: {differ[~torch.from_numpy(ties(differ))].tolist()}"
    assert len(differ) <= max(2, len(old.radii) // 1000)
    vis = (old.radii > 0).all(-1) & (new.radii > 0).all(-1)
    assert vis.any()
    torch.testing.assert_close(new.means2d[vis], old.means2d[vis], rtol=1e-5, atol=2e-4)
    torch.testing.assert_close(new.depths, old.depths, rtol=1e-5, atol=1e-6)
    # A conic inverts Σ2D, so rounding grows with its condition ac/(ac − b²) in both paths alike.
    A, B, C = old.conics[vis].double().unbind(-1)
    condition = (A * C / (A * C - B * B)).clamp(min=1)
    error = (new.conics[vis] - old.conics[vis]).double().abs().amax(-1) / old.conics[vis].double().abs().amax(-1)
    assert (error <= 1e-5 * condition).all(), float((error / condition).max())
    torch.testing.assert_close(new_colors, old_colors, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bind_covariances_equals_bind_then_covariance(seed):
    verts, faces = random_mesh(seed)
    g = random_bound(500, len(faces), seed + 10)
    means, covs, finite = bind_covariances(g, verts, faces)
    ref_means, quats, scales = bind(g, verts, faces)
    assert means.shape == (3, 500, 3) and covs.shape == (3, 500, 6) and finite.tolist() == [True] * 3
    torch.testing.assert_close(means, ref_means, rtol=1e-5, atol=1e-6)
    ref = pack_covariances(covariance_3d(quats, scales))
    torch.testing.assert_close(covs, ref, rtol=1e-4, atol=1e-6 * float(ref.abs().max()))
    one_means, one_covs, one_finite = bind_covariances(g, verts[1], faces)   # no frame dimension
    assert one_means.shape == (500, 3) and one_finite.shape == () and bool(one_finite)
    torch.testing.assert_close(one_means, means[1], rtol=0, atol=0)
    torch.testing.assert_close(one_covs, covs[1], rtol=0, atol=0)


def test_bind_covariances_flags_frames_that_are_not_finite():
    verts, faces = random_mesh(3, frames=4)
    g = random_bound(3000, len(faces), 4)
    verts[2, faces[int(g.binding[2500]), 0]] = float("inf")
    verts[3, faces[int(g.binding[10]), 1]] = float("nan")
    assert bind_covariances(g, verts, faces)[2].tolist() == [True, True, False, False]


def test_packed_covariances_and_their_projection_match_the_references():
    g = random_bound(400, 1, 5)
    packed = packed_covariances(g.quats, g.scales)
    ref = pack_covariances(covariance_3d(g.quats, g.scales))
    torch.testing.assert_close(packed, ref, rtol=1e-5, atol=1e-7)
    cam = orbit_camera(torch.zeros(3), 20.0, 10.0, 3.0, 80, 60)
    a = project_covariances(g.means, ref, cam.viewmat, cam.K, 80, 60, opacities=g.opacities)
    b = project(g.means, g.quats, g.scales, cam.viewmat, cam.K, 80, 60, opacities=g.opacities)
    assert torch.equal(a.radii, b.radii)
    torch.testing.assert_close(a.conics, b.conics)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_fused_path_equals_bind_project_sh_on_random_scenes(degree, seed):
    verts, faces = random_mesh(seed, frames=2)
    g = random_bound(4000, len(faces), seed + 20, degree)
    g.opacities[:50] = ALPHA_MIN * 0.5                      # culled by opacity
    g.means[50:60] += 30.0                                  # far off screen or behind the camera
    cam = orbit_camera(torch.zeros(3), 25.0 * seed - 10, 15.0, 2.5, 96, 72)
    means, covs, _ = bind_covariances(g, verts, faces)
    ref_means, quats, scales = bind(g, verts, faces)
    for k in range(2):
        new, new_colors = project_shade(means[k], covs[k], g.opacities, g.sh, cam)
        old, old_colors = old_path(g, ref_means[k], quats[k], scales[k], cam)
        assert (old.radii == 0).all(-1).any() and (old.radii > 0).all(-1).any()
        assert_same_projection(new, new_colors, old, old_colors,
                               lambda i: radius_ties(ref_means[k], quats[k], scales[k], g.opacities, cam, i))


def test_sh_layouts_give_the_same_colours():
    """A PLY's SH are channel-major in memory ([N,3,K] transposed); other sets are contiguous."""
    g = random_bound(3000, 1, 7, degree=3)
    channel_major = g.sh.transpose(1, 2).contiguous().transpose(1, 2)
    assert not channel_major.is_contiguous()
    cam = orbit_camera(torch.zeros(3), 0.0, 0.0, 3.0, 64, 64)
    covs = packed_covariances(g.quats, g.scales)
    a = project_shade(g.means, covs, g.opacities, g.sh, cam)[1]
    b = project_shade(g.means, covs, g.opacities, channel_major, cam)[1]
    assert torch.equal(a, b)
    torch.testing.assert_close(a, sh_colors(g.sh, g.means, cam.center), rtol=1e-5, atol=2e-6)


def test_kernels_follow_the_callers_thread_count():
    verts, faces = random_mesh(8)
    g = random_bound(20_000, len(faces), 9)
    cam = orbit_camera(torch.zeros(3), 0.0, 0.0, 3.0, 64, 64)
    torch_threads, numba_threads = torch.get_num_threads(), numba.get_num_threads()
    outputs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            means, covs, _ = bind_covariances(g, verts, faces)
            proj, colors = project_shade(means[0], covs[0], g.opacities, g.sh, cam)
            outputs.append((means, covs, proj.radii, proj.conics, colors))
            assert numba.get_num_threads() == numba_threads    # restored: nothing set for good
    finally:
        torch.set_num_threads(torch_threads)
    for a, b in zip(*outputs):                                   # one Gaussian per lane: same bits
        assert torch.equal(a, b)


@pytest.fixture(scope="module")
def posed_demo():
    from avatar_app.avatar import SIGNAL_DEMO_SOURCE
    from avatar_app.player import Player

    player = Player(SIGNAL_DEMO_SOURCE.load(), backend="cpu")
    player.set_emotions({"happy": 0.8, "surprised": 0.4})
    with torch.no_grad():
        vertices = player.rig(player.flame_params(0, 2))
    return player, vertices


@pytest.mark.parametrize("yaw,pitch", [(0.0, 0.0), (55.0, 20.0)])
def test_fused_path_equals_bind_project_sh_on_the_posed_demo(posed_demo, yaw, pitch):
    player, vertices = posed_demo
    player.view.yaw, player.view.pitch = yaw, pitch
    cam = player.camera()
    g = player.gaussians
    with torch.no_grad():
        means, covs, finite = bind_covariances(g, vertices, player.rig.faces)
        ref_means, quats, scales = bind(g, vertices, player.rig.faces)
        assert finite.all()
        for k in range(len(vertices)):
            new, new_colors = project_shade(means[k], covs[k], g.opacities, g.sh, cam)
            old, old_colors = old_path(g, ref_means[k], quats[k], scales[k], cam)
            assert_same_projection(new, new_colors, old, old_colors,
                                   lambda i: radius_ties(ref_means[k], quats[k], scales[k], g.opacities, cam, i))
            bg = torch.tensor([0.2, 0.3, 0.4])
            image = render_cpu(g, cam, bg, posed=(means[k], covs[k]))[0]
            ref = render_cpu(g.with_world(ref_means[k], quats[k], scales[k]), cam, bg)[0]
            mse = float(((image - ref) ** 2).mean())
            assert 10 * math.log10(1 / max(mse, 1e-20)) > 70
