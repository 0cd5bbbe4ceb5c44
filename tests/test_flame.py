"""FLAME loading, parameter files, and the rig against an independent float64 LBS."""

import os
import pickle
import tempfile

import numpy as np
import pytest
import scipy.sparse
import torch

from common.errors import InputError
from models.rig.flame import (
    FlameParams,
    FlameRig,
    load_flame,
    load_flame_params,
    save_flame_params,
)
from tests.test_safe_pickle import fake_chumpy

V = 60
PARENTS = [-1, 0, 1, 1, 1]


def model_dict(seed=0, vertices=V, joints=5) -> dict:
    """A random model in the official FLAME file layout (400 shape columns)."""
    rng = np.random.default_rng(seed)
    weights = rng.random((vertices, joints))
    return {
        "v_template": rng.normal(scale=0.1, size=(vertices, 3)),
        "f": rng.integers(0, vertices, size=(2 * vertices, 3)).astype(np.uint32),
        "shapedirs": rng.normal(scale=0.002, size=(vertices, 3, 400)),
        "posedirs": rng.normal(scale=0.01, size=(vertices, 3, 9 * (joints - 1))),
        "J_regressor": rng.dirichlet(np.ones(vertices), size=joints),
        "weights": weights / weights.sum(1, keepdims=True),
        "kintree_table": np.array([[4294967295, 0, 1, 1, 1][:joints], list(range(joints))], dtype=np.int64),
    }


def write_npz(path, model):
    np.savez(path, **model)
    return path


def write_official_pkl(path, model):
    """Like FLAME's generic_model.pkl: chumpy arrays, a sparse J_regressor, extra keys."""
    with fake_chumpy() as Ch:
        data = {key: Ch(value) if key in ("v_template", "shapedirs", "posedirs", "weights") else value
                for key, value in model.items()}
        data.update(J_regressor=scipy.sparse.csc_matrix(model["J_regressor"]), bs_style="lbs", bs_type="lrotmin",
                    J=Ch(model["J_regressor"] @ model["v_template"]))
        path.write_bytes(pickle.dumps(data, protocol=2))
    return path


def test_npz_and_official_pkl_give_the_same_arrays(tmp_path):
    model = model_dict()
    from_npz = load_flame(write_npz(tmp_path / "m.npz", model))
    from_pkl = load_flame(write_official_pkl(tmp_path / "generic_model.pkl", model))
    assert (from_npz.n_shape, from_npz.n_expr, from_npz.has_teeth) == (300, 100, False)
    for name in ("v_template", "faces", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table"):
        a, b = getattr(from_npz, name), getattr(from_pkl, name)
        assert a.dtype == b.dtype and a.dtype in (np.float32, np.int64)
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(from_pkl.J_regressor, model["J_regressor"], rtol=1e-6)
    assert from_pkl.source.endswith("generic_model.pkl")


def test_shapedirs_split_can_be_declared(tmp_path):
    model = model_dict()
    model.update(shapedirs=model["shapedirs"][..., :30], n_shape=20, n_expr=10)
    arrays = load_flame(write_npz(tmp_path / "m.npz", model))
    assert (arrays.n_shape, arrays.n_expr) == (20, 10)


def broken(kind):
    model = model_dict()
    if kind == "missing key":
        del model["weights"]
    elif kind == "four joints":
        model = model_dict(joints=4)
    elif kind == "NaN":
        model["v_template"][3, 1] = np.nan
    elif kind == "face index":
        model["f"][0, 0] = V
    elif kind == "posedirs":
        model["posedirs"] = model["posedirs"][..., :9]
    elif kind == "parents":
        model["kintree_table"][0, 2] = 3
    elif kind == "few columns":
        model["shapedirs"] = model["shapedirs"][..., :50]
    return model


@pytest.mark.parametrize(
    "kind, message",
    [("missing key", "missing key.*weights"), ("four joints", "5 joints"), ("NaN", "v_template.*NaN"),
     ("face index", "vertex indices"), ("posedirs", "posedirs has shape"), ("parents", "kintree_table"),
     ("few columns", "50 columns")],
)
def test_bad_models_raise_input_error_naming_the_file(tmp_path, kind, message):
    for path in (write_npz(tmp_path / "bad.npz", broken(kind)), write_official_pkl(tmp_path / "bad.pkl", broken(kind))):
        with pytest.raises(InputError, match=message) as raised:
            load_flame(path)
        assert str(path) in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("payload", [os.urandom(64), b"PK\x03\x04 truncated zip", b""])
def test_garbage_files_raise_input_error_naming_the_file(tmp_path, payload):
    path = tmp_path / "garbage.bin"
    path.write_bytes(payload)
    with pytest.raises(InputError) as raised:
        load_flame(path)
    assert str(path) in str(raised.value)
    with pytest.raises(InputError, match="garbage.bin"):
        load_flame_params(path)


# ---- an independent float64 FLAME forward pass -------------------------------------------


def rodrigues(r):
    angle = np.linalg.norm(r)
    if angle < 1e-12:
        return np.eye(3)
    k = r / angle
    skew = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * skew + (1 - np.cos(angle)) * skew @ skew


def reference_lbs(model, shape, static_offset, params, frame):
    """FLAME: shape/expression blend on the offset template, pose correctives, LBS, translate."""
    coefficients = np.concatenate([shape, params.expr[frame]]).astype(np.float64)
    v_shaped = model["v_template"] + static_offset[0] + model["shapedirs"] @ coefficients
    joints = model["J_regressor"] @ v_shaped
    poses = [params.rotation[frame], params.neck_pose[frame], params.jaw_pose[frame],
             params.eyes_pose[frame][:3], params.eyes_pose[frame][3:]]
    rotations = [rodrigues(np.asarray(p, np.float64)) for p in poses]
    pose_feature = np.concatenate([(r - np.eye(3)).ravel() for r in rotations[1:]])
    v_posed = v_shaped + model["posedirs"] @ pose_feature
    parents = [-1] + model["kintree_table"][0, 1:].tolist()
    world = []
    for j, parent in enumerate(parents):
        local = np.eye(4)
        local[:3, :3] = rotations[j]
        local[:3, 3] = joints[j] - (joints[parent] if parent >= 0 else 0)
        world.append(local if parent < 0 else world[parent] @ local)
    skinning = []
    for j, transform in enumerate(world):
        moved = transform.copy()
        moved[:3, 3] -= transform[:3, :3] @ joints[j]  # relative to the rest-pose joint
        skinning.append(moved)
    blended = np.einsum("vj,jab->vab", model["weights"], np.stack(skinning))
    homogeneous = np.concatenate([v_posed, np.ones((len(v_posed), 1))], axis=1)
    return np.einsum("vab,vb->va", blended, homogeneous)[:, :3] + params.translation[frame]


def random_params(frames, seed=1, vertices=V):
    rng = np.random.default_rng(seed)
    def normal(scale, *size):
        return rng.normal(scale=scale, size=size).astype(np.float32)
    return FlameParams(
        expr=normal(1.0, frames, 100), jaw_pose=normal(0.3, frames, 3), rotation=normal(0.5, frames, 3),
        neck_pose=normal(0.3, frames, 3), translation=normal(0.1, frames, 3), eyes_pose=normal(0.3, frames, 6),
        shape=normal(1.0, 300), static_offset=normal(0.005, 1, vertices, 3),
    )


def test_rig_matches_independent_lbs(tmp_path):
    model = model_dict()
    params = random_params(7)
    rig = FlameRig(load_flame(write_npz(tmp_path / "m.npz", model)), params.shape, params.static_offset, chunk_frames=3)
    vertices = rig(params)
    assert vertices.shape == (7, V, 3) and vertices.dtype == torch.float32
    expected = np.stack([reference_lbs(model, params.shape, params.static_offset, params, t) for t in range(7)])
    assert np.abs(vertices.detach().numpy() - expected).max() < 1e-5
    assert rig.faces.dtype == torch.int64 and rig.faces.shape == (2 * V, 3)


def test_rig_leaves_no_files_behind(tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    arrays = load_flame(write_npz(tmp_path / "m.npz", model_dict()))
    FlameRig(arrays)(FlameParams.neutral(2))
    assert list(scratch.iterdir()) == []


def test_flame_params_round_trip(tmp_path):
    params = random_params(5)
    path = tmp_path / "flame_param.npz"
    save_flame_params(params, path)
    assert [p.name for p in tmp_path.iterdir()] == ["flame_param.npz"]
    with np.load(path) as raw:
        assert set(raw.files) == {"shape", "expr", "rotation", "neck_pose", "jaw_pose", "translation",
                                  "eyes_pose", "eyelids", "static_offset", "dynamic_offset"}  # eyelids: VHAP's
        assert all(raw[key].dtype == np.float32 for key in raw.files)
        assert raw["dynamic_offset"].shape == (5, V, 3) and not raw["dynamic_offset"].any()
    loaded = load_flame_params(path)
    for key in ("shape", "expr", "rotation", "neck_pose", "jaw_pose", "translation", "eyes_pose", "static_offset"):
        np.testing.assert_array_equal(getattr(loaded, key), getattr(params, key))
    torch_params = FlameParams(**{k: torch.as_tensor(v) for k, v in vars(params).items()})
    save_flame_params(torch_params, path)
    np.testing.assert_array_equal(load_flame_params(path).expr, params.expr)


def test_motion_file_without_shape_drives_an_avatar(tmp_path):
    path = tmp_path / "motion.npz"
    jaw = np.linspace(0, 0.3, 4, dtype=np.float32)[:, None] * [1, 0, 0]
    np.savez(path, expr=np.ones((4, 50), np.float32), jaw_pose=jaw.astype(np.float32))
    motion = load_flame_params(path)
    assert motion.shape is None and motion.static_offset is None and motion.num_frames == 4
    assert motion.expr.shape == (4, 100) and not motion.expr[:, 50:].any()
    assert not motion.eyes_pose.any() and motion.eyes_pose.shape == (4, 6)
    avatar = random_params(1)
    rig = FlameRig(load_flame(write_npz(tmp_path / "m.npz", model_dict())), avatar.shape, avatar.static_offset)
    vertices = rig(motion)
    assert vertices.shape == (4, V, 3)
    np.testing.assert_allclose(vertices[2].numpy(), rig(motion.slice(2, 3))[0].numpy(), atol=1e-6)


@pytest.mark.parametrize(
    "arrays, message",
    [({"expr": np.zeros((4, 100)), "jaw_pose": np.zeros((3, 3))}, "jaw_pose"),
     ({"expr": np.zeros((4, 100)), "rotation": np.full((4, 3), np.nan)}, "rotation.*NaN"),
     ({"expr": np.zeros((4, 120))}, "expr"),
     ({"jaw_pose": np.zeros((4, 3))}, "missing key expr")],
)
def test_bad_parameter_files_raise_input_error(tmp_path, arrays, message):
    path = tmp_path / "params.npz"
    np.savez(path, **arrays)
    with pytest.raises(InputError, match=message) as raised:
        load_flame_params(path)
    assert str(path) in str(raised.value)
