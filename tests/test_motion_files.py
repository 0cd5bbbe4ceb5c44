"""Motion from other trackers (issue 14, item 4): VHAP's per-frame flame_param/ folder and its
tracked_flame_params*.npz, written here in the layouts VHAP publishes (vhap/export_as_nerf_dataset.py
`write_flame_param`, vhap/model/tracker.py `save_result`), played in timestep order."""
import random

import numpy as np
import pytest

from avatar_app.cli import main
from avatar_app.clip import ClipSource
from avatar_app.info import file_kind
from models.rig import motion_files
from models.rig.flame import FRAME_KEYS, FlameParams, save_flame_params
from models.rig.motion_files import load_motion

V = 5143  # FLAME with GaussianAvatars' teeth, as VHAP tracks it
KEYS = ("translation", "rotation", "neck_pose", "jaw_pose", "eyes_pose", "expr")


def tracked(frames: int, seed: int = 0, expr_columns: int = 100) -> dict[str, np.ndarray]:
    """Every frame's rows as VHAP's tracker holds them: (T, width), float32, small motions."""
    rng = np.random.default_rng(seed)
    widths = {**FRAME_KEYS, "expr": expr_columns}
    rows = {key: rng.normal(scale=0.05, size=(frames, widths[key])).astype(np.float32) for key in KEYS}
    rows["jaw_pose"][:, 0] = np.abs(rows["jaw_pose"][:, 0]) + 0.1 * np.arange(frames) / frames  # opens over time
    rows["translation"] *= 0.1
    return rows


def write_vhap_folder(folder, rows, names, one_dimensional=False):
    """flame_param/<name>.npz as export_as_nerf_dataset writes them: that frame's rows (1, width)
    (`params[key][[tid]]`), the avatar's shape and static offset, and its dynamic offset row.
    Written in random order, so the directory's own order says nothing."""
    folder.mkdir()
    order = list(range(len(names)))
    random.Random(1).shuffle(order)
    zero_offset = np.zeros((1, V, 3), np.float32)
    for t in order:
        frame = {key: value[t] if one_dimensional else value[[t]] for key, value in rows.items()}
        np.savez(folder / names[t], **frame, shape=np.zeros(300, np.float32), static_offset=zero_offset,
                 dynamic_offset=zero_offset)
    return folder


def as_params(rows) -> FlameParams:
    return FlameParams(**{key: np.pad(value, ((0, 0), (0, FRAME_KEYS[key] - value.shape[1])))
                          for key, value in rows.items()})


def assert_same_frames(loaded: FlameParams, expected: FlameParams):
    for key in FRAME_KEYS:
        np.testing.assert_array_equal(getattr(loaded, key), getattr(expected, key), err_msg=key)


@pytest.mark.parametrize("names", [
    [f"{t}.npz" for t in range(12)],                          # lexically 0, 1, 10, 11, 2, ...
    [f"{t:05d}.npz" for t in range(99_996, 100_004)],        # VHAP's names past 99999: 100000 < 99996 as text
    [f"frame_{t:03d}.NPZ" for t in range(5)],
])
def test_a_vhap_folder_plays_in_timestep_order(tmp_path, names):
    rows = tracked(len(names))
    folder = write_vhap_folder(tmp_path / "flame_param", rows, names)
    motion = load_motion(folder)
    assert motion.num_frames == len(names) and motion.shape is None and motion.static_offset is None
    assert_same_frames(motion, as_params(rows))


def test_fewer_expression_columns_and_flat_rows_are_padded(tmp_path):
    rows = tracked(4, seed=2, expr_columns=50)  # EMOTE-style 50 expression coefficients
    folder = write_vhap_folder(tmp_path / "flame_param", rows, [f"{t:05d}.npz" for t in range(4)], one_dimensional=True)
    motion = load_motion(folder)
    np.testing.assert_array_equal(motion.expr[:, :50], rows["expr"])
    assert motion.expr.shape == (4, 100) and not motion.expr[:, 50:].any()


def test_the_tracker_output_reads_as_its_rows(tmp_path, capsys):
    rows = tracked(6, seed=3)
    path = tmp_path / "tracked_flame_params_30.npz"
    np.savez(path, **rows, shape=np.zeros(300, np.float32), timestep_id=np.array([f"{t:05d}" for t in range(6)]),
             n_processed_frames=np.int64(6), focal_length=np.array([2.1], np.float32),
             tex=np.zeros((1, 140), np.float32), lights=np.zeros((1, 9, 3), np.float32),
             static_offset=np.zeros((1, V, 3), np.float32), dynamic_offset=np.zeros((6, V, 3), np.float32),
             image_size=np.array([512, 512]))
    assert_same_frames(load_motion(path), as_params(rows))
    assert main(["info", str(path)]) == 0
    assert "VHAP tracking result" in capsys.readouterr().out


def render(tmp_path, motion, name):
    out = tmp_path / name
    assert main(["render", "--demo", "--driver", "signal", "--motion", str(motion), "--size", "48x48", "-q",
                 "--backend", "cpu", "-o", str(out)]) == 0
    return [p.read_bytes() for p in sorted(out.glob("frame_*.png"))]


def test_a_folder_renders_as_the_same_motion_in_one_file(tmp_path, capsys):
    rows = tracked(5, seed=4)
    rows["expr"] *= 20  # big enough to show in 48x48 pixels
    folder = write_vhap_folder(tmp_path / "flame_param", rows, [f"{t}.npz" for t in (0, 1, 2, 10, 11)])
    save_flame_params(as_params(rows), tmp_path / "motion.npz")
    from_folder = render(tmp_path, folder, "a")
    assert len(from_folder) == 5 and from_folder == render(tmp_path, tmp_path / "motion.npz", "b")
    assert len(set(from_folder)) > 1  # the frames differ, so their order was tested
    clip = ClipSource(motion=folder, start=0.1).build(None, None, fps=10)  # a segment, as of a file
    np.testing.assert_array_equal(clip.motion.jaw_pose, rows["jaw_pose"][1:])
    assert file_kind(folder) == "motion"  # what the app opens a dropped folder as
    capsys.readouterr()
    assert main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "FLAME motion folder" in out and "5 frame(s)" in out


def bad_folder(tmp_path, case):
    """A flame_param/ folder with one problem; returns it and the name its error must contain."""
    rows = tracked(4, seed=5)
    if case == "empty":
        (tmp_path / "flame_param").mkdir()
        return tmp_path / "flame_param", "flame_param: the folder is empty"
    folder = write_vhap_folder(tmp_path / "flame_param", rows, [f"{t:05d}.npz" for t in range(4)])
    if case == "text file":
        (folder / "notes.txt").write_text("tracked with VHAP")
        return folder, "notes.txt: not an .npz file"
    if case == "subfolder":
        (folder / "more.npz").mkdir()
        return folder, "more.npz: not an .npz file"
    if case == "mismatching shapes":
        np.savez(folder / "00002.npz", **{key: value[[2]] for key, value in rows.items()} | {"expr": rows["expr"][[2], :50]})
        return folder, "00002.npz: expr has shape (1, 50), but 00000.npz has (1, 100)"
    if case == "missing key":
        np.savez(folder / "00003.npz", **{key: value[[3]] for key, value in rows.items() if key != "jaw_pose"})
        return folder, "00003.npz: has no jaw_pose"
    if case == "two rows":
        np.savez(folder / "00000.npz", **{key: value[:2] for key, value in rows.items()})
        return folder, "00000.npz: expr has shape (2, 100); a per-frame file holds one row"
    if case == "same number":
        np.savez(folder / "1.npz", **{key: value[[1]] for key, value in rows.items()})
        return folder, "are both frame 1"
    if case == "no number":
        np.savez(folder / "last.npz", **{key: value[[1]] for key, value in rows.items()})
        return folder, "last.npz: no frame number"
    if case == "not npz":
        (folder / "00004.npz").write_bytes(b"not a zip")
        return folder, "00004.npz: not a readable .npz"
    if case == "too many":
        return folder, "flame_param: holds more than 3 files"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["empty", "text file", "subfolder", "mismatching shapes", "missing key", "two rows",
                                  "same number", "no number", "not npz", "too many"])
def test_a_bad_folder_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch, case):
    folder, needle = bad_folder(tmp_path, case)
    if case == "too many":
        monkeypatch.setattr(motion_files, "MAX_MOTION_FILES", 3)
    out = tmp_path / "out.mp4"
    assert main(["render", "--demo", "--motion", str(folder), "--size", "32x32", "-q", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("avatar: error: ") and err.count("\n") == 1 and needle in err, err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert main(["info", str(folder)]) == 2  # an empty folder: one line naming it and what info describes
    assert (needle if case != "empty" else "flame_param") in capsys.readouterr().err


def test_a_design_takes_a_motion_folder_and_a_rerun_sees_its_files_change(tmp_path, capsys):
    rows = tracked(3, seed=6)
    folder = write_vhap_folder(tmp_path / "flame_param", rows, ["0.npz", "1.npz", "2.npz"])
    (tmp_path / "design.csv").write_text("# size: 32x32\n# driver: signal\nid,motion\nvhap,flame_param\n")
    make = ["stimuli", str(tmp_path / "design.csv"), "-o", str(tmp_path / "out"), "-q", "--backend", "cpu"]
    assert main(make) == 0 and main(make) == 0
    assert "0 made, 1 skipped" in capsys.readouterr().out
    np.savez(folder / "1.npz", **{key: value[[2]] for key, value in rows.items()})  # one frame changed
    assert main(make) == 0
    assert "1 made, 0 skipped" in capsys.readouterr().out
