"""A realistic-scale GaussianAvatars avatar made by code, for tests and benchmarks (issue 14, item 7).

Sizes are a real avatar's: a FLAME-layout model of 5023 vertices and 9976 faces (300 shape + 100
expression components, 36 pose correctives, five joints) written as an official FLAME .pkl
(chumpy arrays, a sparse J_regressor, read through our restricted unpickler), which `load_flame`
gives GaussianAvatars' teeth (V 5143, F 10144); 100,000 Gaussians at SH degree 3 bound to every
face, teeth included, in GaussianAvatars' point_cloud.ply layout (tests/ply_layouts.py); its
flame_param.npz with GaussianAvatars' keys (`dynamic_offset` included) over a tracked sequence of
300 frames; and a dataset camera as a single-camera JSON (width, height, K, world_to_camera).

The mesh is a head: a latitude-longitude surface with the lip rows 3 mm apart, closed but for a
mouth slit between them (their vertices take FLAME's lip-ring indices, so the teeth sit behind
the mouth), two eye slits and a small opening under the chin; and two closed eyeballs. Euler's
formula fixes how open a surface of V = 5023 and F = 9976 can be: 2V − F = 70 = 4 (the head) +
2·4 (the eyeballs) + 2 per quad removed from the head (mouth 14, eyes 5 + 5, chin 5).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.rig.flame import FlameParams, FlameRig
from models.rig.flame_arrays import FlameArrays
from models.rig.teeth import FLAME_VERTICES, LIP_RING_LOWER, LIP_RING_UPPER, RING, add_teeth
from renderer.binding import triangle_frames
from renderer.gaussians import rgb_to_sh0
from tests.ply_layouts import ply_bytes, property_names, records, sh_columns
from tests.test_flame import write_official_pkl

FLAME_FACES = 9976
N_SHAPE, N_EXPR, JOINTS = 300, 100, 5
GAUSSIANS, FRAMES, SH_DEGREE = 100_000, 300, 3
HEAD_RADII = np.array([0.078, 0.105, 0.092])
ROWS, COLUMNS = 53, 89                      # head latitudes (poles apart) × longitudes
EYEBALL_ROWS, EYEBALL_COLUMNS, EYEBALL_RADIUS = 10, 15, 0.0125
MOUTH_Y, LIP_GAP = -0.052, 0.003
EYES = np.array([[0.032, 0.018], [-0.032, 0.018]])  # x, y of the left (+x) and right eye
EYE_CELLS, CHIN_CELLS = 5, 5
FRONT_DENSITY = 0.5                         # longitude spacing at the front, relative to the back
JOINT_TARGETS = np.array([[0, -0.10, -0.01], [0, -0.07, -0.015], [0, -0.03, -0.01]])  # root, neck, jaw
CAMERA = {"width": 802, "height": 550, "fx": 2010.0, "fy": 2004.0, "cx": 405.3, "cy": 271.8,
          "distance": 1.0, "yaw": 12.0, "pitch": 6.0}  # a NeRSemble-like camera, 4× downsampled


@dataclass(frozen=True)
class RealisticAvatar:
    """What `build_realistic` wrote: the avatar folder (point_cloud.ply + flame_param.npz), the
    FLAME .pkl, the camera JSON, and what they hold."""

    folder: Path
    flame: Path
    camera: Path
    gaussians: int
    frames: int


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _grid_faces(rows: int, cols: int) -> np.ndarray:
    """Two triangles per quad of a rows×cols vertex grid wrapping in columns, quad (i, j) at
    faces 2(i·cols + j) and +1, counter-clockwise from outside."""
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(cols), indexing="ij")
    a, b = r * cols + c, r * cols + (c + 1) % cols
    d, e = a + cols, b + cols
    return np.stack([np.stack([a, d, b], -1), np.stack([b, d, e], -1)], 2).reshape(-1, 3)


def _caps(rows: int, cols: int) -> np.ndarray:
    """The pole fans of a grid whose poles follow it (bottom at rows·cols, top at +1)."""
    ring, n = np.arange(cols), rows * cols
    return np.concatenate([np.stack([np.full(cols, n), ring, (ring + 1) % cols], -1),
                           np.stack([np.full(cols, n + 1), n - cols + (ring + 1) % cols, n - cols + ring], -1)])


def _sphere(centre: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """A closed latitude-longitude sphere (poles on ±y)."""
    lat = np.linspace(-np.pi / 2, np.pi / 2, EYEBALL_ROWS + 2)[1:-1]
    lon = np.linspace(-np.pi, np.pi, EYEBALL_COLUMNS, endpoint=False)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    dirs = np.stack([np.cos(la) * np.sin(lo), np.sin(la), np.cos(la) * np.cos(lo)], -1).reshape(-1, 3)
    verts = np.concatenate([dirs, [[0, -1, 0], [0, 1, 0]]]) * radius + centre
    return verts, np.concatenate([_grid_faces(EYEBALL_ROWS, EYEBALL_COLUMNS), _caps(EYEBALL_ROWS, EYEBALL_COLUMNS)])


def _latitudes() -> np.ndarray:
    """ROWS latitudes, bottom to top, with the two lip rows LIP_GAP apart around MOUTH_Y."""
    lat = np.linspace(-np.pi / 2, np.pi / 2, ROWS + 2)[1:-1]
    lips = np.arcsin((MOUTH_Y + np.array([-0.5, 0.5]) * LIP_GAP) / HEAD_RADII[1])
    nearest = np.argsort(np.abs(lat[:, None] - lips[None]).min(1))[:2]
    return np.sort(np.concatenate([np.delete(lat, nearest), lips]))


def _longitudes() -> np.ndarray:
    """COLUMNS longitudes, column 0 at the front (lon 0, +z), denser toward the front; column j
    and COLUMNS − j mirror each other."""
    j = np.arange(COLUMNS)
    u = np.where(j <= COLUMNS // 2, 2 * j / COLUMNS, 2 * j / COLUMNS - 2)
    return np.pi * (u - (1 - FRONT_DENSITY) * np.sin(np.pi * u) / np.pi)


def _head() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Head vertices (grid then poles), faces with the slits removed, and the grid indices of
    the lip rows (upper, lower: from the +x mouth corner through the midline to −x)."""
    lat, lon = _latitudes(), _longitudes()
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    p = np.stack([np.cos(la) * np.sin(lo), np.sin(la), np.cos(la) * np.cos(lo)], -1) * HEAD_RADII
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    front = np.clip(z / HEAD_RADII[2], 0, 1)
    bump = lambda cx, cy, sx, sy: np.exp(-((x - cx) / sx) ** 2 - ((y - cy) / sy) ** 2)  # noqa: E731
    x *= 1 - 0.2 * _smoothstep(-0.01, -0.09, y) * front          # narrower jaw and chin
    z += front * (0.024 * bump(0, -0.015, 0.011, 0.02)             # nose
                  - 0.009 * (bump(*EYES[0], 0.017, 0.012) + bump(*EYES[1], 0.017, 0.012))
                  + 0.006 * bump(0, MOUTH_Y, 0.024, 0.012) + 0.006 * bump(0, -0.088, 0.02, 0.012))
    grid = np.stack([x, y, z], -1).reshape(-1, 3)
    verts = np.concatenate([grid, [[0, -HEAD_RADII[1], 0], [0, HEAD_RADII[1], 0]]])
    faces = np.concatenate([_grid_faces(ROWS, COLUMNS), _caps(ROWS, COLUMNS)])

    lower = int(np.searchsorted(lat, np.arcsin(MOUTH_Y / HEAD_RADII[1]))) - 1
    half = (RING - 1) // 2
    mouth = [(lower, j % COLUMNS) for j in range(-half, half)]
    eye_row = int(np.searchsorted(lat, np.arcsin(EYES[0, 1] / HEAD_RADII[1]))) - 1
    eyes = []
    for ex, _ in EYES:
        centre = int(np.argmin(np.abs(grid[eye_row * COLUMNS:(eye_row + 1) * COLUMNS, 0] - ex)
                               + 1e3 * (grid[eye_row * COLUMNS:(eye_row + 1) * COLUMNS, 2] < 0)))
        eyes += [(eye_row, (centre + d) % COLUMNS) for d in range(-(EYE_CELLS // 2), EYE_CELLS - EYE_CELLS // 2)]
    chin = [(0, COLUMNS // 2 + d) for d in range(-(CHIN_CELLS // 2), CHIN_CELLS - CHIN_CELLS // 2)]
    removed = {2 * (i * COLUMNS + j) + t for i, j in mouth + eyes + chin for t in (0, 1)}
    faces = faces[[f for f in range(len(faces)) if f not in removed]]
    ring = [j % COLUMNS for j in range(half, -half - 1, -1)]  # +x corner → midline → −x
    lips = {"upper": (lower + 1) * COLUMNS + np.array(ring), "lower": lower * COLUMNS + np.array(ring)}
    return verts, faces, lips


def _mesh() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices, faces and part (0 head, 1 left eyeball, 2 right eyeball) in FLAME's vertex order
    where it matters: the lip rings at FLAME's indices, the eyeballs last."""
    head, head_faces, lips = _head()
    pieces, parts = [(head, head_faces)], [np.zeros(len(head), int)]
    for k, (ex, ey) in enumerate(EYES):
        near = head[(np.abs(head[:, 0] - ex) < 0.004) & (np.abs(head[:, 1] - ey) < 0.004) & (head[:, 2] > 0)]
        centre = np.array([ex, ey, near[:, 2].max() - EYEBALL_RADIUS + 0.002])
        pieces.append(_sphere(centre, EYEBALL_RADIUS))
        parts.append(np.full(len(pieces[-1][0]), k + 1))
    offsets = np.cumsum([0] + [len(v) for v, _ in pieces])
    verts = np.concatenate([v for v, _ in pieces])
    faces = np.concatenate([f + o for (_, f), o in zip(pieces, offsets)])
    assert (len(verts), len(faces)) == (FLAME_VERTICES, FLAME_FACES), (len(verts), len(faces))
    # Lip rings to FLAME's indices, every other vertex to the free indices in order.
    order = np.full(len(verts), -1)
    order[np.concatenate([lips["upper"], lips["lower"]])] = LIP_RING_UPPER + LIP_RING_LOWER
    free = np.setdiff1d(np.arange(len(verts)), order)
    order[order < 0] = free
    permuted = np.empty_like(verts)
    permuted[order] = verts
    part = np.empty(len(verts), int)
    part[order] = np.concatenate(parts)
    return permuted, order[faces], part


def _smooth_fields(points: np.ndarray, count: int, rng: np.random.Generator, wavelength: float) -> np.ndarray:
    """`count` smooth random displacement fields (V, 3, count) of unit RMS over the points."""
    frequencies = rng.normal(scale=2 * np.pi / wavelength, size=(3, 48))
    features = np.sin(points @ frequencies + rng.uniform(0, 2 * np.pi, 48))
    fields = (features @ rng.normal(size=(48, 3 * count))).reshape(len(points), 3, count)
    return fields / np.sqrt((fields ** 2).mean(axis=(0, 1)))


def _affine_regressor(verts: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-norm weights w with Σw = 1 and wᵀ·verts = target: a joint regressor row."""
    A = np.concatenate([verts.T, np.ones((1, len(verts)))])
    return np.linalg.lstsq(A, np.append(target, 1.0), rcond=None)[0]


def flame_model(seed: int = 0) -> dict[str, np.ndarray]:
    """The model in the official FLAME file's keys (float64, like its chumpy arrays)."""
    rng = np.random.default_rng(seed)
    v, f, part = _mesh()
    x, y, z = v.T
    head = part == 0
    soft = 0.0006 + 0.02 * _smoothstep(0.016, 0.04, np.abs(x))  # a sharp split between the lips only
    jaw = head * _smoothstep(-soft, soft, MOUTH_Y - y) * _smoothstep(-0.045, 0.02, z)
    root = head * _smoothstep(-0.08, -0.105, y)
    weights = np.zeros((len(v), JOINTS))
    weights[:, 0], weights[:, 1], weights[:, 2] = root, (1 - root) * (1 - jaw) * head, (1 - root) * jaw
    weights[part == 1, 3] = weights[part == 2, 4] = 1.0
    J_regressor = np.zeros((JOINTS, len(v)))
    for j, target in enumerate(JOINT_TARGETS):
        near = np.argsort(np.linalg.norm(v - target, axis=1) + 1e3 * ~head)[:32]
        J_regressor[j, near] = _affine_regressor(v[near], target)
    for j, k in ((3, 1), (4, 2)):
        J_regressor[j, part == k] = 1 / (part == k).sum()  # an eyeball's centre
    shape = _smooth_fields(v, N_SHAPE, rng, 0.25) * (0.004 / (1 + np.arange(N_SHAPE) / 20))
    face = (head * _smoothstep(-0.02, 0.06, z) * _smoothstep(0.06, 0.0, y))[:, None, None]
    expr = _smooth_fields(v, N_EXPR, rng, 0.08) * (0.002 / (1 + np.arange(N_EXPR) / 10)) * face
    expr[:, :, 0] = (jaw * _smoothstep(0.05, 0.0, np.abs(x)))[:, None] * [0, -0.004, 0.001]  # mouth opens
    expr[:, :, 1] = face[:, :, 0] * _smoothstep(0.0, 0.025, np.abs(x))[:, None] * [0, 0.003, -0.001]  # a smile
    posedirs = _smooth_fields(v, 9 * (JOINTS - 1), rng, 0.15) * 0.0005 * head[:, None, None]
    return {"v_template": v, "f": f.astype(np.uint32), "shapedirs": np.concatenate([shape, expr], 2),
            "posedirs": posedirs, "J_regressor": J_regressor, "weights": weights,
            "kintree_table": np.array([[4294967295, 0, 1, 1, 1], np.arange(JOINTS)], dtype=np.int64)}


def tracked_sequence(frames: int, vertices: int, seed: int = 1) -> dict[str, np.ndarray]:
    """GaussianAvatars' flame_param.npz of a tracked sequence: smooth expressions, a talking jaw,
    head sway, gaze; the shape and a small static offset (zero on the teeth, as it pads them)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None] / 25.0  # 25 frames a second

    def waves(columns: int, scale: np.ndarray | float, hertz: tuple[float, float] = (0.2, 2.0)) -> np.ndarray:
        freq = rng.uniform(*hertz, size=(3, columns))
        phase = rng.uniform(0, 2 * np.pi, size=(3, columns))
        return (np.sin(2 * np.pi * freq[:, None] * t[None] + phase[:, None]).sum(0) / np.sqrt(1.5) * scale)

    expr = waves(N_EXPR, 1.2 / (1 + np.arange(N_EXPR) / 8))
    jaw = np.zeros((frames, 3))
    jaw[:, 0] = 0.12 * np.clip(waves(1, 1.0, (2.0, 5.0))[:, 0], 0, None)  # syllables: 0 .. ~0.35 rad
    static = np.zeros((1, vertices, 3))
    static[0, :FLAME_VERTICES] = rng.normal(scale=2e-4, size=(FLAME_VERTICES, 3))
    params = {"shape": rng.normal(size=N_SHAPE) / (1 + np.arange(N_SHAPE) / 10), "expr": expr,
              "rotation": waves(3, 0.06), "neck_pose": waves(3, 0.03), "jaw_pose": jaw,
              "eyes_pose": np.tile(waves(3, 0.08, (0.1, 1.0)), 2), "translation": waves(3, 0.004),
              "static_offset": static, "dynamic_offset": np.zeros((frames, vertices, 3))}
    return {key: value.astype(np.float32) for key, value in params.items()}


def _colours(rest: np.ndarray, face: np.ndarray, part: np.ndarray) -> np.ndarray:
    """A baked albedo per Gaussian at rest positions: skin, hair, lips, eyes, teeth, mouth."""
    x, y, z = rest.T
    rgb = np.tile([0.84, 0.64, 0.53], (len(rest), 1))
    rgb[(y > 0.05 - 0.06 * (z < 0.04)) & (part == 0)] = [0.22, 0.13, 0.08]
    lips = (np.abs(y - MOUTH_Y) < 0.008 * (1 - (x / 0.028) ** 2).clip(0)) & (z > 0.04)
    rgb[lips & (part == 0)] = [0.7, 0.32, 0.33]
    for k in (1, 2):
        eye = part == k
        rgb[eye] = [0.93, 0.92, 0.9]
        iris = eye & (np.hypot(x - EYES[k - 1, 0], y - EYES[k - 1, 1]) < 0.005) & (z > 0)
        rgb[iris] = [0.25, 0.42, 0.55]
    rgb[face >= FLAME_FACES] = [0.93, 0.91, 0.85]
    shade = 0.65 + 0.35 * _smoothstep(-0.05, 0.09, z)
    return (rgb * shade[:, None]).clip(0, 1)


def gaussian_records(arrays: FlameArrays, params: dict[str, np.ndarray], count: int,
                     seed: int = 2) -> np.ndarray:
    """`count` Gaussians (SH degree 3) on every face of the rest mesh, at least one each, the
    rest by area, as GaussianAvatars stores them (triangle-local, log scales, logit opacities)."""
    rng = np.random.default_rng(seed)
    rig = FlameRig(arrays, params["shape"], params["static_offset"])
    with torch.no_grad():
        verts = rig(FlameParams.neutral(1))[0]
        R, k, c = (t.double().numpy() for t in triangle_frames(verts, rig.faces))
    tri = verts.double().numpy()[arrays.faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    per_face = 1 + rng.multinomial(count - len(tri), area / area.sum())
    face = np.repeat(np.arange(len(tri)), per_face)
    r1, r2 = rng.random(count), rng.random(count)
    bary = np.stack([1 - np.sqrt(r1), np.sqrt(r1) * (1 - r2), np.sqrt(r1) * r2], -1)
    points = np.einsum("nk,nkd->nd", bary, tri[face])
    local = np.einsum("nji,nj->ni", R[face], points - c[face]) / k[face, None]
    local[:, 1] += rng.normal(scale=0.02, size=count)  # a little off the surface, along its normal
    size = np.sqrt(area[face] / per_face[face]) / k[face]
    scales = np.stack([size, 0.15 * size, size], -1) * rng.uniform(0.7, 1.3, (count, 3))
    angle = rng.uniform(0, np.pi, count)  # a turn about the normal (local y)
    part = np.zeros(count, int)
    corner = arrays.faces[face, 0]
    eyeball = arrays.weights[corner, 3:5]
    part[eyeball[:, 0] > 0.5], part[eyeball[:, 1] > 0.5] = 1, 2
    dc = rgb_to_sh0(torch.from_numpy(_colours(points, face, part))).numpy()
    rest = rng.normal(scale=0.03, size=(count, (SH_DEGREE + 1) ** 2 - 1, 3))
    columns = {**{a: local[:, i] for i, a in enumerate("xyz")}, **{f"n{a}": np.zeros(count) for a in "xyz"},
               **sh_columns(dc, rest), "opacity": rng.normal(3.0, 1.0, count),
               **{f"scale_{i}": np.log(scales[:, i]) for i in range(3)},
               "rot_0": np.cos(angle / 2), "rot_1": np.zeros(count), "rot_2": np.sin(angle / 2),
               "rot_3": np.zeros(count), "binding_0": face}
    return records(property_names("gaussianavatars", SH_DEGREE), columns)


def camera_json() -> dict:
    """The single-camera JSON (OpenCV axes) of CAMERA: looking at the head from the front,
    turned `yaw` toward the subject's left and `pitch` from above."""
    yaw, pitch = np.radians(CAMERA["yaw"]), np.radians(CAMERA["pitch"])
    target = np.array([0.0, -0.01, 0.0])
    centre = target + CAMERA["distance"] * np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch),
                                                     np.cos(yaw) * np.cos(pitch)])
    forward = (target - centre) / np.linalg.norm(target - centre)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    world_to_camera = np.eye(4)
    world_to_camera[:3, :3], world_to_camera[:3, 3] = rotation, -rotation @ centre
    K = [[CAMERA["fx"], 0.0, CAMERA["cx"]], [0.0, CAMERA["fy"], CAMERA["cy"]], [0.0, 0.0, 1.0]]
    return {"width": CAMERA["width"], "height": CAMERA["height"], "K": K,
            "world_to_camera": world_to_camera.tolist(), "camera_id": "222200037"}


def build_realistic(folder: str | Path, gaussians: int = GAUSSIANS, frames: int = FRAMES,
                    seed: int = 0) -> RealisticAvatar:
    """Write the FLAME .pkl, the avatar folder and the camera JSON into `folder` (a few seconds)."""
    folder = Path(folder)
    avatar = folder / "avatar"
    avatar.mkdir(parents=True, exist_ok=True)
    model = flame_model(seed)
    flame = write_official_pkl(folder / "flame2023.pkl", model)
    arrays = add_teeth(FlameArrays(
        **{key: model[key].astype(np.float32) for key in ("v_template", "shapedirs", "posedirs", "J_regressor",
                                                          "weights")},
        faces=model["f"].astype(np.int64), kintree_table=model["kintree_table"], n_shape=N_SHAPE,
        n_expr=N_EXPR, source=str(flame)))
    params = tracked_sequence(frames, arrays.num_vertices, seed + 1)
    np.savez(avatar / "flame_param.npz", **params)
    (avatar / "point_cloud.ply").write_bytes(ply_bytes(gaussian_records(arrays, params, gaussians, seed + 2)))
    camera = folder / "camera.json"
    camera.write_text(json.dumps(camera_json(), indent=1))
    return RealisticAvatar(avatar, flame, camera, gaussians, frames)
