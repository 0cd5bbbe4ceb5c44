"""Metrics against answers worked out by hand."""

import numpy as np
import pytest
import torch

from common.errors import InputError
from models.learning.metrics import (
    cross_domain_leakage,
    fdd,
    lve,
    mapping_error,
    principal_angles,
)


def test_lve_is_the_mean_over_frames_of_the_worst_lip_vertex():
    T, V = 5, 6
    gt = np.random.default_rng(0).normal(size=(T, V, 3))
    pred = gt.copy()
    pred[2, 1, 0] += 0.003  # lip vertex 1, frame 2 only
    pred[2, 3, 1] += 0.001  # a smaller error on lip vertex 3 in the same frame: not the maximum
    pred[:, 5] += 0.5  # vertex 5 is not a lip vertex
    assert lve(pred, gt, np.array([1, 3])) == pytest.approx(0.003**2 / T, rel=1e-9)
    pred[4, 3] += [0.0, 0.003, 0.004]  # frame 4: squared distance 0.005² on vertex 3
    assert lve(pred, gt, np.array([1, 3])) == pytest.approx((0.003**2 + 0.005**2) / T, rel=1e-9)
    assert lve(gt, gt, np.array([0])) == 0.0


def test_lve_refuses_bad_input():
    a = np.zeros((4, 3, 3))
    with pytest.raises(InputError, match="differ in shape"):
        lve(a, np.zeros((5, 3, 3)), np.array([0]))
    with pytest.raises(InputError, match="lip_idx"):
        lve(a, a, np.array([3]))


def test_fdd_of_a_sinusoid_uses_the_std_of_the_squared_displacement():
    T, a = 60, 0.004
    t = np.arange(T)
    template = np.zeros((4, 3))
    gt = np.zeros((T, 4, 3))
    gt[:, 0, 0] = a * np.sin(2 * np.pi * 3 * t / T)  # three whole periods
    gt[:, 1, 1] = a  # displaced but still: contributes no dynamics
    pred = np.zeros_like(gt)  # a frozen upper face
    # ‖d‖² = a² sin² = a²/2 (1 − cos 2ωt) over whole periods: std a²/(2√2); averaged over the
    # two upper-face vertices 0 and 1 (vertex 2, not upper face, must not count)
    gt[:, 2, 2] = 0.01 * np.sin(t)
    expected = a**2 / (2 * np.sqrt(2)) / 2
    upper = np.array([0, 1])
    assert fdd([pred], [gt], upper, [template]) == pytest.approx(expected, rel=1e-9)
    # mean over sequences of (gt − pred): a perfect second sequence halves it; a single
    # template array is used for every sequence; a prediction that moves more gives < 0
    assert fdd([pred, gt], [gt, gt], upper, template) == pytest.approx(expected / 2, rel=1e-9)
    assert fdd([gt], [pred], upper, template) == pytest.approx(-expected, rel=1e-9)


def test_fdd_subtracts_each_sequences_own_template():
    T = 8
    template = np.full((2, 3), 0.2)
    gt = np.broadcast_to(template, (T, 2, 3)).copy()
    gt[::2, 0, 0] += 0.01  # alternating 0 and 0.01: ‖d‖² alternates 0 and 1e-4, std 5e-5
    assert fdd([np.broadcast_to(template, (T, 2, 3))], [gt], np.array([0]), [template]) == pytest.approx(5e-5)
    with pytest.raises(InputError, match="templates"):
        fdd([gt], [gt], np.array([0]), [template, template])


@pytest.mark.parametrize("n", [3, 7])
def test_principal_angles_of_planes_30_degrees_apart(n):
    rotation, _ = np.linalg.qr(np.random.default_rng(n).normal(size=(n, n)))
    e = np.eye(n)
    A = rotation @ np.stack([e[0], e[1]], axis=1)
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    B = rotation @ np.stack([e[0] + c * e[1] + s * e[2], c * e[1] + s * e[2]], axis=1)  # not orthonormal
    np.testing.assert_allclose(principal_angles(A, B), [0.0, 30.0], atol=1e-5)
    np.testing.assert_allclose(principal_angles(B, A), [0.0, 30.0], atol=1e-5)


def test_principal_angles_count_dependent_columns_once():
    e = np.eye(4)
    A = np.stack([e[0], e[1], e[0] + e[1]], axis=1)  # rank 2
    B = np.stack([e[2], e[0]], axis=1)
    np.testing.assert_allclose(principal_angles(A, B), [0.0, 90.0], atol=1e-5)
    np.testing.assert_allclose(principal_angles(e[:, :1], e[:, 1:2] + 1e-7 * e[:, :1]), [90.0], atol=1e-4)
    np.testing.assert_allclose(principal_angles(e[:, :1], e[:, :1] + 1e-9 * e[:, 1:2]), [1e-9 * 180 / np.pi],
                               rtol=1e-3)  # tiny angles stay accurate
    with pytest.raises(InputError):
        principal_angles(np.zeros((4, 1)), B)


def test_cross_domain_leakage_is_an_energy_ratio():
    cross = np.array([[0.1, 0.2], [0.0, 0.0]])
    own = np.array([[1.0, 2.0], [2.0, 0.0]])
    assert cross_domain_leakage(cross, own) == pytest.approx((0.01 + 0.04) / 9.0)
    assert cross_domain_leakage(np.zeros(3), own) == 0.0
    with pytest.raises(InputError, match="all zero"):
        cross_domain_leakage(cross, np.zeros_like(own))


def test_mapping_error_is_the_rms_vertex_residual_through_forward():
    rng = np.random.default_rng(3)
    V = 10
    neutral = rng.normal(size=(V, 3))
    directions = torch.from_numpy(rng.normal(size=(103, V * 3)) * 0.01).float()

    def forward(expr: torch.Tensor, jaw: torch.Tensor) -> torch.Tensor:  # linear in the 103 params
        offsets = torch.cat([expr, jaw], dim=1) @ directions
        return torch.from_numpy(neutral).float() + offsets.reshape(-1, V, 3)

    coeffs = rng.normal(size=(3, 103)).astype(np.float32)
    with torch.no_grad():
        basis = (forward(torch.from_numpy(coeffs[:, :100]), torch.from_numpy(coeffs[:, 100:])).double().numpy()
                 - neutral)
    basis[0, 4] += [0.003, 0.0, 0.004]  # blendshape 0 is off by 5 mm at one vertex
    basis[2] += [0.0, 0.002, 0.0]  # blendshape 2 is off by 2 mm everywhere
    error = mapping_error(basis, coeffs, forward, neutral)
    np.testing.assert_allclose(error, [0.005 / np.sqrt(V), 0.0, 0.002], atol=1e-6)
    with pytest.raises(InputError, match="coeffs"):
        mapping_error(basis, coeffs[:, :100], forward, neutral)
