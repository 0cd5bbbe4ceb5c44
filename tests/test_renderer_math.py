"""Renderer math against independent references: float64 loops, gsplat's PyTorch reference,
scipy's rotations and spherical harmonics, analytic images."""
import math

import numpy as np
import pytest
import torch
from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci
from scipy.spatial.transform import Rotation
from scipy.special import sph_harm_y

from renderer.binding import bind, triangle_frames
from renderer.camera import orbit_camera
from renderer.gaussians import GaussianSet
from renderer.projection import covariance_3d, project
from renderer.render import render
from renderer.rotations import quat_to_rotmat
from renderer.sh import sh_basis, sh_colors
from tests.reference import brute_force


def random_mesh(rng, v=30, f=40, frames=3):
    verts = rng.normal(size=(frames, v, 3))
    faces = np.stack([rng.choice(v, 3, replace=False) for _ in range(f)])
    return verts, faces


def test_binding_matches_float64_loop():
    rng = np.random.default_rng(0)
    verts, faces = random_mesh(rng)
    n = 50
    local = GaussianSet(
        means=torch.tensor(rng.normal(size=(n, 3)), dtype=torch.float64),
        quats=torch.tensor(rng.normal(size=(n, 4)), dtype=torch.float64),
        scales=torch.tensor(rng.uniform(0.1, 2, size=(n, 3)), dtype=torch.float64),
        opacities=torch.rand(n, dtype=torch.float64), sh=torch.zeros(n, 1, 3, dtype=torch.float64),
        binding=torch.tensor(rng.integers(0, len(faces), n)),
    )
    means, quats, scales = bind(local, torch.tensor(verts), torch.tensor(faces))
    for t in range(verts.shape[0]):
        for i in range(n):
            v0, v1, v2 = verts[t, faces[local.binding[i]]]
            a0 = (v1 - v0) / np.linalg.norm(v1 - v0)
            a1 = np.cross(a0, v2 - v0)
            a1 /= np.linalg.norm(a1)
            a2 = -np.cross(a1, a0) / np.linalg.norm(np.cross(a1, a0))
            R = np.stack([a0, a1, a2], axis=1)
            k = (np.linalg.norm(v1 - v0) + abs(a2 @ (v2 - v0))) / 2
            c = (v0 + v1 + v2) / 3
            q = local.quats[i].numpy()
            R_local = Rotation.from_quat([q[1], q[2], q[3], q[0]]).as_matrix()
            np.testing.assert_allclose(means[t, i].numpy(), k * R @ local.means[i].numpy() + c, atol=1e-10)
            np.testing.assert_allclose(scales[t, i].numpy(), local.scales[i].numpy() * k, atol=1e-10)
            np.testing.assert_allclose(quat_to_rotmat(quats[t, i]).numpy(), R @ R_local, atol=1e-9)


def test_identity_rotation_takes_the_triangle_frame():
    verts = torch.tensor([[0.0, 0, 0], [2, 0, 0], [0.5, 1.5, 0.3]])
    faces = torch.tensor([[0, 1, 2]])
    g = GaussianSet(torch.zeros(1, 3), torch.tensor([[1.0, 0, 0, 0]]), torch.ones(1, 3),
                    torch.ones(1), torch.zeros(1, 1, 3), torch.tensor([0]))
    _, quats, _ = bind(g, verts, faces)
    R, _, _ = triangle_frames(verts, faces)
    np.testing.assert_allclose(quat_to_rotmat(quats[0]).numpy(), R[0].numpy(), atol=1e-6)
    assert torch.allclose(R[0][:, 0], torch.tensor([1.0, 0, 0]))           # a0 along the first edge
    assert torch.allclose(R[0][:, 1].abs(), torch.tensor([0.0, 0.19611613, 0.98058068]).abs(), atol=1e-6)


def random_scene(n, seed, spread=0.3, depth=2.0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * spread
    means[:, 2] += 0.0
    return GaussianSet(
        means=means, quats=torch.randn(n, 4, generator=g),
        scales=torch.rand(n, 3, generator=g) * 0.08 + 0.01,
        opacities=torch.rand(n, generator=g) * 0.9 + 0.05,
        sh=torch.randn(n, 1, 3, generator=g) * 0.8,
    ), orbit_camera(torch.zeros(3), 10.0, -5.0, depth, 70, 45)


def test_projection_matches_gsplat_reference():
    g, cam = random_scene(300, 1, spread=0.6, depth=1.5)
    ours = project(g.means, g.quats, g.scales, cam.viewmat, cam.K, cam.width, cam.height)
    covars, _ = _quat_scale_to_covar_preci(g.quats, g.scales, compute_preci=False)
    np.testing.assert_allclose(covariance_3d(g.quats, g.scales).numpy(), covars.numpy(), atol=1e-6)
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        g.means, covars, cam.viewmat[None], cam.K[None], cam.width, cam.height)
    assert torch.equal(ours.radii, radii[0])
    assert (radii[0] > 0).any() and (radii[0] == 0).any()   # some visible, some culled
    vis = (radii[0] > 0).all(-1)
    torch.testing.assert_close(ours.means2d[vis], means2d[0][vis], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(ours.depths, depths[0])
    torch.testing.assert_close(ours.conics[vis], conics[0][vis], rtol=1e-4, atol=1e-6)


def psnr(a, b):
    return 10 * math.log10(1.0 / max(np.mean((np.asarray(a, np.float64) - b) ** 2), 1e-20))


@pytest.mark.parametrize("backend", ["cpu", "torch"])
@pytest.mark.parametrize("seed,n", [(2, 40), (3, 120), (4, 400)])
def test_rasterization_matches_brute_force(seed, n, backend):
    g, cam = random_scene(n, seed)
    g.opacities[: n // 4] = 0.995                     # some nearly opaque: exercises the stop rule
    bg = torch.tensor([0.2, 0.4, 0.9])
    ours = render(g, cam, bg, backend)
    assert ours.shape == (45, 70, 3)
    assert psnr(ours.numpy(), brute_force(g, cam, bg)) >= 50


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_single_gaussian_analytic_image(backend):
    s, d, o = 0.05, 2.0, 0.8
    g = GaussianSet(torch.zeros(1, 3), torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), s),
                    torch.tensor([o]), torch.full((1, 1, 3), (0.9 - 0.5) / 0.28209479177387814))
    cam = orbit_camera(torch.zeros(3), 0, 0, d, 64, 64)
    f = cam.K[0, 0].item()
    var = (f * s / d) ** 2 + 0.3
    ys, xs = np.mgrid[0:64, 0:64] + 0.5
    alpha = np.minimum(0.999, o * np.exp(-((xs - 32) ** 2 + (ys - 32) ** 2) / (2 * var)))
    alpha = np.where(alpha >= 1 / 255, alpha, 0)
    expected = 0.9 * alpha + 0.1 * (1 - alpha)
    image = render(g, cam, torch.full((3,), 0.1), backend)
    np.testing.assert_allclose(image[..., 0].numpy(), expected, atol=2e-5)


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_empty_and_behind_camera_give_background(backend):
    bg = torch.tensor([0.3, 0.6, 0.1])
    cam = orbit_camera(torch.zeros(3), 0, 0, 1.0, 40, 30)
    empty = GaussianSet(torch.zeros(0, 3), torch.zeros(0, 4), torch.zeros(0, 3), torch.zeros(0), torch.zeros(0, 1, 3))
    assert torch.equal(render(empty, cam, bg, backend), bg.expand(30, 40, 3))
    behind = GaussianSet(torch.tensor([[0.0, 0, 2.0]]), torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), 0.1),
                         torch.ones(1), torch.ones(1, 1, 3))
    assert torch.equal(render(behind, cam, bg, backend), bg.expand(30, 40, 3))


def test_frontal_camera_orientation():
    cam = orbit_camera(torch.zeros(3), 0, 0, 1.0, 100, 100)
    torch.testing.assert_close(cam.center, torch.tensor([0.0, 0, 1.0]))
    p = project(torch.tensor([[0.1, 0.1, 0.0]]), torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), 0.01),
                cam.viewmat, cam.K, 100, 100)
    u, v = p.means2d[0]
    assert u > 50 and v < 50                   # +x to the image right, +y up
    assert abs(p.depths[0] - 1.0) < 1e-6


def real_sh(l, m, dirs):
    """3DGS's real SH from scipy's complex ones: √2·Re/Im of Y_l^|m| (Condon–Shortley kept)."""
    theta = np.arccos(np.clip(dirs[:, 2], -1, 1))
    phi = np.arctan2(dirs[:, 1], dirs[:, 0])
    y = sph_harm_y(l, abs(m), theta, phi)
    if m == 0:
        return y.real
    return math.sqrt(2) * (y.real if m > 0 else y.imag)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_basis_matches_scipy(degree):
    dirs = np.random.default_rng(degree).normal(size=(200, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    ours = sh_basis(degree, torch.tensor(dirs)).numpy()
    expected = np.stack([real_sh(l, m, dirs) for l in range(degree + 1) for m in range(-l, l + 1)], -1)
    np.testing.assert_allclose(ours, expected, atol=1e-12)


def test_sh_colors_view_dependence_and_clamp():
    sh = torch.zeros(1, 4, 3, dtype=torch.float64)
    sh[0, 2] = 1.0                                     # the z term: C1·z
    means = torch.zeros(1, 3, dtype=torch.float64)
    seen_from_minus_z = sh_colors(sh, means, torch.tensor([0.0, 0, -1], dtype=torch.float64))
    np.testing.assert_allclose(seen_from_minus_z.numpy(), 0.5 + 0.4886025119029199, atol=1e-12)
    sh[0, 0] = -10.0
    assert sh_colors(sh, means, torch.tensor([0.0, 0, 1], dtype=torch.float64)).min() == 0


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_opaque_stack_follows_cap_and_stop_rule(backend):
    """Layers of near-opaque Gaussians: the 0.999 alpha cap and gsplat's exclusive stop at
    T ≤ 1e-4 decide the colour, so a wrong rule moves pixels by 1e-3 or more."""
    n = 8
    g = GaussianSet(
        means=torch.stack([torch.zeros(n), torch.zeros(n), torch.linspace(-0.3, 0.3, n)], -1),
        quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1), scales=torch.full((n, 3), 0.15),
        opacities=torch.tensor([1.0, 0.97, 1.0, 0.9, 1.0, 1.0, 1.0, 1.0]),
        sh=(torch.rand(n, 1, 3, generator=torch.Generator().manual_seed(5)) - 0.5) * 3,
    )
    cam = orbit_camera(torch.zeros(3), 0, 0, 2.0, 48, 32)
    bg = torch.tensor([0.0, 1.0, 0.5])
    error = np.abs(render(g, cam, bg, backend).numpy() - brute_force(g, cam, bg)).max()
    assert error < 1e-4
