"""Cameras from files: GaussianAvatars/VHAP/NeRF transforms*.json and single-camera JSON, written
by the tests from the published layouts; the render at such a camera against an independent
float64 brute force (binding from GaussianAvatars' formulas, no code of ours); bad input."""
import json
import math
import struct
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from avatar_app.avatar import load_avatar
from avatar_app.cli import main
from avatar_app.player import Player
from common.errors import InputError
from renderer.camera import Camera
from renderer.camera_files import camera_indices, load_camera, read_transforms, scaled_camera
from renderer.gaussians import GaussianSet, rgb_to_sh0
from renderer.ply import write_ply
from tests.reference import brute_force
from tests.test_flame import model_dict

WIDTH, HEIGHT = 72, 48                # non-square
FX, FY, CX, CY = 118.0, 96.0, 41.3, 20.6  # fx ≠ fy, principal point off the centre (36, 24)


def look(eye, target, roll_deg=0.0) -> np.ndarray:
    """OpenCV world→camera (x right, y down, z forward) at `eye` looking at `target`, world +y
    up, rolled about the optical axis; float64."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = Rotation.from_rotvec(np.radians(roll_deg) * np.array([0, 0, 1.0])).as_matrix() @ np.stack([right, down, forward])
    w2c = np.eye(4)
    w2c[:3, :3], w2c[:3, 3] = R, -R @ eye
    return w2c


def opengl_c2w(w2c: np.ndarray) -> np.ndarray:
    """NeRF/Blender `transform_matrix`: camera-to-world with camera y up and z back."""
    c2w = np.linalg.inv(w2c)
    c2w[:3, 1:3] *= -1
    return c2w


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def camera_json(path: Path, w2c, K=((FX, 0, CX), (0, FY, CY), (0, 0, 1)), width=WIDTH, height=HEIGHT, **extra) -> Path:
    return write_json(path, {"width": width, "height": height, "K": [list(r) for r in K],
                             "world_to_camera": np.asarray(w2c).tolist(), "distortion": [0, 0, 0, 0], **extra})


def vhap_frame(w2c, camera_index, timestep_index, **intrinsics) -> dict:
    """A frame as VHAP's export_as_nerf_dataset writes it (intrinsics per frame)."""
    return {"timestep_index": timestep_index, "timestep_index_original": timestep_index,
            "timestep_id": f"frame_{timestep_index:05d}", "camera_index": camera_index, "camera_id": f"{220700190 + camera_index}",
            **intrinsics, "transform_matrix": opengl_c2w(w2c).tolist(),
            "file_path": f"images/{timestep_index:05d}_{camera_index:02d}.png",
            "fg_mask_path": f"fg_masks/{timestep_index:05d}_{camera_index:02d}.png",
            "flame_param_path": f"flame_param/{timestep_index:05d}.npz"}


POSES = {0: look([0.0, 0.05, 0.6], [0, 0, 0]), 3: look([0.3, -0.1, 0.5], [0.01, 0.02, 0], roll_deg=7.0),
         8: look([-0.5, 0.2, 0.2], [0, 0, 0.02], roll_deg=-4.0)}


def transforms(path: Path, frames: list[dict], **top) -> Path:
    return write_json(path, {**top, "frames": frames})


def vhap_transforms(path: Path) -> Path:
    intrinsics = {"cx": CX, "cy": CY, "fl_x": FX, "fl_y": FY, "w": WIDTH, "h": HEIGHT,
                  "camera_angle_x": 2 * math.atan(WIDTH / (2 * FX)), "camera_angle_y": 2 * math.atan(HEIGHT / (2 * FY))}
    frames = [vhap_frame(POSES[c], c, t, **intrinsics) for t in range(2) for c in POSES]
    return transforms(path, frames, **intrinsics, timestep_indices=[0, 1], camera_indices=sorted(POSES))


def assert_camera(camera: Camera, w2c, fx=FX, fy=FY, cx=CX, cy=CY, width=WIDTH, height=HEIGHT) -> None:
    assert (camera.width, camera.height) == (width, height)
    np.testing.assert_allclose(camera.viewmat.double().numpy(), w2c, atol=1e-6)
    np.testing.assert_allclose(camera.K.double().numpy(), [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], rtol=1e-6)


# ---- the two layouts ------------------------------------------------------------------------

def test_both_layouts_give_the_same_camera(tmp_path):
    w2c = POSES[3]
    single = load_camera(camera_json(tmp_path / "cam.json", w2c))
    nerf = load_camera(vhap_transforms(tmp_path / "transforms.json"), 3)
    assert_camera(single, w2c)
    assert_camera(nerf, w2c)
    # the OpenGL/Blender camera axes: the camera looks along its −z, so the world point in front of it is at +z
    ahead = np.linalg.inv(opengl_c2w(w2c)) @ np.r_[0.0, 0, 0, 1]
    assert ahead[2] < 0 and (single.viewmat.double().numpy() @ np.r_[0.0, 0, 0, 1])[2] > 0


def test_read_transforms_keeps_every_frame_in_order(tmp_path):
    frames = read_transforms(vhap_transforms(tmp_path / "transforms_test.json"))
    assert [(f.timestep_index, f.camera_index) for f in frames] == [(t, c) for t in range(2) for c in POSES]
    first = frames[1]
    assert (first.file_path, first.flame_param_path, first.fg_mask_path) == (
        "images/00000_03.png", "flame_param/00000.npz", "fg_masks/00000_03.png")
    for frame in frames:
        assert_camera(frame.camera, POSES[frame.camera_index])
    assert camera_indices(tmp_path / "transforms_test.json") == [0, 3, 8]


def test_camera_index_picks_the_frame_and_defaults_to_the_first(tmp_path):
    path = vhap_transforms(tmp_path / "transforms.json")
    for index, w2c in POSES.items():
        assert_camera(load_camera(path, index), w2c)
    assert_camera(load_camera(path), POSES[0])


def test_camera_angle_gives_a_centred_principal_point(tmp_path):
    """GaussianAvatars' reading: fx = w/2/tan(angle_x/2), fy = fx without camera_angle_y, the
    principal point at the centre; w and h per frame or at the top level."""
    angle = 0.61
    frame = {"file_path": "images/a", "transform_matrix": opengl_c2w(POSES[0]).tolist()}
    path = transforms(tmp_path / "t.json", [frame], camera_angle_x=angle, w=WIDTH, h=HEIGHT)
    fx = WIDTH / 2 / math.tan(angle / 2)
    assert_camera(load_camera(path), POSES[0], fx, fx, WIDTH / 2, HEIGHT / 2)
    framed = transforms(tmp_path / "t2.json", [{**frame, "camera_angle_x": angle, "camera_angle_y": 0.5,
                                                "w": 64, "h": 40}], camera_angle_x=0.1, w=WIDTH, h=HEIGHT)
    assert_camera(load_camera(framed), POSES[0], 32 / math.tan(angle / 2), 20 / math.tan(0.25), 32, 20, 64, 40)


def png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


def test_size_from_the_png_when_the_file_has_no_w_h(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(png_header(80, 60))
    path = transforms(tmp_path / "t.json", [{"file_path": "images/a", "transform_matrix": opengl_c2w(POSES[0]).tolist()}],
                      camera_angle_x=0.5)
    assert (load_camera(path).width, load_camera(path).height) == (80, 60)


def test_scaled_camera_scales_each_axis():
    camera = Camera(torch.tensor(POSES[0], dtype=torch.float32),
                    torch.tensor([[FX, 0, CX], [0, FY, CY], [0, 0, 1]], dtype=torch.float32), WIDTH, HEIGHT)
    assert_camera(scaled_camera(camera, 144, 72), POSES[0], 2 * FX, 1.5 * FY, 2 * CX, 1.5 * CY, 144, 72)
    assert scaled_camera(camera, WIDTH, HEIGHT) is camera


# ---- the render at a file camera against an independent float64 brute force -----------------

def grid_head(n: int = 4, extent: float = 0.08) -> tuple[np.ndarray, np.ndarray]:
    """A small curved sheet of n×n vertices (float32 values) and its 2(n−1)² triangles."""
    u, v = np.meshgrid(np.linspace(-extent, extent, n), np.linspace(-extent, extent, n))
    vertices = np.stack([u, v, 0.3 * (u ** 2 + v ** 2) / extent + 0.01 * np.sin(7 * u)], -1).reshape(-1, 3)
    quads = [(i * n + j, i * n + j + 1, (i + 1) * n + j, (i + 1) * n + j + 1) for i in range(n - 1) for j in range(n - 1)]
    faces = [f for a, b, c, d in quads for f in ((a, b, d), (a, d, c))]
    return vertices.astype(np.float32).astype(np.float64), np.array(faces, np.int64)


def reference_world_gaussians(vertices, faces, local: GaussianSet) -> GaussianSet:
    """GaussianAvatars' binding in float64 (compute_face_orientation, get_xyz/get_scaling/
    get_rotation): R = [a0 a1 a2] from the first edge and the normal, k = (|e0| + |a2·e1|)/2,
    mean k·R·μ + centroid, scale k·s, rotation R·R(q)."""
    means, quats, scales = [], [], []
    for mu, q, s, face in zip(local.means.double().numpy(), local.quats.double().numpy(),
                              local.scales.double().numpy(), local.binding.numpy()):
        v0, v1, v2 = vertices[faces[face]]
        a0 = (v1 - v0) / np.linalg.norm(v1 - v0)
        a1 = np.cross(a0, v2 - v0) / np.linalg.norm(np.cross(a0, v2 - v0))
        a2 = -np.cross(a1, a0) / np.linalg.norm(np.cross(a1, a0))
        R = np.stack([a0, a1, a2], axis=1)
        k = (np.linalg.norm(v1 - v0) + abs(a2 @ (v2 - v0))) / 2
        means.append(k * R @ mu + (v0 + v1 + v2) / 3)
        scales.append(k * s)
        xyzw = Rotation.from_matrix(R @ Rotation.from_quat(q[[1, 2, 3, 0]]).as_matrix()).as_quat()
        quats.append(xyzw[[3, 0, 1, 2]])
    return GaussianSet(torch.tensor(np.array(means)), torch.tensor(np.array(quats)), torch.tensor(np.array(scales)),
                       local.opacities.double(), local.sh.double())


@pytest.fixture(scope="module")
def bound_avatar(tmp_path_factory):
    """A bound avatar (point_cloud.ply, SH degree 1 with zero higher coefficients: the brute force
    shades the DC term) on a tiny FLAME-layout model whose neutral pose is its template."""
    folder = tmp_path_factory.mktemp("avatar")
    vertices, faces = grid_head()
    model = model_dict(vertices=len(vertices))
    model.update(v_template=vertices, f=faces.astype(np.uint32))
    np.savez(folder / "flame.npz", **model)
    rng = np.random.default_rng(7)
    n = 90
    sh = torch.zeros(n, 4, 3, dtype=torch.float32)
    sh[:, 0] = rgb_to_sh0(torch.tensor(rng.uniform(0.05, 0.95, (n, 3)), dtype=torch.float32))
    local = GaussianSet(torch.tensor(rng.normal(scale=0.3, size=(n, 3)), dtype=torch.float32),
                        torch.tensor(rng.normal(size=(n, 4)), dtype=torch.float32),
                        torch.tensor(rng.uniform(0.08, 0.5, (n, 3)), dtype=torch.float32),
                        torch.tensor(rng.uniform(0.3, 0.99, n), dtype=torch.float32), sh,
                        torch.tensor(rng.integers(0, len(faces), n)))
    write_ply(local, folder / "point_cloud.ply")
    world = reference_world_gaussians(vertices, faces, local)
    return folder, world


BACKGROUND = (0.2, 0.3, 0.45)


def reference_frame(world: GaussianSet, w2c: np.ndarray, K: np.ndarray, width: int, height: int) -> np.ndarray:
    camera = Camera(torch.tensor(w2c), torch.tensor(K, dtype=torch.float64), width, height)
    means = world.means.numpy() @ w2c[:3, :3].T + w2c[:3, 3]
    u, v = K[0, 0] * means[:, 0] / means[:, 2] + K[0, 2], K[1, 1] * means[:, 1] / means[:, 2] + K[1, 2]
    assert (u > 2).all() and (u < width - 2).all() and (v > 2).all() and (v < height - 2).all()  # all in view
    image = brute_force(world, camera, torch.tensor(BACKGROUND, dtype=torch.float64))
    return np.floor(np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


@pytest.mark.parametrize("layout,index,size", [("transforms", 3, None), ("transforms", 8, None),
                                               ("camera", None, "144x80")])
def test_render_at_a_file_camera_equals_the_brute_force(tmp_path, bound_avatar, layout, index, size):
    folder, world = bound_avatar
    if layout == "transforms":
        camera_file, w2c = vhap_transforms(tmp_path / "transforms_test.json"), POSES[index]
    else:
        camera_file, w2c = camera_json(tmp_path / "cam.json", POSES[3]), POSES[3]
    out = tmp_path / "frames"
    args = ["render", "--avatar", str(folder), "--flame", str(folder / "flame.npz"), "--camera", str(camera_file),
            "--fps", "10", "--duration", "0.1", "--background", ",".join(map(str, BACKGROUND)), "--backend", "cpu",
            "--gaze", "0", "--head-motion", "0", "-q", "-o", str(out)]  # the neutral pose: no living layers
    args += (["--camera-index", str(index)] if index is not None else []) + (["--size", size] if size else [])
    assert main(args) == 0
    width, height = (int(v) for v in size.split("x")) if size else (WIDTH, HEIGHT)
    sx, sy = width / WIDTH, height / HEIGHT
    K = np.array([[FX * sx, 0, CX * sx], [0, FY * sy, CY * sy], [0, 0, 1]])
    expected = reference_frame(world, w2c, K, width, height)
    ours = iio.imread(out / "frame_00000.png")
    assert ours.shape == (height, width, 3)
    difference = np.abs(ours.astype(int) - expected)
    assert (np.abs(expected - 255 * np.array(BACKGROUND)) > 20).any(axis=-1).mean() > 0.3  # the avatar fills the view
    assert difference.max() <= 1, f"{(difference > 1).sum()} values off by up to {difference.max()}"


# ---- the Player ------------------------------------------------------------------------------

def file_camera(w2c=POSES[3]) -> Camera:
    return Camera(torch.tensor(w2c, dtype=torch.float32),
                  torch.tensor([[FX, 0, CX], [0, FY, CY], [0, 0, 1]], dtype=torch.float32), WIDTH, HEIGHT)


@pytest.fixture
def player(bound_avatar):
    folder, _ = bound_avatar
    return Player(load_avatar(folder, folder / "flame.npz"), backend="cpu")


def test_player_renders_the_file_camera_scaled_and_reset_returns_to_the_orbit(player):
    orbit = player.camera()
    orbit_frame = player.render_frame(0)  # fills the pose cache
    twin = player.snapshot()
    player.set_view(camera=file_camera(), width=2 * WIDTH, height=HEIGHT)
    assert_camera(player.camera(), POSES[3], 2 * FX, FY, 2 * CX, CY, 2 * WIDTH, HEIGHT)
    at_camera = player.render_frame(0)
    fresh = Player(player.avatar, backend="cpu")
    fresh.set_view(camera=file_camera(), width=2 * WIDTH, height=HEIGHT)
    np.testing.assert_array_equal(at_camera, fresh.render_frame(0))  # the cached pose is the same
    np.testing.assert_array_equal(twin.render_frame(0), orbit_frame)  # the snapshot keeps its view
    assert twin.view.camera is None
    player.reset_view()
    player.set_view(width=512, height=512)
    assert player.view.camera is None and torch.equal(player.camera().viewmat, orbit.viewmat)


def test_orbit_from_camera_keeps_the_cameras_centre_and_direction(player):
    camera = file_camera(POSES[8])  # rolled: the orbit keeps centre and direction, not the roll
    player.set_view(camera=camera)
    player.orbit_from_camera()
    orbit = player.camera()
    assert player.view.camera is None
    np.testing.assert_allclose(orbit.center.numpy(), camera.center.numpy(), atol=1e-5)
    np.testing.assert_allclose(orbit.viewmat[2, :3].numpy(), camera.viewmat[2, :3].numpy(), atol=1e-5)


# ---- bad input -------------------------------------------------------------------------------

GOOD_C2W = opengl_c2w(POSES[0]).tolist()
SCALED = (np.diag([2.0, 2, 2, 1]) @ opengl_c2w(POSES[0])).tolist()
MANY = {"frames": [{"file_path": f"images/{c}", "camera_index": c, "transform_matrix": GOOD_C2W} for c in range(20)],
        "camera_angle_x": 0.5, "w": 64, "h": 48}
SINGLE = {"width": 64, "height": 48, "K": [[50, 0, 32], [0, 50, 24], [0, 0, 1]], "world_to_camera": POSES[0].tolist()}
BAD = {
    "missing_k": ({k: v for k, v in SINGLE.items() if k != "K"}, [], "not a camera file: no K"),
    "no_frames": ({"frames": []}, [], "frames must be a non-empty list"),
    "no_transform": ({"frames": [{"file_path": "a"}], "camera_angle_x": 0.5, "w": 64, "h": 48}, [],
                     "frame 0 has no transform_matrix"),
    "no_intrinsics": ({"frames": [{"file_path": "a", "transform_matrix": GOOD_C2W}], "w": 64, "h": 48}, [],
                      "frame 0 has no intrinsics"),
    "no_size": ({"frames": [{"file_path": "a", "transform_matrix": GOOD_C2W}], "camera_angle_x": 0.5}, [],
                "frame 0 has no image size (w and h), and its image cannot be read"),
    "index_absent": (MANY, ["--camera-index", "42"], "no frame with camera_index 42 (the file has 0, 1, 2, 3, 4, 5, 6, "
                                                    "7, 8, 9, 10, 11, … (20 in all))"),
    "index_on_single": (SINGLE, ["--camera-index", "0"], "holds one camera"),
    "singular": ({**SINGLE, "world_to_camera": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1]]}, [],
                 "world_to_camera is not an invertible transform"),
    "scaled": ({**MANY, "frames": [{"file_path": "a", "transform_matrix": SCALED}]}, [],
               "frame 0 transform_matrix is not a rigid transform"),
    "not_finite": ({**SINGLE, "world_to_camera": [[float("nan")] * 4] * 4}, [],
                   "world_to_camera is nan; expected a finite number"),
    "k_2x3": ({**SINGLE, "K": [[50, 0, 32], [0, 50, 24]]}, [], "K must be a 3×3 matrix"),
    "k_negative_focal": ({**SINGLE, "K": [[-50, 0, 32], [0, 50, 24], [0, 0, 1]]}, [], "focal length fx is -50"),
    "k_skew": ({**SINGLE, "K": [[50, 1, 32], [0, 50, 24], [0, 0, 1]]}, [], "no skew"),
    "angle": ({**MANY, "camera_angle_x": 4.0}, [], "camera_angle_x is 4; expected a field of view"),
    "too_wide": ({**SINGLE, "width": 9000}, [], "width is 9000; expected a whole number of pixels in 16..8192"),
    "fraction": ({**MANY, "w": 64.5}, [], "frame 0 w is 64.5"),
    "far": ({**SINGLE, "world_to_camera": [[1, 0, 0, 5e3], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}, [],
            "more than 1000 m away"),
    "list": ([SINGLE], [], "expected a JSON object"),
}


def bad_file(tmp_path: Path, kind: str) -> tuple[Path, list[str], str]:
    path = tmp_path / f"{kind}.json"
    if kind in BAD:
        data, extra, message = BAD[kind]
        path.write_text(json.dumps(data))
        return path, extra, message
    texts = {"malformed": ('{"width": 64,', "not valid JSON"), "deep": ("[" * 100 + "]" * 100, "nested more than 64"),
             "binary": (None, "not utf-8 text")}
    text, message = texts[kind]
    if text is None:
        path.write_bytes(b"\xff\xfe\x00garbage")
    else:
        path.write_text(text)
    return path, [], message


@pytest.mark.parametrize("kind", [*BAD, "malformed", "deep", "binary"])
def test_bad_camera_files_exit_2_with_one_line_naming_the_file(tmp_path, capsys, kind):
    path, extra, message = bad_file(tmp_path, kind)
    out = tmp_path / "out.mp4"
    assert main(["render", "--demo", "--camera", str(path), *extra, "-q", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"avatar: error: {path}: ") and message in err, err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    with pytest.raises(InputError):
        load_camera(path, *([int(extra[1])] if extra else []))


@pytest.mark.parametrize("args,message", [
    (["--camera-index", "2"], "--camera-index needs --camera FILE"),
    (["--camera", "CAM", "--yaw", "10"], "--camera sets the view; --yaw cannot be combined with it"),
    (["--camera", "CAM", "--pitch", "0", "--distance", "1"], "--pitch, --distance cannot be combined with it"),
    (["--camera", "MISSING"], "missing.json: no such camera file"),
    (["--camera", "ODD"], "odd.json: its image is 63x48, and an MP4 needs an even width and height: give --size"),
])
def test_bad_camera_options_exit_2(tmp_path, capsys, args, message):
    names = {"CAM": str(camera_json(tmp_path / "cam.json", POSES[0])), "MISSING": str(tmp_path / "missing.json"),
             "ODD": str(camera_json(tmp_path / "odd.json", POSES[0], width=63))}
    out = tmp_path / "out.mp4"
    assert main(["render", "--demo", *(names.get(a, a) for a in args), "-q", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()
