"""The realistic-scale avatar (tests/realistic.py): FLAME 5023/9976 from an official-layout .pkl
with GaussianAvatars' teeth, 100,000 Gaussians at SH degree 3 on every face, a 300-frame tracked
sequence, a dataset camera. It loads, replays its motion at that camera and exports the motion.
Times and memory are measured by benchmarks/realistic_avatar.py, not asserted here."""
import numpy as np
import pytest

from avatar_app.avatar import load_avatar
from avatar_app.cli import main
from avatar_app.clip import ClipSource
from avatar_app.player import Player
from models.rig.flame import FRAME_KEYS, load_flame_params, save_flame_params
from renderer.camera_files import load_camera
from tests.realistic import FLAME_FACES, build_realistic, camera_json


@pytest.fixture(scope="session")
def realistic(tmp_path_factory):
    return build_realistic(tmp_path_factory.mktemp("realistic"))


@pytest.fixture(scope="module")
def player(realistic):
    """The avatar replaying its own tracked sequence at the dataset camera, at the camera's size."""
    player = Player(load_avatar(realistic.folder, realistic.flame), backend="cpu")
    camera = load_camera(realistic.camera)
    player.set_view(camera=camera, width=camera.width, height=camera.height, background=(1.0, 1.0, 1.0))
    player.load_clip(ClipSource(motion=realistic.folder / "flame_param.npz"), 25)
    return player


def test_it_is_real_scale(realistic, player, capsys):
    avatar = player.avatar
    assert avatar.rig.num_vertices == 5143 and avatar.rig.faces.shape == (10144, 3)
    g = avatar.gaussians
    assert len(g) == realistic.gaussians == 100_000 and g.sh_degree == 3
    assert np.array_equal(np.unique(g.binding.numpy()), np.arange(10144))  # every face, the teeth too
    assert avatar.params.num_frames == player.clip.num_frames == 300
    assert main(["info", str(realistic.flame)]) == 0
    said = capsys.readouterr().out
    assert f"vertices: 5023, faces: {FLAME_FACES} (GaussianAvatars adds teeth: 5143 vertices, 10144 faces)" in said
    assert "shape components: 300, expression components: 100, joints: 5" in said
    assert main(["info", str(realistic.folder)]) == 0
    said = capsys.readouterr().out
    assert "Gaussians: 100,000" in said and "SH degree: 3" in said and "(10,144 distinct)" in said
    assert "needs: FLAME with GaussianAvatars teeth" in said and "300 frame(s), with shape and static offset" in said


def projected_box(vertices: np.ndarray) -> np.ndarray:
    """(left, top, right, bottom) pixel box of the vertices through the camera JSON, float64."""
    cam = camera_json()
    w2c, K = np.asarray(cam["world_to_camera"]), np.asarray(cam["K"])
    p = vertices.astype(np.float64) @ w2c[:3, :3].T + w2c[:3, 3]
    uv = (p @ K.T)[:, :2] / p[:, 2:]
    return np.concatenate([uv.min(0), uv.max(0)])


def test_replays_its_motion_at_the_dataset_camera(player):
    """The tracked frames pass through unchanged; the rendered head covers the pixels its posed
    mesh projects to through the JSON's K and world_to_camera, and moves from frame to frame."""
    tracked = np.load(player.avatar.source.replace("point_cloud.ply", "flame_param.npz"))
    params = player.flame_params(0, 300)
    for key in FRAME_KEYS:  # a key the file lacks (eyelids: GaussianAvatars writes none) plays as zeros
        expected = tracked[key] if key in tracked else np.zeros_like(getattr(params, key))
        np.testing.assert_array_equal(getattr(params, key), expected, err_msg=key)
    frames = {}
    for first in (0, 150, 296):
        rendered = list(player.render_range(first, first + 4))
        assert all(f.shape == (550, 802, 3) for f in rendered)
        frames.update(zip(range(first, first + 4), rendered))
    for index in (0, 151, 299):
        mesh = player.rig(player.flame_params(index, index + 1))[0].numpy()
        ys, xs = np.nonzero((frames[index] < 200).any(-1))  # clearly not the white background
        seen = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        assert np.abs(seen - projected_box(mesh)).max() < 8, (index, seen, projected_box(mesh))
    change = np.abs(frames[0].astype(int) - frames[3]).mean(), np.abs(frames[0].astype(int) - frames[299]).mean()
    assert 0 < change[0] < change[1]  # a few frames apart it moved a little, far apart more


def test_exports_its_motion(player, tmp_path):
    """The app's export (save_flame_params of the player's per-frame parameters) writes
    GaussianAvatars' keys; read back they are the tracked sequence, and play the same frames."""
    path = tmp_path / "flame_param.npz"
    save_flame_params(player.flame_params(0, player.clip.num_frames), path)
    back, tracked = load_flame_params(path), player.avatar.params
    for key in FRAME_KEYS:
        np.testing.assert_array_equal(getattr(back, key), getattr(tracked, key), err_msg=key)
    np.testing.assert_array_equal(back.shape, tracked.shape)
    np.testing.assert_array_equal(back.static_offset, tracked.static_offset)
    with np.load(path) as raw:
        assert raw["dynamic_offset"].shape == (300, 5143, 3) and not raw["dynamic_offset"].any()
    twin = player.snapshot()
    twin.load_clip(ClipSource(motion=path), 25)
    assert np.array_equal(twin.render_frame(123), player.render_frame(123))
