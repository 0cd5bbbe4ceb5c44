"""VOCASET and Florence 4D layouts: round trips, hand-made fixtures, and every refusal naming its file."""

import os
import pickle
import struct

import numpy as np
import pytest

from common.errors import InputError
from models.audio.sources import Audio
from models.learning.datasets import (
    VOCASET_SPLITS,
    MeshSequence,
    florence_emotion,
    load_florence,
    load_mesh_sequence,
    load_vocaset,
    write_florence,
    write_vocaset,
)

V = 20
SUBJECTS = ("FaceTalk_A", "FaceTalk_B")
SENTENCES = ("sentence01", "sentence02")


def talking_sequences(fps=60.0, frames=6, seed=0):
    """2 subjects × 2 sentences; audio on sentence01 only; one emotional sequence."""
    rng = np.random.default_rng(seed)
    sequences = []
    for s, subject in enumerate(SUBJECTS):
        template = rng.normal(size=(V, 3)).astype(np.float32)
        for k, sentence in enumerate(SENTENCES):
            vertices = template + 0.01 * rng.normal(size=(frames, V, 3)).astype(np.float32)
            audio = Audio(rng.uniform(-0.5, 0.5, 800).astype(np.float32), 16000) if k == 0 else None
            emotion, intensity = ("sad", 0.25) if (s, k) == (1, 1) else (None, 1.0)
            sequences.append(MeshSequence(f"{subject}/{sentence}", vertices, template, fps, audio,
                                          emotion, intensity))
    return sequences


def hand_vocaset(root, verts, index, templates, audio=None):
    """The published layout written directly (Python-2-era pickle protocol), not by write_vocaset."""
    np.save(root / "data_verts.npy", np.asarray(verts))
    tables = {"subj_seq_to_idx.pkl": index, "templates.pkl": templates}
    if audio is not None:
        tables["raw_audio_fixed.pkl"] = audio
    for name, table in tables.items():
        (root / name).write_bytes(pickle.dumps(table, protocol=2))


def small_vocaset(root):
    """Subject A, one sentence of 6 frames stored in scrambled rows; row r has x = r everywhere."""
    verts = np.zeros((6, V, 3), np.float32)
    verts[:, :, 0] = np.arange(6)[:, None]
    index = {"FaceTalk_A": {"sentence01": {3: 0, 0: 5, 5: 2, 1: 3, 4: 1, 2: 4}}}
    audio = {"FaceTalk_A": {"sentence01": {"sample_rate": 22000,
                                           "audio": np.array([0, 16384, -32768, 32767], np.int16)}}}
    hand_vocaset(root, verts, index, {"FaceTalk_A": np.zeros((V, 3))}, audio)
    return index, audio


def test_vocaset_round_trip_keeps_everything(tmp_path):
    sequences = talking_sequences()
    write_vocaset(tmp_path, sequences)
    loaded = load_vocaset(tmp_path, stride=1)
    assert [seq.name for seq in loaded] == [seq.name for seq in sequences]
    for got, want in zip(loaded, sequences):
        np.testing.assert_array_equal(got.vertices, want.vertices)
        np.testing.assert_array_equal(got.template, want.template)
        np.testing.assert_allclose(got.displacements, want.vertices - want.template[None], atol=1e-6)
        assert got.fps == 60.0 and (got.emotion, got.intensity) == (want.emotion, want.intensity)
        if want.audio is None:
            assert got.audio is None
        else:
            assert got.audio.sample_rate == 16000
            np.testing.assert_array_equal(got.audio.samples, want.audio.samples)


@pytest.mark.parametrize("stride", [2, 3])
def test_vocaset_stride_takes_every_nth_frame(tmp_path, stride):
    sequences = talking_sequences()
    write_vocaset(tmp_path, sequences)
    loaded = load_vocaset(tmp_path, subjects=["FaceTalk_B"], stride=stride)
    assert [seq.name for seq in loaded] == ["FaceTalk_B/sentence01", "FaceTalk_B/sentence02"]
    for got, want in zip(loaded, sequences[2:]):
        assert got.fps == 60.0 / stride
        np.testing.assert_array_equal(got.vertices, want.vertices[::stride])


def test_vocaset_at_30_fps_holds_each_frame_for_two_frame_numbers(tmp_path):
    sequences = talking_sequences(fps=30.0)
    write_vocaset(tmp_path, sequences, fps=30.0)
    index = pickle.loads((tmp_path / "subj_seq_to_idx.pkl").read_bytes())
    assert index["FaceTalk_A"]["sentence02"] == {n: 6 + n // 2 for n in range(12)}
    for got, want in zip(load_vocaset(tmp_path, stride=2), sequences):
        assert got.fps == 30.0
        np.testing.assert_array_equal(got.vertices, want.vertices)
    at_60 = load_vocaset(tmp_path, stride=1)[0]
    assert at_60.fps == 60.0
    np.testing.assert_array_equal(at_60.vertices, np.repeat(sequences[0].vertices, 2, axis=0))
    with pytest.raises(InputError, match="25.0 fps is not 60 divided by a whole number"):
        write_vocaset(tmp_path, talking_sequences(fps=25.0), fps=25.0)


def test_vocaset_frames_follow_frame_numbers_and_int16_audio(tmp_path):
    small_vocaset(tmp_path)
    (seq,) = load_vocaset(tmp_path, stride=2)
    # frame numbers 0, 2, 4 sit in rows 5, 4, 1
    np.testing.assert_array_equal(seq.vertices[:, 0, 0], [5, 4, 1])
    assert seq.vertices.dtype == np.float32 and seq.vertices.shape == (3, V, 3)
    assert seq.audio.sample_rate == 22000
    np.testing.assert_array_equal(seq.audio.samples, [0.0, 0.5, -1.0, 32767 / 32768])
    assert seq.emotion is None and seq.intensity == 1.0


def test_vocaset_audio_is_optional(tmp_path):
    index, _ = small_vocaset(tmp_path)
    (tmp_path / "raw_audio_fixed.pkl").write_bytes(pickle.dumps({"FaceTalk_A": {}}))
    assert load_vocaset(tmp_path)[0].audio is None
    os.remove(tmp_path / "raw_audio_fixed.pkl")
    assert load_vocaset(tmp_path)[0].audio is None


def test_vocaset_splits_are_the_standard_twelve_speakers():
    assert [len(VOCASET_SPLITS[k]) for k in ("train", "val", "test")] == [8, 2, 2]
    everyone = [name for names in VOCASET_SPLITS.values() for name in names]
    assert len(set(everyone)) == 12 and all(name.startswith("FaceTalk_17") for name in everyone)
    assert set(VOCASET_SPLITS["val"]) == {"FaceTalk_170811_03275_TA", "FaceTalk_170908_03277_TA"}
    assert set(VOCASET_SPLITS["test"]) == {"FaceTalk_170809_00138_TA", "FaceTalk_170731_00024_TA"}


def test_labels_csv_marks_emotional_sequences(tmp_path):
    write_vocaset(tmp_path, talking_sequences())
    (tmp_path / "labels.csv").write_text(
        "subject,sentence,emotion,intensity\n"
        "FaceTalk_A,sentence01,Happy,0.5\n"
        "FaceTalk_A,sentence02,,\n"
        "FaceTalk_B,sentence02,angry,\n"
    )
    labels = {seq.name: (seq.emotion, seq.intensity) for seq in load_vocaset(tmp_path)}
    assert labels == {
        "FaceTalk_A/sentence01": ("happy", 0.5),
        "FaceTalk_A/sentence02": (None, 1.0),
        "FaceTalk_B/sentence01": (None, 1.0),
        "FaceTalk_B/sentence02": ("angry", 1.0),
    }
    assert all(seq.emotion is None for seq in load_vocaset(tmp_path, labels=False))


@pytest.mark.parametrize("text, problem", [
    ("subject,sentence,emotion,intensity\nFaceTalk_A,sentence01,happy,0.5\nFaceTalk_A,sentence02,sad,lots\n",
     r"labels\.csv line 3: intensity 'lots' is not a number"),
    ("subject,sentence,emotion,intensity\nFaceTalk_A,sentence01,happy,1.5\n", r"labels\.csv line 2: .*outside"),
    ("subject,sentence,emotion,intensity\nFaceTalk_A,sentence09,happy,1\n", r"labels\.csv line 2: .*sentence09"),
    ("subject,sentence,emotion,intensity\nFaceTalk_A,sentence01,happy\n", r"labels\.csv line 2: .*fewer"),
    ("subject,sentence,emotion,intensity\nFaceTalk_B,sentence01,happy,1\nFaceTalk_B,sentence01,sad,1\n",
     r"labels\.csv line 3: .*twice"),
    ("subject,sentence,mood\nFaceTalk_A,sentence01,happy\n", r"labels\.csv: missing column.*emotion"),
])
def test_bad_labels_rows_are_refused_with_their_line(tmp_path, text, problem):
    write_vocaset(tmp_path, talking_sequences())
    (tmp_path / "labels.csv").write_text(text)
    with pytest.raises(InputError, match=problem):
        load_vocaset(tmp_path)


def _drop_template(root):
    hand_vocaset(root, np.zeros((6, V, 3)), {"FaceTalk_A": {"s": {0: 0}}, "FaceTalk_B": {"s": {0: 1}}},
                 {"FaceTalk_A": np.zeros((V, 3))})


def _row_out_of_range(root):
    hand_vocaset(root, np.zeros((6, V, 3)), {"FaceTalk_A": {"s": {0: 0, 1: 99}}}, {"FaceTalk_A": np.zeros((V, 3))})


def _template_vertex_count(root):
    hand_vocaset(root, np.zeros((6, V, 3)), {"FaceTalk_A": {"s": {0: 0}}}, {"FaceTalk_A": np.zeros((V + 1, 3))})


def _bad_audio_entry(root):
    hand_vocaset(root, np.zeros((6, V, 3)), {"FaceTalk_A": {"s": {0: 0}}}, {"FaceTalk_A": np.zeros((V, 3))},
                 {"FaceTalk_A": {"s": np.zeros(10)}})


def _verts_not_meshes(root):
    hand_vocaset(root, np.zeros((6, V)), {"FaceTalk_A": {"s": {0: 0}}}, {"FaceTalk_A": np.zeros((V, 3))})


def _no_verts(root):
    _row_out_of_range(root)
    os.remove(root / "data_verts.npy")


def _index_not_nested(root):
    hand_vocaset(root, np.zeros((6, V, 3)), {"FaceTalk_A": [0, 1]}, {"FaceTalk_A": np.zeros((V, 3))})


@pytest.mark.parametrize("make, problem", [
    (_drop_template, r"templates\.pkl: has no template for subject FaceTalk_B"),
    (_row_out_of_range, r"subj_seq_to_idx\.pkl: FaceTalk_A/s points at row 99.*data_verts\.npy holds 6"),
    (_template_vertex_count, r"templates\.pkl: template of FaceTalk_A has shape \(21, 3\).*20 vertices"),
    (_bad_audio_entry, r"raw_audio_fixed\.pkl: FaceTalk_A/s is not a dict"),
    (_verts_not_meshes, r"data_verts\.npy: expected numeric \(frames, V, 3\)"),
    (_no_verts, r"data_verts\.npy: file does not exist"),
    (_index_not_nested, r"subj_seq_to_idx\.pkl \['FaceTalk_A'\]: expected a dict"),
])
def test_broken_vocaset_is_refused_naming_the_file(tmp_path, make, problem):
    make(tmp_path)
    with pytest.raises(InputError, match=problem):
        load_vocaset(tmp_path)


def test_unknown_subject_is_refused(tmp_path):
    write_vocaset(tmp_path, talking_sequences())
    with pytest.raises(InputError, match=r"subj_seq_to_idx\.pkl: has no subject 'FaceTalk_C'"):
        load_vocaset(tmp_path, subjects=["FaceTalk_A", "FaceTalk_C"])


class _RunsCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_pickle_that_would_run_code_is_refused(tmp_path):
    small_vocaset(tmp_path)
    marker = tmp_path / "ran"
    (tmp_path / "templates.pkl").write_bytes(pickle.dumps({"FaceTalk_A": _RunsCommand(f"touch '{marker}'")}))
    with pytest.raises(InputError, match=r"templates\.pkl: refuses to load .*system"):
        load_vocaset(tmp_path)
    assert not marker.exists()


def test_write_vocaset_refuses_other_frame_rates_and_two_templates(tmp_path):
    with pytest.raises(InputError, match="FaceTalk_A/sentence01: is at 30.0 fps"):
        write_vocaset(tmp_path, talking_sequences(fps=30.0))
    sequences = talking_sequences()
    sequences[1].template = sequences[1].template + 1.0
    with pytest.raises(InputError, match="FaceTalk_A/sentence02: template differs"):
        write_vocaset(tmp_path, sequences)


# ------------------------------------------------------------------------------------- Florence 4D


def ascii_ply(path, rows, header_props, faces=()):
    """A PLY written by hand: given vertex property declarations and rows, plus optional faces."""
    lines = ["ply", "format ascii 1.0", "comment hand-made", f"element vertex {len(rows)}"]
    lines += [f"property {p}" for p in header_props]
    lines += [f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header"]
    lines += [" ".join(str(v) for v in row) for row in rows]
    lines += [" ".join(str(v) for v in (len(face), *face)) for face in faces]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def test_florence_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    faces = np.array([[0, 1, 2], [2, 3, 4]])
    sequences = []
    for name, frames in (("F002/Moody", 3), ("F001/Smile", 12), ("F001/Afraid2", 4)):
        vertices = rng.normal(size=(frames, V, 3)).astype(np.float32)
        sequences.append(MeshSequence(name, vertices, vertices[0], 30.0))
    write_florence(tmp_path, sequences, faces)
    assert (tmp_path / "F001" / "Smile" / "Smile_11.ply").is_file()
    write_florence(tmp_path / "points", sequences[:1], None)
    np.testing.assert_array_equal(load_florence(tmp_path / "points")[0].vertices, sequences[0].vertices)
    loaded = load_florence(tmp_path, fps=25.0)
    assert [seq.name for seq in loaded] == ["F001/Afraid2", "F001/Smile", "F002/Moody"]
    assert [seq.emotion for seq in loaded] == ["fearful", "happy", "moody"]
    for got, want in zip(loaded, [sequences[2], sequences[1], sequences[0]]):
        np.testing.assert_array_equal(got.vertices, want.vertices)
        np.testing.assert_array_equal(got.template, want.vertices[0])
        assert got.fps == 25.0 and got.audio is None and got.intensity == 1.0


def test_florence_frames_sort_numerically(tmp_path):
    for frame in range(1, 13):
        ascii_ply(tmp_path / "F003" / "Sad1" / f"Sad1_{frame}.ply",
                  [(frame, 0, 0), (0, frame, 0), (0, 0, frame)], ["float x", "float y", "float z"])
    (tmp_path / "F003" / "notes.txt").write_text("not a sequence")
    (seq,) = load_florence(tmp_path)
    assert seq.name == "F003/Sad1" and seq.emotion == "sad"
    np.testing.assert_array_equal(seq.vertices[:, 0, 0], np.arange(1, 13))
    np.testing.assert_array_equal(seq.template, [[1, 0, 0], [0, 1, 0], [0, 0, 1]])


def test_ascii_ply_with_extra_vertex_properties(tmp_path):
    rows = [(255, 0.1, 3.5, 1.5, 7, 2.5), (0, -0.2, -3.25, 10, -1, 20.125), (9, 0, 0, 0, 0, 0)]
    props = ["uchar red", "float nx", "double z", "float x", "int flags", "float y"]
    ascii_ply(tmp_path / "seq" / "frame_0.ply", rows, props, faces=[(0, 1, 2)])
    seq = load_mesh_sequence(tmp_path / "seq", fps=30.0)
    np.testing.assert_array_equal(seq.vertices[0], [[1.5, 2.5, 3.5], [10, 20.125, -3.25], [0, 0, 0]])
    assert seq.name == "seq"


@pytest.mark.parametrize("endian, fmt", [("<", "binary_little_endian"), (">", "binary_big_endian")])
def test_binary_ply_with_extra_vertex_properties(tmp_path, endian, fmt):
    points = [(1.25, -2.0, 3.0), (4.0, 5.5, -6.75)]
    header = (f"ply\nformat {fmt} 1.0\nelement vertex 2\nproperty double x\nproperty uchar red\n"
              "property float y\nproperty short s\nproperty float z\n"
              "element face 1\nproperty list uchar int vertex_indices\nend_header\n").encode()
    body = b"".join(struct.pack(endian + "dBfhf", x, 200, y, -5, z) for x, y, z in points)
    body += struct.pack(endian + "Biii", 3, 0, 1, 1)
    (tmp_path / "m").mkdir()
    for frame in (2, 10):
        (tmp_path / "m" / f"m{frame}.ply").write_bytes(header + body)
    seq = load_mesh_sequence(tmp_path / "m", fps=10.0)
    assert seq.vertices.shape == (2, 2, 3)
    np.testing.assert_array_equal(seq.vertices[1], points)


def _truncated(folder):
    (folder / "a_0.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 3\n"
                                     b"property float x\nproperty float y\nproperty float z\nend_header\n"
                                     + bytes(20))


def _no_z(folder):
    ascii_ply(folder / "a_0.ply", [(1, 2)], ["float x", "float y"])


def _not_ply(folder):
    (folder / "a_0.ply").write_bytes(b"solid mesh\nfacet normal 0 0 1\n")


def _vertex_counts_differ(folder):
    ascii_ply(folder / "a_0.ply", [(1, 2, 3)] * 3, ["float x", "float y", "float z"])
    ascii_ply(folder / "a_1.ply", [(1, 2, 3)] * 2, ["float x", "float y", "float z"])


def _two_frame_zeros(folder):
    ascii_ply(folder / "a_0.ply", [(1, 2, 3)], ["float x", "float y", "float z"])
    ascii_ply(folder / "a_00.ply", [(1, 2, 3)], ["float x", "float y", "float z"])


def _ascii_garbage(folder):
    ascii_ply(folder / "a_0.ply", [(1, "two", 3)], ["float x", "float y", "float z"])


@pytest.mark.parametrize("make, problem", [
    (_truncated, r"a_0\.ply: truncated"),
    (_no_z, r"a_0\.ply: vertex element lacks x, y or z"),
    (_not_ply, r"a_0\.ply: not a PLY file"),
    (_vertex_counts_differ, r"a_1\.ply: has 2 vertices, but a_0\.ply has 3"),
    (_two_frame_zeros, r"a_0+\.ply: frame 0 is also a_0+\.ply"),
    (_ascii_garbage, r"a_0\.ply: vertex values are not all numbers"),
])
def test_broken_ply_frames_are_refused_naming_the_file(tmp_path, make, problem):
    folder = tmp_path / "F001" / "Angry"
    folder.mkdir(parents=True)
    make(folder)
    with pytest.raises(InputError, match=problem):
        load_florence(tmp_path)


def test_florence_sequences_must_share_a_vertex_count(tmp_path):
    ascii_ply(tmp_path / "F001" / "Angry" / "Angry_0.ply", [(0, 0, 0)] * 3, ["float x", "float y", "float z"])
    ascii_ply(tmp_path / "F002" / "Angry" / "Angry_0.ply", [(0, 0, 0)] * 4, ["float x", "float y", "float z"])
    with pytest.raises(InputError, match=r"F002/Angry: meshes have 4 vertices, but F001/Angry has 3"):
        load_florence(tmp_path)


def test_write_florence_will_not_mix_with_stale_frames(tmp_path):
    long = MeshSequence("F001/Smile", np.zeros((3, V, 3)), np.zeros((V, 3)), 30.0)
    short = MeshSequence("F001/Smile", np.ones((2, V, 3)), np.ones((V, 3)), 30.0)
    write_florence(tmp_path, [long], np.zeros((0, 3), np.int64))
    with pytest.raises(InputError, match=r"Smile: already holds other frames \(Smile_2\.ply"):
        write_florence(tmp_path, [short], np.zeros((0, 3), np.int64))


@pytest.mark.parametrize("folder, emotion", [
    ("Smile", "happy"), ("Smile2", "happy"), ("Pleased", "happy"), ("Sad1", "sad"), ("Afraid", "fearful"),
    ("Disgust", "disgusted"), ("Angry", "angry"), ("Surprise", "surprised"), ("Contempt", "contempt"),
    ("Neutral", None), ("Moody", "moody"), ("Drunk2", "drunk2"),
])
def test_florence_emotion_table(folder, emotion):
    assert florence_emotion(folder) == emotion


def test_npy_mesh_sequence_and_its_template(tmp_path):
    vertices = np.arange(4 * V * 3, dtype=np.float64).reshape(4, V, 3)
    np.save(tmp_path / "clip.npy", vertices)
    seq = load_mesh_sequence(tmp_path / "clip.npy", fps=30.0)
    assert seq.name == "clip" and seq.fps == 30.0 and seq.vertices.dtype == np.float32
    np.testing.assert_array_equal(seq.template, vertices[0])
    np.testing.assert_array_equal(seq.displacements[2], vertices[2] - vertices[0])
    neutral = np.full((V, 3), 0.5)
    np.testing.assert_array_equal(load_mesh_sequence(tmp_path / "clip.npy", 30.0, neutral).template, neutral)
    with pytest.raises(InputError, match=r"clip\.npy: template shape \(3, 3\)"):
        load_mesh_sequence(tmp_path / "clip.npy", 30.0, np.zeros((3, 3)))
    with pytest.raises(InputError, match=r"missing\.npy: does not exist"):
        load_mesh_sequence(tmp_path / "missing.npy", 30.0)
