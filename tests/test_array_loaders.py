"""Hostile .npz/.npy, FLAME, blendshape, data-set and checkpoint files: each refusal is one line
naming the file, nothing is allocated from a declared size, nothing blocks; real files load."""

import io
import json
import os
import pickle
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest
import scipy.sparse
import torch
from numpy.lib import format as npy_format

from assets import DEMO_AVATAR, DEMO_BLENDSHAPES, DEMO_FLAME, MODEL_DIR
from avatar_app.cli import main
from common.errors import InputError
from models.drivers.checkpoint import load_checkpoint, save_checkpoint
from models.learning.datasets import load_florence, load_mesh_sequence, load_vocaset
from models.rig.blendshapes import BlendshapeModel, WeightSequence
from models.rig.flame import FRAME_KEYS, load_flame, load_flame_params
from models.rig.npz import read_npy, read_npz

V = 30


pytestmark = pytest.mark.usefixtures("no_hang")  # a blocking loader fails its test, not the run


def refused(call, path, *needles) -> str:
    """`call(path)` must raise one InputError line naming the file (and each needle)."""
    with pytest.raises(InputError) as raised:
        call(path)
    message = str(raised.value)
    assert "\n" not in message and "\r" not in message, message
    assert message.startswith(str(path)), message
    for needle in needles:
        assert needle in message, message
    return message


def npy_bytes(shape, descr="<f8", data=b"", version=(1, 0)) -> bytes:
    """A .npy file with a hand-written header: it may declare anything."""
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    writer = npy_format.write_array_header_1_0 if version == (1, 0) else npy_format.write_array_header_2_0
    writer(buffer, header)
    return buffer.getvalue() + data


def zip_of(path, members: dict, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    return path


def flame_model(vertices=V) -> dict:
    rng = np.random.default_rng(0)
    weights = rng.random((vertices, 5))
    return {
        "v_template": rng.normal(scale=0.1, size=(vertices, 3)),
        "f": rng.integers(0, vertices, size=(2 * vertices, 3)),
        "shapedirs": rng.normal(scale=0.002, size=(vertices, 3, 400)),
        "posedirs": rng.normal(scale=0.01, size=(vertices, 3, 36)),
        "J_regressor": rng.dirichlet(np.ones(vertices), size=5),
        "weights": weights / weights.sum(1, keepdims=True),
        "kintree_table": np.array([[4294967295, 0, 1, 1, 1], range(5)], dtype=np.int64),
    }


def gaussian_avatars_params(frames=4, vertices=V) -> dict:
    """flame_param.npz as GaussianAvatars writes it: 300 shape, static and dynamic offsets."""
    rng = np.random.default_rng(1)
    values = {key: rng.normal(scale=0.1, size=(frames, width)).astype(np.float32) for key, width in FRAME_KEYS.items()}
    values.update(shape=rng.normal(size=300).astype(np.float32),
                  static_offset=rng.normal(scale=0.001, size=(1, vertices, 3)).astype(np.float32),
                  dynamic_offset=np.zeros((frames, vertices, 3), np.float32))
    return values


# ---- the one .npz reader ------------------------------------------------------------------------


def test_declared_huge_shape_is_refused_before_allocating(tmp_path):
    for shape in ((10**12,), (10**8,), (2**62, 2**62)):
        path = zip_of(tmp_path / "huge.npz", {"expr.npy": npy_bytes(shape, data=bytes(80))}, zipfile.ZIP_DEFLATED)
        tracemalloc.start()
        try:
            refused(load_flame_params, path, "expr", "header declares")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 5 << 20  # numpy's own reader would allocate the declared shape first
    # a zip directory agreeing with the header (as a zip bomb's would) is bounded too
    header = npy_bytes((3 << 27,), "<f8")
    path = zip_of(tmp_path / "bomb.npz", {"expr.npy": header})
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02")  # the central directory's uncompressed size, at offset 24
    data[entry + 24 : entry + 28] = struct.pack("<I", len(header) + 8 * (3 << 27))
    path.write_bytes(bytes(data))
    refused(load_flame_params, path, "expr", "more than the", "allowed for an array")


def test_truncated_and_corrupt_archives_give_one_line(tmp_path):
    good = tmp_path / "good.npz"
    for save in (np.savez, np.savez_compressed):
        save(good, expr=np.ones((3, 100), np.float32), jaw_pose=np.zeros((3, 3)))
        data = good.read_bytes()
        bad = tmp_path / "bad.npz"
        for cut in range(0, len(data), max(1, len(data) // 97)):
            bad.write_bytes(data[:cut])
            refused(load_flame_params, bad)
        for spot in range(0, len(data), max(1, len(data) // 61)):  # flipped bytes: bad CRC, bad headers
            flipped = bytearray(data)
            flipped[spot] ^= 0xFF
            bad.write_bytes(bytes(flipped))
            try:
                load_flame_params(bad)
            except InputError as err:
                assert "\n" not in str(err) and str(err).startswith(str(bad))


@pytest.mark.parametrize("members, needle", [
    ({"expr.npy": b"hello, not an array"}, "not a .npy array"),
    ({"expr": b"\x93NUMPY"}, "not a .npy array"),
    ({"expr.npy": npy_bytes((2,), "|O", bytes(16))}, "dtype object"),
    ({"expr.npy": npy_bytes((2,), [("a", "<f4")], bytes(8))}, "not allowed"),
    ({"expr.npy": npy_bytes((3, 100), "<f4", bytes(40))}, "header declares"),
    ({"expr.npy": npy_bytes((3, 100), "<f4", bytes(1300))}, "header declares"),
    ({"expr.npy": npy_bytes((-3, 100), "<f4")}, "impossible shape"),
    ({"expr.npy": b"\x93NUMPY\x07\x00" + bytes(20)}, "version 7.0"),
    ({"expr.npy": b"\x93NUMPY\x01\x00\xff\x00" + b"{" * 255}, "not a .npy array"),
])
def test_bad_members_name_the_key(tmp_path, members, needle):
    path = zip_of(tmp_path / "params.npz", members)
    refused(load_flame_params, path, "params.npz: expr: ", needle)


@pytest.mark.parametrize("payload", [b"", b"PK\x03\x04", os.urandom(300), b"PK\x05\x06" + bytes(18)])
def test_non_archives_are_refused_by_every_npz_loader(tmp_path, payload):
    path = tmp_path / "x.npz"
    path.write_bytes(payload)
    for load in (load_flame_params, BlendshapeModel.load, WeightSequence.load):
        refused(load, path)


def test_a_single_npy_is_not_an_archive(tmp_path):
    path = tmp_path / "one.npz"
    with open(path, "wb") as handle:
        np.save(handle, np.zeros(3))
    refused(load_flame_params, path, "not a readable .npz archive")


def test_pipes_and_devices_are_refused_at_once(tmp_path):
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    for load in (load_flame, load_flame_params, BlendshapeModel.load, WeightSequence.load,
                 lambda p: read_npz(p, ["a"]), read_npy):
        refused(load, fifo, "not a regular file")
    if os.path.exists("/dev/zero"):
        refused(read_npy, "/dev/zero", "not a regular file")
        refused(load_flame, "/dev/zero", "not a regular file")


def test_read_npz_reads_what_numpy_wrote(tmp_path):
    arrays = {"f": np.arange(6.0).reshape(2, 3), "i": np.arange(4, dtype=">i2"), "b": np.array([True, False]),
              "u": np.array(["jaw", "smile"]), "fortran": np.asfortranarray(np.arange(12).reshape(3, 4)),
              "empty": np.zeros((0, 7)), "scalar": np.float32(2.5)}
    for save in (np.savez, np.savez_compressed):
        save(tmp_path / "ok.npz", **arrays)
        loaded = read_npz(tmp_path / "ok.npz", [*arrays, "absent"])
        assert loaded.keys() == arrays.keys()
        for key, value in arrays.items():
            np.testing.assert_array_equal(loaded[key], value)
            assert loaded[key].dtype == np.asarray(value).dtype and loaded[key].shape == np.shape(value)
    np.save(tmp_path / "ok.npy", arrays["fortran"])
    np.testing.assert_array_equal(read_npy(tmp_path / "ok.npy"), arrays["fortran"])
    np.testing.assert_array_equal(read_npy(tmp_path / "ok.npy", mmap=True), arrays["fortran"])


# ---- FLAME models and parameters ----------------------------------------------------------------


def test_legitimate_files_still_load(tmp_path):
    flame = load_flame(DEMO_FLAME)
    assert flame.num_vertices > 0 and flame.n_expr > 0
    assert load_flame_params(DEMO_AVATAR / "flame_param.npz").num_frames >= 1
    BlendshapeModel.load(DEMO_BLENDSHAPES)
    np.savez(tmp_path / "flame_param.npz", **gaussian_avatars_params())
    params = load_flame_params(tmp_path / "flame_param.npz")
    assert params.shape.shape == (300,) and params.static_offset.shape == (1, V, 3) and params.num_frames == 4
    np.savez(tmp_path / "model.npz", **flame_model())
    assert load_flame(tmp_path / "model.npz").n_shape == 300


@pytest.mark.parametrize("key, value, needle", [
    ("jaw_pose", np.full((4, 3), 1e30), "jaw_pose holds 1e+30, beyond the bound ±1000"),
    ("expr", np.full((4, 100), 1e39), "expr contains NaN or infinite values"),
    ("translation", np.full((4, 3), -5e3), "translation holds 5e+03"),
    ("shape", np.full(300, 2e3), "shape holds"),
    ("static_offset", np.full((1, V, 3), np.inf), "static_offset contains NaN"),
    ("rotation", np.full((4, 3), "x"), "not numeric"),
])
def test_absurd_parameters_are_refused(tmp_path, key, value, needle):
    values = gaussian_avatars_params()
    values[key] = value
    np.savez(tmp_path / "motion.npz", **values)
    refused(load_flame_params, tmp_path / "motion.npz", needle)


@pytest.mark.parametrize("changes, needle", [
    ({"v_template": 1e39}, "v_template contains NaN or infinite values"),
    ({"v_template": 1e38}, "v_template holds 1e+38"),
    ({"shapedirs": 5e3}, "shapedirs holds"),
    ({"weights": -2e3}, "weights holds"),
    ({"n_shape": np.array([]), "n_expr": 100}, "n_shape must be one non-negative integer"),
    ({"n_shape": np.array([300, 1]), "n_expr": 100}, "n_shape must be one"),
    ({"n_shape": 2.5, "n_expr": 100}, "n_shape must be one"),
    ({"n_shape": 300, "n_expr": -1}, "n_expr must be one"),
    ({"n_shape": 300}, "given together"),
    ({"kintree_table": np.full((2, 5), 0.5)}, "kintree_table must hold integers"),
    ({"kintree_table": np.zeros((5, 2), np.int64)}, "kintree_table has shape"),
    ({"f": np.full((4, 3), 10**6)}, "vertex indices"),
    ({"f": np.zeros((4, 3))}, "vertex indices"),
    ({"J_regressor": np.array(["a"])}, "J_regressor is not numeric"),
    ({"posedirs": np.zeros(())}, "posedirs has shape ()"),
    ({"v_template": np.zeros((500_000, 3))}, "500000 vertices"),
])
def test_broken_flame_models_give_one_line(tmp_path, changes, needle):
    model = flame_model()
    for key, value in changes.items():
        model[key] = np.full(model[key].shape, value) if np.isscalar(value) and key in model else value
    np.savez(tmp_path / "flame.npz", **model)
    refused(load_flame, tmp_path / "flame.npz", needle)


def test_sparse_matrix_too_large_to_make_dense_is_refused(tmp_path):
    model = flame_model()
    model["J_regressor"] = scipy.sparse.csr_matrix((10**6, 10**6))
    (tmp_path / "flame.pkl").write_bytes(pickle.dumps(model, protocol=2))
    refused(load_flame, tmp_path / "flame.pkl")


# ---- blendshape models and weight sequences -----------------------------------------------------


def weights_file(path, **changes):
    values = {"fps": np.float64(30.0), "speech": np.zeros((5, 2)), "expression": np.zeros((5, 1)),
              "speech_names": np.array(["jaw", "lips"]), "expression_names": np.array(["smile"])}
    values.update(changes)
    np.savez(path, **values)
    return path


@pytest.mark.parametrize("changes, needle", [
    ({"fps": np.float64(1e-6)}, "fps 1e-06 is outside 1..1000"),
    ({"fps": np.float64(0)}, "fps 0 is outside"),
    ({"fps": np.float64(np.nan)}, "fps nan is not a finite number"),
    ({"fps": np.float64(1e9)}, "fps 1e+09 is outside"),
    ({"fps": np.array([30.0, 30.0])}, "fps must be one number"),
    ({"fps": np.array("30")}, "fps must be one number"),
    ({"fps": np.float64(1.0), "speech": np.zeros((100_000, 2)), "expression": np.zeros((100_000, 1))},
     "last longer than 24 hours"),
    ({"speech": np.full((5, 2), 1e39)}, "speech contains NaN"),
    ({"expression": np.full((5, 1), 1e4)}, "expression holds"),
    ({"speech_names": np.array([f"n{i}" for i in range(2000)])}, "2000 names, more than 1000"),
    ({"speech_names": np.array(["jaw", "a\nb"])}, "printable"),
    ({"speech_names": np.array(["jaw", "x" * 500])}, "at most 100"),
    ({"speech_names": np.array([["jaw", "lips"]])}, "1-D string array"),
    ({"speech_names": np.array([b"jaw", b"lips"])}, "dtype |S4 is not allowed"),
    ({"speech_names": np.array(["jaw", ""])}, "non-empty"),
])
def test_broken_weight_sequences_give_one_line(tmp_path, changes, needle):
    path = weights_file(tmp_path / "clip.weights.npz", **changes)
    refused(WeightSequence.load, path, needle)


def test_a_good_weight_sequence_loads(tmp_path):
    loaded = WeightSequence.load(weights_file(tmp_path / "clip.weights.npz"))
    assert loaded.fps == 30.0 and loaded.speech_names == ("jaw", "lips")


def test_absurd_blendshape_models_are_refused(tmp_path):
    with np.load(DEMO_BLENDSHAPES) as demo:
        arrays = dict(demo)
    for key, scale, needle in (("template", 1e38, "template holds"), ("speech_basis", 1e39, "contains NaN"),
                               ("speech_to_flame", 1e30, "speech_to_flame holds")):
        changed = dict(arrays, **{key: np.full(arrays[key].shape, scale)})
        np.savez(tmp_path / "bs.npz", **changed)
        refused(BlendshapeModel.load, tmp_path / "bs.npz", needle)
    np.savez(tmp_path / "bs.npz", **dict(arrays, format_version=np.zeros((40, 40), np.int64)))
    refused(BlendshapeModel.load, tmp_path / "bs.npz", "format_version")


# ---- avatar info --------------------------------------------------------------------------------


def info_error(capsys, path) -> str:
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("avatar: error: ") and str(path) in err, err
    return err


def test_info_gives_one_line_for_every_bad_input(tmp_path, capsys):
    for name in ("pipe.ply", "pipe.npz", "pipe.wav", "pipe.pkl"):
        os.mkfifo(tmp_path / name)
        assert "not a regular file" in info_error(capsys, tmp_path / name)
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    (tmp_path / "dict.pkl").write_bytes(pickle.dumps({"a": np.zeros(3)}))
    np.savez(tmp_path / "unknown.npz", something=np.zeros(3))
    zip_of(tmp_path / "huge.npz", {"fps.npy": npy_bytes((10**12,))})
    (tmp_path / "odd.npz").write_bytes(b"PK\x03\x04 nothing")
    for path in (empty, tmp_path / "list.pkl", tmp_path / "dict.pkl", tmp_path / "unknown.npz",
                 tmp_path / "huge.npz", tmp_path / "odd.npz", tmp_path / "absent.npz"):
        info_error(capsys, path)
    weights_file(tmp_path / "w.weights.npz", fps=np.float64(1e-6))
    assert "fps" in info_error(capsys, tmp_path / "w.weights.npz")
    if os.path.exists("/dev/zero"):
        info_error(capsys, "/dev/zero")


def test_info_describes_models_without_names(tmp_path, capsys):
    with np.load(DEMO_BLENDSHAPES) as demo:
        arrays = dict(demo)
    v = arrays["template"].shape[0]
    arrays.update(speech_names=np.array([], "<U1"), expression_names=np.array([], "<U1"),
                  emotion_names=np.array([], "<U1"), speech_basis=np.zeros((0, v, 3)),
                  expression_basis=np.zeros((0, v, 3)), speech_to_flame=np.zeros((0, 103)),
                  expression_to_flame=np.zeros((0, 103)), emotion_profiles=np.zeros((0, 0)),
                  emotion_speech_profiles=np.zeros((0, 0)),
                  speech_mapping_error=np.zeros(0), expression_mapping_error=np.zeros(0))
    np.savez(tmp_path / "bare.npz", **arrays)
    assert main(["info", str(tmp_path / "bare.npz")]) == 0
    out = capsys.readouterr().out
    assert "speech: (none)" in out and "emotions on the speech blendshapes (largest weight at intensity 1): (none)" in out


def test_info_names_the_emotions_on_the_speech_blendshapes(capsys):
    """The learned model's fear widens the mouth along lips_wide, its surprise opens it."""
    assert main(["info", str(MODEL_DIR / "blendshapes.npz")]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "emotions on the speech blendshapes" in x)
    assert "fearful lips_wide +" in line and "surprised " in line


# ---- data sets ----------------------------------------------------------------------------------


def vocaset(root, verts=None, index=None, templates=None, audio=None):
    verts = np.zeros((6, V, 3), np.float32) if verts is None else verts
    if isinstance(verts, bytes):
        (root / "data_verts.npy").write_bytes(verts)
    else:
        np.save(root / "data_verts.npy", verts)
    tables = {"subj_seq_to_idx.pkl": index or {"FaceTalk_A": {"s": {0: 0, 1: 1}}},
              "templates.pkl": templates or {"FaceTalk_A": np.zeros((V, 3))}}
    if audio is not None:
        tables["raw_audio_fixed.pkl"] = audio
    for name, table in tables.items():
        (root / name).write_bytes(pickle.dumps(table, protocol=2))
    return root


def audio_entry(**changes):
    entry = {"sample_rate": 22000, "audio": np.zeros(100, np.int16)}
    entry.update(changes)
    return {"FaceTalk_A": {"s": entry}}


@pytest.mark.parametrize("make, file, needle", [
    (lambda r: vocaset(r, verts=npy_bytes((10**9, V, 3), "<f4", bytes(100))), "data_verts.npy", "header declares"),
    (lambda r: vocaset(r, verts=npy_bytes((6, V, 3), "|O", bytes(8))), "data_verts.npy", "dtype object"),
    (lambda r: vocaset(r, verts=np.full((6, V, 3), 1e39)), "data_verts.npy", "contains NaN"),
    (lambda r: vocaset(r, templates={"FaceTalk_A": np.full((V, 3), 1e39)}), "templates.pkl", "contains NaN"),
    (lambda r: vocaset(r, templates={"FaceTalk_A": [[1, 2], [3]]}), "templates.pkl", "not an array"),
    (lambda r: vocaset(r, index={"FaceTalk_A": {"s": {0: 0}}, 7: {}}), "subj_seq_to_idx.pkl", "not a name"),
    (lambda r: vocaset(r, index={"FaceTalk_A": {"a\nb": {0: 0}}}), "subj_seq_to_idx.pkl", "not a name"),
    (lambda r: vocaset(r, index={"FaceTalk_A": {"s": {0: 1 << 40}}}), "subj_seq_to_idx.pkl", "points at row"),
    (lambda r: vocaset(r, verts=np.zeros((1, 100_000, 3), np.float32),
                       index={"FaceTalk_A": {"s": dict.fromkeys(range(4000), 0)}},
                       templates={"FaceTalk_A": np.zeros((100_000, 3))}), "subj_seq_to_idx.pkl", "over and over"),
    (lambda r: vocaset(r, audio=audio_entry(sample_rate=10**9)), "raw_audio_fixed.pkl", "sample_rate"),
    (lambda r: vocaset(r, audio=audio_entry(sample_rate=float("nan"))), "raw_audio_fixed.pkl", "sample_rate"),
    (lambda r: vocaset(r, audio=audio_entry(sample_rate="22000")), "raw_audio_fixed.pkl", "sample_rate"),
    (lambda r: vocaset(r, audio=audio_entry(audio=np.full(10, np.nan))), "raw_audio_fixed.pkl", "NaN"),
    (lambda r: vocaset(r, audio=audio_entry(audio=[[1], [2, 3]])), "raw_audio_fixed.pkl", "not an array"),
    (lambda r: vocaset(r, audio=audio_entry(audio=np.zeros((4, 100)))), "raw_audio_fixed.pkl", "100 channels"),
])
def test_broken_vocaset_files_give_one_line(tmp_path, make, file, needle):
    make(tmp_path)
    message = refused(load_vocaset, tmp_path, needle)
    assert message.startswith(str(tmp_path / file)), message


def test_vocaset_vertex_file_may_not_be_a_pipe(tmp_path):
    vocaset(tmp_path)
    (tmp_path / "data_verts.npy").unlink()
    os.mkfifo(tmp_path / "data_verts.npy")
    refused(load_vocaset, tmp_path, "data_verts.npy: not a regular file")


def ply(path, header_vertices, body: bytes, fmt="binary_little_endian"):
    header = (f"ply\nformat {fmt} 1.0\nelement vertex {header_vertices}\n"
              "property float x\nproperty float y\nproperty float z\nend_header\n")
    path.write_bytes(header.encode() + body)


@pytest.mark.parametrize("make, needle", [
    (lambda p: ply(p, 10**15, bytes(12)), "truncated"),
    (lambda p: ply(p, "9" * 5000, bytes(12)), "no valid vertex element"),
    (lambda p: ply(p, 1, struct.pack("<3f", 1.0, float("inf"), 0.0)), "contains NaN"),
    (lambda p: ply(p, 1, b"1e39 0 0\n", "ascii"), "contains NaN"),
    (lambda p: ply(p, 1, b"5e3 0 0\n", "ascii"), "holds 5e+03"),
    (lambda p: ply(p, 2, b"1 2 3\n4 5\n", "ascii"), "not all numbers"),
    (lambda p: p.write_bytes(b"ply\n" + b"comment x\n" * 10_000), "complete header"),
    (lambda p: p.write_bytes(b"ply\nformat ascii 1.0\nelement \x1b[2J 1\nend_header\n"), "'\\x1b[2J'"),
])
def test_broken_florence_frames_give_one_line(tmp_path, make, needle):
    folder = tmp_path / "F001" / "Happy"
    folder.mkdir(parents=True)
    make(folder / "Happy_0.ply")
    message = refused(load_florence, tmp_path, needle)
    assert message.startswith(str(folder / "Happy_0.ply")), message


def test_npy_mesh_sequence_is_read_with_its_header_checked(tmp_path):
    (tmp_path / "clip.npy").write_bytes(npy_bytes((10**6, V, 3), "<f4", bytes(64)))
    refused(lambda p: load_mesh_sequence(p, 30.0), tmp_path / "clip.npy", "header declares")
    np.save(tmp_path / "clip.npy", np.full((2, V, 3), 1e39))
    refused(lambda p: load_mesh_sequence(p, 30.0), tmp_path / "clip.npy", "contains NaN")


# ---- checkpoints --------------------------------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path):
    save_checkpoint(tmp_path, "test", {"width": 2}, torch.nn.Linear(2, 2), training_state={"step": 1})
    return tmp_path


def safetensors_bytes(header: bytes, data: bytes = b"", length=None) -> bytes:
    return struct.pack("<Q", len(header) if length is None else length) + header + data


@pytest.mark.parametrize("payload", [
    safetensors_bytes(b"{}", length=2**63),
    safetensors_bytes(b"{not json"),
    safetensors_bytes(json.dumps({"weight": {"dtype": "Q9", "shape": [2], "data_offsets": [0, 8]}}).encode(),
                      bytes(8)),
    safetensors_bytes(json.dumps({"weight": {"dtype": "F32", "shape": [10**9], "data_offsets": [0, 4 * 10**9]}})
                      .encode(), bytes(8)),
    b"",
])
def test_broken_weights_give_one_line(checkpoint, payload):
    (checkpoint / "model.safetensors").write_bytes(payload)
    refused(lambda d: load_checkpoint(d, "test"), checkpoint, "model.safetensors")


@pytest.mark.parametrize("text, needle", [
    ("[" * 100_000 + "]" * 100_000, "nested"),
    ('{"a": ' * 100 + "1" + "}" * 100, "nested"),
    ('{"format": 1' + "9" * 5000 + "}", "not valid JSON"),
    ("x" * (17 << 20), "too large"),
])
def test_broken_config_gives_one_line(checkpoint, text, needle):
    (checkpoint / "config.json").write_text(text)
    refused(lambda d: load_checkpoint(d, "test"), checkpoint, "config.json", needle)


def test_checkpoint_files_may_not_be_pipes(checkpoint):
    for name in ("training_state.pt", "model.safetensors", "config.json"):
        (checkpoint / name).unlink()
        os.mkfifo(checkpoint / name)
        refused(lambda d: load_checkpoint(d, "test"), checkpoint, name, "not a regular file")


def test_broken_training_state_gives_one_line(checkpoint):
    assert load_checkpoint(checkpoint, "test").training_state == {"step": 1}
    for payload in (b"", b"PK\x03\x04garbage", pickle.dumps(os.system, protocol=2)):
        (checkpoint / "training_state.pt").write_bytes(payload)
        refused(lambda d: load_checkpoint(d, "test"), checkpoint, "training_state.pt")
