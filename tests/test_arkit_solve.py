"""The ARKit names, shape files and bounded least-squares solve (models/rig/arkit.py).

The orders are checked against the published layouts (Live Link Face's CSV header as real takes
write it); the solve against scipy's own bounded least squares on the same stacked problem and
against planted combinations of random targets."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from scipy.optimize import lsq_linear

from common.errors import InputError
from models.rig.arkit import (
    ARKIT_NAMES,
    LIVELINK_FROM_ARKIT,
    LIVELINK_NAMES,
    ArkitShapes,
    load_arkit_shapes,
    save_arkit_shapes,
    solve_arkit,
)
from tests.test_arkit_files import REAL_TAKE_HEADER  # a Live Link Face take's header, as recorded

# Apple's documentation, ARFaceAnchor.BlendShapeLocation, its topics in order.
APPLE_TOPICS = {
    "Left Eye": "eyeBlinkLeft eyeLookDownLeft eyeLookInLeft eyeLookOutLeft eyeLookUpLeft eyeSquintLeft eyeWideLeft",
    "Right Eye": "eyeBlinkRight eyeLookDownRight eyeLookInRight eyeLookOutRight eyeLookUpRight eyeSquintRight "
                 "eyeWideRight",
    "Mouth and Jaw": "jawForward jawLeft jawRight jawOpen mouthClose mouthFunnel mouthPucker mouthLeft mouthRight "
                     "mouthSmileLeft mouthSmileRight mouthFrownLeft mouthFrownRight mouthDimpleLeft mouthDimpleRight "
                     "mouthStretchLeft mouthStretchRight mouthRollLower mouthRollUpper mouthShrugLower "
                     "mouthShrugUpper mouthPressLeft mouthPressRight mouthLowerDownLeft mouthLowerDownRight "
                     "mouthUpperUpLeft mouthUpperUpRight",
    "Eyebrows, Cheeks, and Nose": "browDownLeft browDownRight browInnerUp browOuterUpLeft browOuterUpRight "
                                  "cheekPuff cheekSquintLeft cheekSquintRight noseSneerLeft noseSneerRight",
    "Tongue": "tongueOut",
}
K = 52


def test_names_follow_the_published_orders():
    assert ARKIT_NAMES == tuple(" ".join(APPLE_TOPICS.values()).split())
    assert LIVELINK_NAMES == tuple(REAL_TAKE_HEADER.split(",")[2:2 + K])
    assert len(set(ARKIT_NAMES)) == K
    pascal = tuple(name[0].upper() + name[1:] for name in ARKIT_NAMES)
    assert tuple(pascal[i] for i in LIVELINK_FROM_ARKIT) == LIVELINK_NAMES


def _shapes(rng: np.random.Generator, vertices: int = 200) -> ArkitShapes:
    """Random smooth-ish displacement fields, a few mm each."""
    return ArkitShapes(ARKIT_NAMES, (rng.normal(size=(K, vertices, 3)) * 0.003).astype(np.float32))


def _planted(rng: np.random.Generator, frames: int) -> np.ndarray:
    """Weights in 0..1 with a good share exactly at 0 and at 1 (the bounds are active)."""
    return np.clip(rng.uniform(-0.4, 1.3, (frames, K)), 0, 1).astype(np.float32)


def test_a_planted_combination_is_recovered():
    rng = np.random.default_rng(1)
    shapes, weights = _shapes(rng), _planted(rng, 40)
    solve = solve_arkit(shapes, shapes.combine(weights), smoothness=0.0)
    assert np.abs(solve.weights - weights).max() < 1e-4
    assert solve.residual_mm.shape == (40,) and solve.residual_mm.max() < 1e-3
    assert solve.weights.dtype == np.float32 and solve.weights.min() >= 0 and solve.weights.max() <= 1


def test_the_solve_is_the_bounded_least_squares_minimiser():
    """The stacked problem written out here (frames' fits, the smoothness rows √λ (w_t − w_{t−1}),
    the ridge rows √ε w_t): the weights meet its optimality (KKT) conditions, and agree with
    scipy's bounded least squares on it."""
    rng = np.random.default_rng(2)
    frames, vertices, smoothness = 6, 40, 0.05
    shapes = _shapes(rng, vertices)
    target = shapes.combine(_planted(rng, frames)) + rng.normal(size=(frames, vertices, 3)) * 0.002
    target[2] *= 3.0  # beyond what weights ≤ 1 reach
    solve = solve_arkit(shapes, target, smoothness=smoothness)
    basis = shapes.displacements.reshape(K, -1).astype(np.float64).T  # (3V, K)
    scale = np.sum(basis**2) / K
    rows, rhs = [], []
    for t in range(frames):
        block = np.zeros((3 * vertices, frames * K))
        block[:, t * K:(t + 1) * K] = basis
        rows.append(block)
        rhs.append(target[t].reshape(-1))
    for t in range(1, frames):
        block = np.zeros((K, frames * K))
        block[:, t * K:(t + 1) * K] = np.eye(K)
        block[:, (t - 1) * K:t * K] = -np.eye(K)
        rows.append(np.sqrt(smoothness * scale) * block)
        rhs.append(np.zeros(K))
    rows.append(np.sqrt(1e-7 * scale) * np.eye(frames * K))
    rhs.append(np.zeros(frames * K))
    matrix, values = np.vstack(rows), np.concatenate(rhs)
    weights = solve.weights.reshape(-1).astype(np.float64)
    gradient = matrix.T @ (matrix @ weights - values)
    tolerance = 1e-4 * np.abs(matrix.T @ values).max()
    assert np.abs(gradient[(weights > 0) & (weights < 1)]).max() < tolerance  # stationary where free
    assert gradient[weights == 0].min() > -tolerance and gradient[weights == 1].max() < tolerance
    assert 0.05 < (weights == 0).mean() and 0.05 < (weights == 1).mean()  # both bounds were active
    reference = lsq_linear(matrix, values, bounds=(0, 1), method="trf", tol=1e-12, lsmr_tol="auto").x
    assert np.abs(weights - reference).max() < 1e-4
    error = shapes.combine(solve.weights) - target
    rms_mm = 1000 * np.sqrt(np.mean(np.sum(error.astype(np.float64) ** 2, axis=2), axis=1))
    np.testing.assert_allclose(solve.residual_mm, rms_mm, rtol=1e-4)


def test_a_long_clip_is_solved_window_by_window_without_seams():
    """Long clips are solved a window at a time (memory); frames around a window edge (2048)
    come out as when the frames about them are solved together."""
    rng = np.random.default_rng(7)
    shapes = _shapes(rng, 30)
    weights = np.clip(0.5 + 0.7 * np.sin(np.arange(5000)[:, None] / 40.0 + rng.uniform(0, 6, K)), 0, 1)
    target = shapes.combine(weights)
    exact = solve_arkit(shapes, target, smoothness=0.0)
    assert np.abs(exact.weights - weights).max() < 1e-4 and exact.residual_mm.max() < 1e-3
    noisy = target + rng.normal(size=target.shape).astype(np.float32) * 0.003
    whole = solve_arkit(shapes, noisy, smoothness=0.1).weights[2000:2100]
    around = solve_arkit(shapes, noisy[1550:2550], smoothness=0.1).weights[450:550]
    assert np.abs(whole - around).max() < 1e-3


def test_duplicate_and_dependent_targets_are_handled():
    rng = np.random.default_rng(3)
    fields = _shapes(rng).displacements.copy()
    fields[1] = fields[0]  # a duplicate: the data cannot tell them apart
    fields[4] = fields[2] + fields[3]  # a linear combination of two others
    fields[5] = 0.0  # a target that moves nothing
    shapes = ArkitShapes(ARKIT_NAMES, fields)
    weights = _planted(rng, 20)
    weights[:, 1] = 0.0
    weights[:, 5] = 0.7
    solve = solve_arkit(shapes, shapes.combine(weights), smoothness=0.0)
    assert solve.residual_mm.max() < 1e-3  # the motion is reproduced
    np.testing.assert_allclose(solve.weights[:, 0], solve.weights[:, 1], atol=1e-5)  # duplicates share
    np.testing.assert_allclose(solve.weights[:, 0] + solve.weights[:, 1], weights[:, 0], atol=1e-4)
    assert np.abs(solve.weights[:, 5]).max() < 1e-6  # nothing to explain: no weight
    assert np.isfinite(solve.weights).all()


def test_smoothness_steadies_noisy_frames_and_the_mask_limits_the_fit():
    rng = np.random.default_rng(4)
    shapes = _shapes(rng, 300)
    steady = np.repeat(_planted(rng, 1) * 0.5 + 0.25, 60, axis=0)
    noisy = shapes.combine(steady) + rng.normal(size=(60, 300, 3)).astype(np.float32) * 0.004
    loose = solve_arkit(shapes, noisy, smoothness=0.0).weights
    smooth = solve_arkit(shapes, noisy, smoothness=1.0).weights
    assert np.abs(np.diff(smooth, axis=0)).mean() < 0.3 * np.abs(np.diff(loose, axis=0)).mean()
    assert np.abs(smooth - steady).mean() < np.abs(loose - steady).mean()
    mask = np.zeros(300, bool)
    mask[:150] = True
    exact = shapes.combine(steady)
    exact[:, ~mask] += 0.05  # what is outside the mask does not count
    solve = solve_arkit(shapes, exact, smoothness=0.0, mask=mask)
    assert np.abs(solve.weights - steady).max() < 1e-4 and solve.residual_mm.max() < 1e-3


def test_bad_solve_arguments_are_one_line():
    shapes = _shapes(np.random.default_rng(5), 10)
    for call in (lambda: solve_arkit(shapes, np.zeros((3, 11, 3))),
                 lambda: solve_arkit(shapes, np.zeros((3, 10, 3)), smoothness=-1),
                 lambda: solve_arkit(shapes, np.zeros((3, 10, 3)), mask=np.zeros(10, bool))):
        with pytest.raises(InputError) as err:
            call()
        assert "\n" not in str(err.value)
    assert solve_arkit(shapes, np.zeros((0, 10, 3))).weights.shape == (0, K)


def test_shape_files_round_trip_with_the_same_bytes(tmp_path):
    shapes = _shapes(np.random.default_rng(6), 30)
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    save_arkit_shapes(shapes, first)
    save_arkit_shapes(shapes, second)
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:  # the documented layout: one (V, 3) array per Apple name
        assert sorted(archive.namelist()) == sorted(f"{name}.npy" for name in ARKIT_NAMES)
    loaded = load_arkit_shapes(first, 30)
    assert loaded.names == ARKIT_NAMES and loaded.source == str(first)
    np.testing.assert_array_equal(loaded.displacements, shapes.displacements)


def _write(path, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())


def _good(vertices: int = 8) -> dict[str, np.ndarray]:
    return {name: np.zeros((vertices, 3), np.float32) for name in ARKIT_NAMES}


def _without(name: str) -> dict[str, np.ndarray]:
    arrays = _good()
    del arrays[name]
    return arrays


def _with(name: str, value: np.ndarray) -> dict[str, np.ndarray]:
    return {**_good(), name: value}


def _pascal() -> dict[str, np.ndarray]:
    return {name[0].upper() + name[1:]: value for name, value in _good().items()}


@pytest.mark.parametrize("arrays, expected", [
    (_without("tongueOut"), "missing ARKit blendshape(s) tongueOut"),
    (_with("mouthOpen", np.zeros((8, 3), np.float32)), "unknown ARKit blendshape name(s) mouthOpen"),
    (_pascal(), "camelCase"),
    (_with("jawOpen", np.zeros((9, 3), np.float32)), "jawOpen has 9 vertices; the rig needs (8, 3)"),
    (_with("jawOpen", np.zeros((8, 2), np.float32)), "jawOpen has shape (8, 2)"),
    (_with("jawOpen", np.zeros((8, 3), np.int32)), "jawOpen is int32"),
    (_with("jawOpen", np.full((8, 3), np.nan, np.float32)), "NaN"),
    (_with("jawOpen", np.full((8, 3), 1e300)), "NaN or infinite"),
    (_with("jawOpen", np.array([None] * 24, object).reshape(8, 3)), "not allowed"),
])
def test_bad_shape_files_are_one_line_naming_the_file(tmp_path, arrays, expected):
    path = tmp_path / "shapes.npz"
    if any(value.dtype == object for value in arrays.values()):
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # numpy pickles object arrays
        path.write_bytes(buffer.getvalue())
    else:
        _write(path, arrays)
    with pytest.raises(InputError) as err:
        load_arkit_shapes(path, 8)
    message = str(err.value)
    assert str(path) in message and expected in message and "\n" not in message


def test_files_that_are_no_archive_are_one_line(tmp_path):
    text = tmp_path / "shapes.npz"
    text.write_text("eyeBlinkLeft,0.5\n")
    for path in (text, tmp_path, tmp_path / "absent.npz"):
        with pytest.raises(InputError) as err:
            load_arkit_shapes(path, 8)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
