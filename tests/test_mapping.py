"""The FLAME mapping fit against a toy head: linear expression basis plus a rotating jaw."""

import numpy as np
import pytest
import torch

from common.errors import InputError
from models.rig.mapping import fit_flame_mapping


class ToyHead:
    """expr moves vertices linearly; the jaw turns the (smoothly skinned) lower vertices about a pivot."""

    def __init__(self, vertices: int = 600, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.template = torch.from_numpy(rng.normal(scale=0.05, size=(vertices, 3))).float()
        self.dirs = torch.from_numpy(rng.normal(scale=1e-3, size=(100, vertices, 3))).float()
        self.pivot = torch.tensor([0.0, 0.01, -0.04])
        self.skin = torch.sigmoid((self.pivot[1] - self.template[:, 1]) / 0.01)[None, :, None]

    def __call__(self, expr: torch.Tensor, jaw: torch.Tensor) -> torch.Tensor:
        rest = self.template + torch.einsum("be,evc->bvc", expr, self.dirs)
        arm = rest - self.pivot
        angle2 = (jaw * jaw).sum(dim=1, keepdim=True)[:, :, None] + 1e-12
        angle = angle2.sqrt()
        w = jaw[:, None, :]
        cross = torch.cross(w.expand_as(arm), arm, dim=2)
        dot = (w * arm).sum(dim=2, keepdim=True)
        turned = arm * angle.cos() + cross * (angle.sin() / angle) + w * dot * ((1 - angle.cos()) / angle2)
        return rest + self.skin * (turned + self.pivot - rest)

    def vertices(self, params: np.ndarray) -> np.ndarray:
        p = torch.from_numpy(np.asarray(params, dtype=np.float32))
        with torch.no_grad():
            return self(p[:, :100], p[:, 100:]).double().numpy()


@pytest.fixture(scope="module")
def head() -> ToyHead:
    return ToyHead()


def test_recovers_planted_coefficients(head: ToyHead) -> None:
    rng = np.random.default_rng(1)
    truth = np.zeros((6, 103))
    truth[:, :100] = rng.normal(scale=0.5, size=(6, 100))
    truth[:, 100] = rng.uniform(0.0, 0.35, size=6)
    truth[:, 101:] = rng.uniform(-0.05, 0.05, size=(6, 2))
    neutral = head.vertices(np.zeros((1, 103)))[0]
    basis = head.vertices(truth) - neutral

    fit = fit_flame_mapping(basis, head, neutral)

    assert fit.coeffs.shape == (6, 103) and fit.error.shape == (6,)
    np.testing.assert_allclose(fit.coeffs[:, 100:], truth[:, 100:], atol=1e-4)
    np.testing.assert_allclose(fit.coeffs[:, :100], truth[:, :100], atol=2e-3)
    assert fit.error.max() < 1e-6


def test_unrepresentable_basis_reports_its_true_residual(head: ToyHead) -> None:
    rng = np.random.default_rng(2)
    neutral = head.vertices(np.zeros((1, 103)))[0]
    basis = rng.normal(scale=2e-3, size=(3, len(neutral), 3))
    basis[0] += head.vertices(np.r_[np.zeros(100), 0.3, 0.0, 0.0][None])[0] - neutral

    fit = fit_flame_mapping(basis, head, neutral)

    residual = head.vertices(fit.coeffs) - (neutral + basis)
    measured = np.sqrt((residual**2).sum(axis=2).mean(axis=1))
    np.testing.assert_allclose(fit.error, measured, rtol=1e-5)
    untouched = np.sqrt((basis**2).sum(axis=2).mean(axis=1))
    assert (fit.error > 1e-4).all() and (fit.error < untouched).all()
    assert fit.coeffs[0, 100] == pytest.approx(0.3, abs=0.02)


def test_rejects_mismatched_shapes(head: ToyHead) -> None:
    neutral = head.vertices(np.zeros((1, 103)))[0]
    with pytest.raises(InputError, match="basis"):
        fit_flame_mapping(np.zeros((2, 10, 3)), head, neutral)
    with pytest.raises(InputError, match="forward returned shape"):
        fit_flame_mapping(np.zeros((2, 10, 3)), head, np.zeros((10, 3)))
    with pytest.raises(InputError, match="NaN"):
        fit_flame_mapping(np.full((1, len(neutral), 3), np.nan), head, neutral)


def degenerate_head(rounding_seed: int | None) -> ToyHead:
    """A head the vertices cannot fully resolve: expression 1 = −0.3 · expression 0 and 60..99
    unused; with a seed, every direction is perturbed at float32 rounding level, as the same rig
    computed on another machine."""
    head = ToyHead()
    head.dirs[1] = -0.3 * head.dirs[0]
    head.dirs[60:] = 0.0
    if rounding_seed is not None:
        rng = np.random.default_rng(rounding_seed)
        head.dirs *= 1.0 + torch.from_numpy(rng.normal(scale=1e-7, size=head.dirs.shape)).float()
    return head


def test_undetermined_directions_take_the_least_norm_solution_on_every_rig() -> None:
    truth = np.zeros((3, 103))
    truth[:, 0] = [0.5, 0.0, 0.2]
    truth[:, 2:60] = np.random.default_rng(3).normal(scale=0.3, size=(3, 58))
    truth[:, 100] = [0.3, 0.1, 0.0]
    fits = []
    for seed in (None, 1, 2):
        head = degenerate_head(seed)
        neutral = head.vertices(np.zeros((1, 103)))[0]
        fit = fit_flame_mapping(head.vertices(truth) - neutral, head, neutral)
        assert fit.error.max() < 1e-6
        fits.append(fit.coeffs)
    # c₀·d + c₁·(−0.3·d) reproduces t·d for any c₀ − 0.3·c₁ = t; the least-norm split is t·(1, −0.3)/1.09
    np.testing.assert_allclose(fits[0][:, :2], truth[:, :1] * np.array([1.0, -0.3]) / 1.09, atol=1e-5)
    np.testing.assert_allclose(fits[0][:, 2:60], truth[:, 2:60], atol=1e-4)
    assert np.abs(fits[0][:, 60:100]).max() < 1e-9
    for other in fits[1:]:
        np.testing.assert_allclose(other, fits[0], atol=1e-5)
