"""`avatar render --dataset`: a split in VHAP's published nerf-dataset layout (written here),
rendered frame by frame at each frame's camera and FLAME parameters; each image equals a
single `render --camera` of the same camera and parameters; interruption and bad input."""
import json
import math
import shutil

import imageio.v3 as iio
import numpy as np
import pytest

from assets import DEMO_AVATAR, DEMO_FLAME
from avatar_app.avatar import AvatarSource
from avatar_app.cli import main
from avatar_app.dataset import read_split, render_split
from avatar_app.outputs import MARK
from avatar_app.player import Player

TARGET = np.array([0.0, 0.03, 0.0])  # about the demo head's centre
# camera_index: (yaw degrees, w, h, fl_x, fl_y, cx, cy): non-square, fx ≠ fy, off-centre
CAMERAS = {0: (0.0, 64, 48, 150.0, 140.0, 30.0, 26.0), 1: (25.0, 40, 56, 120.0, 126.0, 21.5, 27.0)}


def c2w_opengl(yaw_degrees: float, distance: float = 1.0) -> np.ndarray:
    """Camera-to-world in OpenGL/Blender axes (x right, y up, z back) looking at TARGET."""
    yaw = math.radians(yaw_degrees)
    eye = TARGET + distance * np.array([math.sin(yaw), 0.0, math.cos(yaw)])
    back = (eye - TARGET) / np.linalg.norm(eye - TARGET)
    right = np.cross([0.0, 1.0, 0.0], back)
    right /= np.linalg.norm(right)
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = right, np.cross(back, right), back, eye
    return matrix


def flame_values(jaw=0.0, rotation=(0.0, 0.0, 0.0), expr0=0.0) -> dict:
    expr = np.zeros((1, 100), np.float32)
    expr[0, 0] = expr0
    return {"expr": expr, "jaw_pose": np.array([[jaw, 0, 0]], np.float32),
            "rotation": np.array([rotation], np.float32), "neck_pose": np.zeros((1, 3), np.float32),
            "eyes_pose": np.zeros((1, 6), np.float32), "translation": np.zeros((1, 3), np.float32)}


# The avatar's own flame_param.npz: three timesteps, all different from the split's files.
AVATAR_ROWS = [flame_values(), flame_values(jaw=0.05), flame_values(jaw=0.1, rotation=(0.0, 0.35, 0.0))]
# VHAP's per-timestep files (flame_param/00000.npz, 00001.npz).
SPLIT_FILES = [flame_values(jaw=0.35), flame_values(rotation=(0.3, 0.0, 0.0), expr0=1.5)]
# (timestep_index, camera_index, has flame_param_path)
FRAMES = [(0, 0, True), (1, 1, True), (2, 0, False)]


def write_avatar(folder):
    folder.mkdir(parents=True)
    shutil.copyfile(DEMO_AVATAR / "point_cloud.ply", folder / "point_cloud.ply")
    demo = np.load(DEMO_AVATAR / "flame_param.npz")
    rows = {key: np.concatenate([row[key] for row in AVATAR_ROWS]) for key in AVATAR_ROWS[0]}
    np.savez(folder / "flame_param.npz", **rows, shape=demo["shape"], static_offset=demo["static_offset"])
    return folder


def write_split(folder, frames=FRAMES, file_paths=None):
    """transforms_test.json and flame_param/ as VHAP's export_as_nerf_dataset writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    demo = np.load(DEMO_AVATAR / "flame_param.npz")
    (folder / "flame_param").mkdir(exist_ok=True)
    for t, values in enumerate(SPLIT_FILES):  # shape and static_offset ride along, as VHAP writes them
        np.savez(folder / "flame_param" / f"{t:05d}.npz", **values, shape=demo["shape"],
                 static_offset=demo["static_offset"])
    entries = []
    for k, (t, c, has_file) in enumerate(frames):
        yaw, w, h, fx, fy, cx, cy = CAMERAS[c]
        entry = {"timestep_index": t, "timestep_index_original": t + 100, "timestep_id": f"frame_{t + 100:05d}",
                 "camera_index": c, "camera_id": f"2210{c}", "cx": cx, "cy": cy, "fl_x": fx, "fl_y": fy, "h": h,
                 "w": w, "camera_angle_x": 2 * math.atan(w / (2 * fx)), "camera_angle_y": 2 * math.atan(h / (2 * fy)),
                 "transform_matrix": c2w_opengl(yaw).tolist(),
                 "file_path": file_paths[k] if file_paths else f"images/{t:05d}_{c:02d}.png",
                 "fg_mask_path": f"fg_masks/{t:05d}_{c:02d}.png"}
        if has_file:
            entry["flame_param_path"] = f"flame_param/{t:05d}.npz"
        entries.append(entry)
    shared = {key: entries[-1][key] for key in ("cx", "cy", "fl_x", "fl_y", "h", "w", "camera_angle_x",
                                                 "camera_angle_y")}
    (folder / "transforms_test.json").write_text(json.dumps(
        {"frames": entries, **shared, "timestep_indices": sorted({t for t, _, _ in frames}),
         "camera_indices": sorted({c for _, c, _ in frames})}, indent=1))
    return folder / "transforms_test.json"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    avatar = write_avatar(root / "avatar")
    transforms = write_split(root / "data")
    for t, values in enumerate(AVATAR_ROWS):  # the avatar's rows as one-frame motion files
        np.savez(root / f"avatar_row_{t}.npz", **values)
    return root, avatar, transforms


def avatar_args(avatar):
    return ["--avatar", str(avatar), "--flame", str(DEMO_FLAME), "--backend", "cpu", "-q"]


def single(tmp_path, avatar, transforms, camera_index, motion, *extra):
    """One frame by `render --camera`: the reference each dataset image must equal."""
    out = tmp_path / f"single_{camera_index}_{motion.stem}_{len(extra)}"
    assert main(["render", *avatar_args(avatar), "--camera", str(transforms), "--camera-index", str(camera_index),
                 "--motion", str(motion), *extra, "-o", str(out)]) == 0
    return iio.imread(out / "frame_00000.png")


@pytest.fixture(scope="module")
def rendered(inputs, tmp_path_factory):
    root, avatar, transforms = inputs
    out = tmp_path_factory.mktemp("out") / "renders"
    assert main(["render", *avatar_args(avatar), "--dataset", str(transforms), "-o", str(out)]) == 0
    return out


def test_every_frame_is_written_under_its_file_path_at_its_cameras_size(rendered):
    names = sorted(p.relative_to(rendered).as_posix() for p in rendered.rglob("*") if p.is_file())
    assert names == [MARK, "images/00000_00.png", "images/00001_01.png", "images/00002_00.png"]
    for t, c, _ in FRAMES:
        image = iio.imread(rendered / "images" / f"{t:05d}_{c:02d}.png")
        assert image.shape == (CAMERAS[c][2], CAMERAS[c][1], 3) and image.dtype == np.uint8


def test_each_frame_equals_a_single_render_at_its_camera_and_parameters(inputs, rendered, tmp_path):
    root, avatar, transforms = inputs
    data = transforms.parent
    references = [single(tmp_path, avatar, transforms, 0, data / "flame_param" / "00000.npz"),
                  single(tmp_path, avatar, transforms, 1, data / "flame_param" / "00001.npz"),
                  single(tmp_path, avatar, transforms, 0, root / "avatar_row_2.npz")]
    for (t, c, _), reference in zip(FRAMES, references):
        np.testing.assert_array_equal(iio.imread(rendered / "images" / f"{t:05d}_{c:02d}.png"), reference)
    # the parameters really differ per frame: the same camera at another timestep is another image
    other = single(tmp_path, avatar, transforms, 0, root / "avatar_row_0.npz")
    for reference in (references[0], references[2]):
        assert np.abs(reference.astype(int) - other).max() > 40 and (reference != other).mean() > 0.02


def test_avatar_parameters_and_size_option(inputs, rendered, tmp_path):
    """--dataset-flame avatar: every frame's timestep_index row of the avatar's own file (as
    GaussianAvatars evaluates); --size scales every camera to one size."""
    root, avatar, transforms = inputs
    out = tmp_path / "renders"
    assert main(["render", *avatar_args(avatar), "--dataset", str(transforms), "--dataset-flame", "avatar",
                 "--size", "32x24", "-o", str(out)]) == 0
    for t, c, _ in FRAMES:
        assert iio.imread(out / "images" / f"{t:05d}_{c:02d}.png").shape == (24, 32, 3)
    reference = single(tmp_path, avatar, transforms, 1, root / "avatar_row_1.npz", "--size", "32x24")
    np.testing.assert_array_equal(iio.imread(out / "images" / "00001_01.png"), reference)


def test_an_interrupted_run_leaves_the_earlier_output_and_no_partial_folder(inputs, rendered, tmp_path):
    root, avatar, transforms = inputs
    out = tmp_path / "renders"
    shutil.copytree(rendered, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    source = AvatarSource(avatar, DEMO_FLAME)
    loaded = source.load()
    player = Player(loaded, backend="cpu")
    split = read_split(transforms, loaded)
    calls = []

    def interrupt():
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        render_split(player, split, out, on_frame=interrupt)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["renders"]      # no temporary folder left


@pytest.mark.parametrize("case", ["missing_flame", "timestep", "no_frames", "parent", "absolute", "same_name",
                                  "yaw", "camera", "mp4"])
def test_bad_input_gets_one_clear_line_and_writes_nothing(inputs, tmp_path, capsys, case):
    root, avatar, transforms = inputs
    data = tmp_path / "data"
    out, extra = tmp_path / "out", []
    frames, paths = list(FRAMES), None
    if case == "missing_flame":
        frames[1] = (5, 1, True)
        needle = "flame_param/00005.npz are missing"
    elif case == "timestep":
        frames[2] = (7, 0, False)
        needle = "timestep_index 7, but the flame_param.npz of the avatar"
    elif case == "parent":
        paths, needle = ["images/a.png", "../b.png", "images/c.png"], "leaves the output folder"
    elif case == "absolute":
        paths, needle = ["images/a.png", str(tmp_path / "b.png"), "images/c.png"], "leaves the output folder"
    elif case == "same_name":
        paths, needle = ["images/a.png", "images/b.png", "images/a.jpg"], "frames 0 and 2 both"
    elif case == "yaw":
        extra, needle = ["--yaw", "10"], "--yaw cannot be combined"
    elif case == "camera":
        extra, needle = ["--camera", str(transforms)], "--camera cannot be combined"
    elif case == "mp4":
        out, needle = tmp_path / "out.mp4", "give a folder"
    split = write_split(data, frames, paths)
    if case == "no_frames":
        split.write_text(json.dumps({"frames": []}))
        needle = "frames must be a non-empty list"
    assert main(["render", *avatar_args(avatar), "--dataset", str(split), *extra, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("avatar: error:") and needle in err[0], err
    assert not out.exists() and not list(tmp_path.glob(".out*"))
