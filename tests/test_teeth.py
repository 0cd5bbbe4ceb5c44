"""GaussianAvatars' teeth, checked against docs/architecture.md §Formats written out independently here."""

import numpy as np
import pytest

from common.errors import InputError
from models.rig.flame import FlameParams, FlameRig, load_flame
from models.rig.flame_arrays import FlameArrays
from models.rig.teeth import add_teeth

UPPER = [1713, 1715, 1716, 1735, 1696, 1694, 1657, 3543, 2774, 2811, 2813, 2850, 2833, 2832, 2830]
LOWER = [1576, 1577, 1773, 1774, 1795, 1802, 1865, 3503, 2948, 2905, 2898, 2881, 2880, 2713, 2712]
N_SHAPE, N_EXPR = 6, 4


def flame_5023(seed=0) -> FlameArrays:
    rng = np.random.default_rng(seed)
    v = 5023
    weights = rng.random((v, 5))
    return FlameArrays(
        v_template=rng.normal(scale=0.1, size=(v, 3)).astype(np.float32),
        faces=rng.integers(0, v, size=(9976, 3)),
        shapedirs=rng.normal(scale=0.01, size=(v, 3, N_SHAPE + N_EXPR)).astype(np.float32),
        posedirs=rng.normal(scale=0.01, size=(v, 3, 36)).astype(np.float32),
        J_regressor=rng.random((5, v)).astype(np.float32),
        weights=(weights / weights.sum(1, keepdims=True)).astype(np.float32),
        kintree_table=np.array([[-1, 0, 1, 1, 1], [0, 1, 2, 3, 4]]),
        n_shape=N_SHAPE,
        n_expr=N_EXPR,
        source="test-flame",
    )


def expected_faces() -> list:
    base = 5023
    ur, lr, ue, le, urb, ueb, lrb, leb = [(lambda i, s=start: base + s + i) for start in range(0, 120, 15)]
    strips = [  # (first face, rule for i <= 6, rule for i >= 7)
        (9976, lambda i: [(ur(i), ue(i + 1), ue(i)), (ur(i), ur(i + 1), ue(i + 1))],
               lambda i: [(ur(i), ur(i + 1), ue(i)), (ur(i + 1), ue(i + 1), ue(i))]),
        (10004, lambda i: [(urb(i), ueb(i), ueb(i + 1)), (urb(i), ueb(i + 1), urb(i + 1))],
                lambda i: [(urb(i), ueb(i), urb(i + 1)), (urb(i + 1), ueb(i), ueb(i + 1))]),
        (10032, lambda i: [(ueb(i), ue(i), ueb(i + 1)), (ueb(i + 1), ue(i), ue(i + 1))],
                lambda i: [(ueb(i), ue(i), ue(i + 1)), (ueb(i), ue(i + 1), ueb(i + 1))]),
        (10060, lambda i: [(le(i), le(i + 1), lr(i)), (le(i + 1), lr(i + 1), lr(i))],
                lambda i: [(le(i), lr(i + 1), lr(i)), (le(i), le(i + 1), lr(i + 1))]),
        (10088, lambda i: [(lrb(i), leb(i + 1), leb(i)), (lrb(i), lrb(i + 1), leb(i + 1))],
                lambda i: [(lrb(i), lrb(i + 1), leb(i)), (lrb(i + 1), leb(i + 1), leb(i))]),
        (10116, lambda i: [(leb(i), leb(i + 1), le(i)), (leb(i + 1), le(i + 1), le(i))],
                lambda i: [(leb(i), le(i + 1), le(i)), (leb(i), leb(i + 1), le(i + 1))]),
    ]
    faces = []
    for first, left, right in strips:
        assert len(faces) + 9976 == first
        for i in range(14):
            faces += left(i) if i <= 6 else right(i)
    return faces


@pytest.fixture(scope="module")
def pair():
    plain = flame_5023()
    return plain, add_teeth(plain)


def test_counts_and_index_ranges(pair):
    plain, teeth = pair
    assert (teeth.num_vertices, teeth.num_faces) == (5143, 10144)
    assert teeth.has_teeth and not plain.has_teeth
    assert teeth.shapedirs.shape == (5143, 3, N_SHAPE + N_EXPR)
    assert teeth.posedirs.shape == (5143, 3, 36)
    assert teeth.J_regressor.shape == (5, 5143) and teeth.weights.shape == (5143, 5)
    new = teeth.faces[9976:]
    assert new.min() == 5023 and new.max() == 5142
    assert set(new.ravel().tolist()) == set(range(5023, 5143))
    np.testing.assert_array_equal(teeth.faces[:9976], plain.faces)
    np.testing.assert_array_equal(teeth.v_template[:5023], plain.v_template)


def test_every_face_follows_the_design_table(pair):
    _, teeth = pair
    assert teeth.faces.dtype == np.int64
    assert teeth.faces[9976:].tolist() == [list(face) for face in expected_faces()]


def test_vertex_positions(pair):
    plain, teeth = pair
    u = plain.v_template[UPPER].astype(np.float64)
    low = plain.v_template[LOWER].astype(np.float64)
    md = np.mean(np.linalg.norm(u - low, axis=1))
    m = (u + low) / 2
    m[:, 1] = m[:, 1].mean()
    m[:, 2] -= 1.5 * md
    upper_edge = m + [0, 0.1 * md, 0]
    upper_root = upper_edge + [0, 2 * md, 0]
    lower_edge = m - [0, 0.1 * md, 0.4 * md]
    lower_root = lower_edge - [0, 2 * md, 0]
    back = np.array([0, 0, md])
    rows = [upper_root, lower_root, upper_edge, lower_edge,
            upper_root - back, upper_edge - back, lower_root - back, lower_edge - back]
    np.testing.assert_allclose(teeth.v_template[5023:], np.concatenate(rows), atol=1e-6)


def test_buffers_and_skinning_weights(pair):
    plain, teeth = pair
    ring_mean = (plain.shapedirs[UPPER] + plain.shapedirs[LOWER]) / 2
    for row in range(8):
        block = teeth.shapedirs[5023 + 15 * row: 5023 + 15 * (row + 1)]
        np.testing.assert_allclose(block[..., :N_SHAPE], ring_mean[..., :N_SHAPE], atol=1e-7)
        assert not block[..., N_SHAPE:].any()
    assert not teeth.posedirs[5023:].any() and not teeth.J_regressor[:, 5023:].any()
    upper_rows, lower_rows = (0, 2, 4, 5), (1, 3, 6, 7)
    for rows, joint in ((upper_rows, 1), (lower_rows, 2)):
        for row in rows:
            expected = np.zeros((15, 5), np.float32)
            expected[:, joint] = 1.0
            np.testing.assert_array_equal(teeth.weights[5023 + 15 * row: 5023 + 15 * (row + 1)], expected)


def test_teeth_need_plain_5023_vertex_flame(pair):
    _, teeth = pair
    with pytest.raises(InputError, match="test-flame"):
        add_teeth(teeth)


def test_load_flame_adds_teeth_only_when_asked(tmp_path, pair):
    plain, _ = pair
    path = tmp_path / "flame.npz"
    np.savez(path, v_template=plain.v_template, f=plain.faces, shapedirs=plain.shapedirs,
             posedirs=plain.posedirs, J_regressor=plain.J_regressor, weights=plain.weights,
             kintree_table=plain.kintree_table, n_shape=N_SHAPE, n_expr=N_EXPR)
    assert load_flame(path).num_faces == 10144
    assert load_flame(path, teeth=False).num_faces == 9976


def test_rig_pads_a_static_offset_fitted_without_teeth(pair):
    _, teeth = pair
    offset = np.full((1, 5023, 3), 0.01, np.float32)
    vertices = FlameRig(teeth, static_offset=offset)(FlameParams.neutral(1))
    rest = FlameRig(teeth)(FlameParams.neutral(1))
    moved = (vertices - rest)[0].numpy()  # at rest pose, LBS leaves the offset template as is
    assert vertices.shape == (1, 5143, 3)
    np.testing.assert_allclose(moved[:5023], 0.01, atol=1e-6)
    np.testing.assert_allclose(moved[5023:], 0.0, atol=1e-6)
    with pytest.raises(InputError, match="static_offset"):
        FlameRig(teeth, static_offset=np.zeros((1, 5000, 3), np.float32))
