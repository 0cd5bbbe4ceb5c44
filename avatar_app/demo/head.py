"""The procedural demo head: a stylised head in the FLAME *file layout*, made by code.

It stands in for FLAME (whose licence forbids shipping it) so a new user sees a talking head
with no downloads. Same keys and conventions as FLAME: 5 joints (root, neck, jaw, left eye,
right eye), +y up, face toward +z, 300 shape + 100 expression columns (only the first few
carry motion), linear blend skinning. Parts: the head surface (a lat-long sphere shaped into
a head, with a lip line where the jaw splits), a neck tube, two eyeballs on the eye joints
and a mouth cavity. `regions` tells which part of the surface a point is (skin, hair, lips…)
so an avatar can be painted onto it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_SHAPE, N_EXPR = 300, 100
HEAD_RADII = np.array([0.078, 0.105, 0.092])
MOUTH_Y, MOUTH_HALF_WIDTH = -0.052, 0.024
EYE_CENTRES = np.array([[0.032, 0.018], [-0.032, 0.018]])   # x, y of the left (+x) and right eye
EYE_HALF = np.array([0.0135, 0.0065])                        # eye opening half width, height
EYEBALL_RADIUS = 0.0125
PARTS = ("head", "neck", "eyeball_left", "eyeball_right", "cavity")
REGIONS = ("skin", "hair", "brow", "lips", "opening", "nostril", "eyeball", "mouth")  # see surface_regions

# Expression components that carry motion (the other expression columns are zero).
EXPRESSIONS = ("smile", "frown", "lips_round", "lip_stretch", "upper_lip_raise",
               "lower_lip_depress", "lips_press", "cheek_raise", "brow_raise", "brow_lower",
               "brow_inner_up", "eyelids_close", "eyes_wide", "nose_wrinkle",
               "smile_left", "smile_right")


@dataclass
class DemoHead:
    """FLAME-layout arrays plus what each vertex and face belongs to."""

    arrays: dict[str, np.ndarray]
    vertex_part: np.ndarray   # (V,) index into PARTS
    face_part: np.ndarray     # (F,)


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _grid_faces(rows: int, cols: int, offset: int = 0, wrap: bool = True) -> np.ndarray:
    """Two triangles per cell of a rows×cols vertex grid (row-major), wrapping in columns."""
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(cols if wrap else cols - 1), indexing="ij")
    a = r * cols + c
    b = r * cols + (c + 1) % cols
    d, e = a + cols, b + cols
    # Counter-clockwise seen from outside, so normals (a0 × (v2 − v0)) point out.
    tris = np.concatenate([np.stack([a, d, b], -1).reshape(-1, 3), np.stack([b, d, e], -1).reshape(-1, 3)])
    return tris + offset


def _sphere(centre: np.ndarray, radii: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Closed UV ellipsoid: rows of latitude (bottom → top) plus two pole caps."""
    lat = np.linspace(-np.pi / 2, np.pi / 2, rows + 2)[1:-1]
    lon = np.linspace(-np.pi, np.pi, cols, endpoint=False)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    dirs = np.stack([np.cos(la) * np.sin(lo), np.sin(la), np.cos(la) * np.cos(lo)], -1).reshape(-1, 3)
    verts = np.concatenate([dirs, [[0, -1, 0], [0, 1, 0]]]) * radii + centre
    faces = _grid_faces(rows, cols)
    bottom, top, n = rows * cols, rows * cols + 1, rows * cols
    ring = np.arange(cols)
    caps = np.concatenate([np.stack([np.full(cols, bottom), ring, (ring + 1) % cols], -1),
                           np.stack([np.full(cols, top), n - cols + (ring + 1) % cols, n - cols + ring], -1)])
    return verts, np.concatenate([faces, caps])


def _head_surface(rows: int = 64, cols: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """The shaped head: an ellipsoid with nose, eye sockets, brow ridge, cheeks, lips and chin,
    with two latitude rows 1.6 mm apart at the lip line so the jaw opens a slit."""
    ry = HEAD_RADII[1]
    lat = np.linspace(-1.2, 1.45, rows)
    lip = np.arcsin(np.array([MOUTH_Y - 0.0008, MOUTH_Y + 0.0008]) / ry)
    near = np.argsort(np.abs(lat[:, None] - lip[None]).min(1))[:2]
    lat = np.sort(np.concatenate([np.delete(lat, near), lip]))
    lon = np.linspace(-np.pi, np.pi, cols, endpoint=False)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    p = np.stack([np.cos(la) * np.sin(lo), np.sin(la), np.cos(la) * np.cos(lo)], -1) * HEAD_RADII
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    front = np.clip(z / HEAD_RADII[2], 0, 1)
    # Narrow jaw and chin, flatter face.
    x *= 1 - 0.22 * _smoothstep(-0.01, -0.09, y) * front
    bump = lambda cx, cy, sx, sy: np.exp(-((x - cx) / sx) ** 2 - ((y - cy) / sy) ** 2)  # noqa: E731
    dz = (0.026 * np.exp(-(x / 0.011) ** 2) * _smoothstep(0.03, -0.005, y) * _smoothstep(-0.05, -0.028, y)
          * (1 + 0.3 * _smoothstep(-0.01, -0.03, y))
          - 0.010 * (bump(0.032, 0.018, 0.017, 0.012) + bump(-0.032, 0.018, 0.017, 0.012))
          + 0.006 * (bump(0.03, 0.038, 0.022, 0.007) + bump(-0.03, 0.038, 0.022, 0.007))
          + 0.005 * (bump(0.04, -0.025, 0.018, 0.018) + bump(-0.04, -0.025, 0.018, 0.018))
          + 0.007 * bump(0, MOUTH_Y, 0.024, 0.012)
          + 0.006 * bump(0, -0.088, 0.02, 0.012))
    z = z + dz * front
    return np.stack([x, y, z], -1).reshape(-1, 3), _grid_faces(rows, cols)


def _tube(y_top: float, y_bottom: float, radii: np.ndarray, z_centre: float, rows: int = 10,
          cols: int = 48) -> tuple[np.ndarray, np.ndarray]:
    ys = np.linspace(y_bottom, y_top, rows)
    lo = np.linspace(-np.pi, np.pi, cols, endpoint=False)
    yy, ll = np.meshgrid(ys, lo, indexing="ij")
    verts = np.stack([radii[0] * np.sin(ll), yy, z_centre + radii[1] * np.cos(ll)], -1).reshape(-1, 3)
    return verts, _grid_faces(rows, cols)


def front_surface_z(x: float, y: float, head_vertices: np.ndarray) -> float:
    """z of the head's front surface nearest to (x, y)."""
    front = head_vertices[head_vertices[:, 2] > 0]
    return float(front[np.argmin((front[:, 0] - x) ** 2 + (front[:, 1] - y) ** 2), 2])


def _affine_regressor(verts: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Minimum-norm weights w (Σw = 1) with wᵀ·verts = target: a joint regressor row."""
    A = np.concatenate([verts.T, np.ones((1, len(verts)))])
    return np.linalg.lstsq(A, np.append(target, 1.0), rcond=None)[0]


def _mask(p: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    return np.exp(-np.sum((p - np.asarray(centre)) ** 2, -1) / (2 * radius ** 2))


def _expression_dirs(p: np.ndarray, head: np.ndarray, jaw_w: np.ndarray) -> np.ndarray:
    """(V, 3, len(EXPRESSIONS)) displacement fields of the expression components, at unit weight."""
    zf = lambda x, y: front_surface_z(x, y, head)  # noqa: E731
    ym, mw = MOUTH_Y, MOUTH_HALF_WIDTH
    corners = [np.array([s * mw, ym, zf(s * mw, ym)]) for s in (1, -1)]
    upper_lip = np.array([0, ym + 0.006, zf(0, ym + 0.006)])
    lower_lip = np.array([0, ym - 0.007, zf(0, ym - 0.007)])
    brows = [np.array([s * 0.03, 0.04, zf(s * 0.03, 0.04)]) for s in (1, -1)]
    inner_brows = [np.array([s * 0.014, 0.038, zf(s * 0.014, 0.038)]) for s in (1, -1)]
    lids = [np.array([e[0], e[1] + EYE_HALF[1], zf(e[0], e[1] + EYE_HALF[1])]) for e in EYE_CENTRES]
    cheeks = [np.array([s * 0.038, -0.02, zf(s * 0.038, -0.02)]) for s in (1, -1)]
    upper = (1 - jaw_w)[:, None]
    lower = jaw_w[:, None]
    sign_x = np.sign(p[:, 0])[:, None]

    def corner_move(dx: float, dy: float, dz: float, sides: tuple[int, ...] = (0, 1), r: float = 0.011) -> np.ndarray:
        m = sum(_mask(p, corners[s], r) for s in sides)[:, None]
        return m * np.stack([dx * sign_x[:, 0], np.full(len(p), dy), np.full(len(p), dz)], -1)

    def region(centres: list[np.ndarray], r: float, d: tuple[float, float, float]) -> np.ndarray:
        return sum(_mask(p, c, r) for c in centres)[:, None] * np.asarray(d)

    above_eye = [(p[:, 1] > EYE_CENTRES[0, 1] - 0.001)[:, None] * _mask(p, lid, 0.008)[:, None]
                 for lid in lids]
    lids_down = (above_eye[0] + above_eye[1]) * np.array([0, -0.0135, 0.003])
    fields = {
        "smile": corner_move(0.005, 0.008, -0.003) + region(cheeks, 0.012, [0, 0.002, 0.001]),
        "frown": corner_move(0.001, -0.008, -0.001),
        "lips_round": region([upper_lip, lower_lip], 0.012, [0, 0, 0.006]) + corner_move(-0.008, 0, 0.002),
        "lip_stretch": corner_move(0.008, -0.002, -0.002, r=0.013),
        "upper_lip_raise": upper * region([upper_lip], 0.01, [0, 0.004, 0.001]),
        "lower_lip_depress": lower * region([lower_lip], 0.01, [0, -0.005, 0.001]),
        "lips_press": (upper * region([upper_lip], 0.009, [0, -0.0012, -0.001])
                       + lower * region([lower_lip], 0.009, [0, 0.0012, -0.001])),
        "cheek_raise": region(cheeks, 0.013, [0, 0.004, 0.002]),
        "brow_raise": region(brows, 0.016, [0, 0.007, 0.001]),
        "brow_lower": region(brows, 0.014, [0, -0.005, 0.001]) - 0.003 * sign_x * region(inner_brows, 0.01, [1, 0, 0]),
        "brow_inner_up": region(inner_brows, 0.011, [0, 0.009, 0.001]),
        "eyelids_close": lids_down,
        "eyes_wide": -0.3 * lids_down,
        "nose_wrinkle": region([np.array([0, -0.01, zf(0, -0.01)])], 0.012, [0, 0.003, -0.002])
        + upper * region([upper_lip], 0.011, [0, 0.003, 0.0]),
        "smile_left": corner_move(0.004, 0.007, -0.003, sides=(0,)),
        "smile_right": corner_move(0.004, 0.007, -0.003, sides=(1,)),
    }
    return np.stack([fields[name] for name in EXPRESSIONS], -1)


def build_demo_head() -> DemoHead:
    """Deterministically build the demo head's FLAME-layout arrays."""
    head, head_f = _head_surface()
    neck, neck_f = _tube(-0.045, -0.165, (0.05, 0.052), -0.012)
    eyes = []
    for ex, ey in EYE_CENTRES:
        centre = np.array([ex, ey, front_surface_z(ex, ey, head) - EYEBALL_RADIUS + 0.003])
        eyes.append((centre, *_sphere(centre, np.full(3, EYEBALL_RADIUS), 12, 20)))
    z_mouth = front_surface_z(0, MOUTH_Y, head)
    cavity_c = np.array([0, MOUTH_Y - 0.004, z_mouth - 0.026])
    cavity, cavity_f = _sphere(cavity_c, np.array([0.023, 0.016, 0.021]), 12, 24)

    pieces = [(head, head_f), (neck, neck_f), eyes[0][1:], eyes[1][1:], (cavity, cavity_f)]
    verts, faces, vpart, fpart, base = [], [], [], [], 0
    for i, (v, f) in enumerate(pieces):
        verts.append(v)
        faces.append(f + base)
        vpart.append(np.full(len(v), i))
        fpart.append(np.full(len(f), i))
        base += len(v)
    v = np.concatenate(verts)
    vpart, fpart = np.concatenate(vpart), np.concatenate(fpart)

    # Skinning: the lower face, chin and lower half of the cavity follow the jaw; the split is
    # sharp between the lips and soft across the cheeks, so only the lip line opens.
    x, y, z = v.T
    soft = 0.0006 + 0.02 * _smoothstep(MOUTH_HALF_WIDTH - 0.004, MOUTH_HALF_WIDTH + 0.02, np.abs(x))
    jaw = _smoothstep(-soft, soft, MOUTH_Y - y) * _smoothstep(-0.045, 0.02, z) * _smoothstep(-0.13, -0.1, y)
    jaw = np.where(vpart == PARTS.index("cavity"), _smoothstep(cavity_c[1] + 0.012, cavity_c[1] - 0.012, y), jaw)
    jaw = np.where(vpart == PARTS.index("neck"), 0.0, jaw)
    neck_w = np.where(vpart == PARTS.index("neck"), _smoothstep(-0.14, -0.09, y), 1.0)
    weights = np.zeros((len(v), 5))
    weights[:, 0] = 1 - neck_w
    weights[:, 1] = neck_w * (1 - jaw)
    weights[:, 2] = neck_w * jaw
    for k, part in ((3, "eyeball_left"), (4, "eyeball_right")):
        sel = vpart == PARTS.index(part)
        weights[sel] = 0
        weights[sel, k] = 1

    joints = [np.array([0, -0.15, -0.012]), np.array([0, -0.075, -0.015]),
              np.array([0, -0.028, -0.01]), eyes[0][0], eyes[1][0]]
    J_regressor = np.zeros((5, len(v)))
    near_sets = [vpart == PARTS.index("neck")] * 3 + [vpart == PARTS.index(p) for p in ("eyeball_left", "eyeball_right")]
    for j, (target, sel) in enumerate(zip(joints, near_sets)):
        J_regressor[j, sel] = _affine_regressor(v[sel], target)

    shapedirs = np.zeros((len(v), 3, N_SHAPE + N_EXPR))
    centred = v - np.array([0, -0.02, 0])
    shapedirs[:, :, 0] = centred * np.array([1, 0, 0]) * 0.2    # head width
    shapedirs[:, :, 1] = centred * np.array([0, 1, 0]) * 0.2    # head height
    shapedirs[:, :, 2] = centred * np.array([0, 0, 1]) * 0.2    # head depth
    face = vpart == PARTS.index("head")
    shapedirs[face, :, N_SHAPE:N_SHAPE + len(EXPRESSIONS)] = _expression_dirs(v[face], head, jaw[face])

    arrays = {
        "v_template": v.astype(np.float32),
        "f": np.concatenate(faces).astype(np.int64),
        "shapedirs": shapedirs.astype(np.float32),
        "posedirs": np.zeros((len(v), 3, 36), np.float32),
        "J_regressor": J_regressor.astype(np.float32),
        "weights": weights.astype(np.float32),
        "kintree_table": np.array([[-1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64),
    }
    return DemoHead(arrays, vpart, fpart)


def surface_regions(points: np.ndarray, part: np.ndarray) -> np.ndarray:
    """Label rest-pose surface points for painting: one of REGIONS per point.

    `part` is the mesh part (index into PARTS) each point lies on."""
    x, y, z = points.T
    labels = np.full(len(points), REGIONS.index("skin"))
    head = part == PARTS.index("head")
    azimuth_front = z / np.maximum(np.linalg.norm(points[:, [0, 2]], axis=1), 1e-9)
    hairline = -0.045 + 0.113 * _smoothstep(0.2, 0.85, azimuth_front)
    hairline += 0.006 * np.cos(x / 0.02)                      # a soft widow's peak
    labels[head & (y > hairline)] = REGIONS.index("hair")
    for ex, ey in EYE_CENTRES:
        arc = 0.043 + 0.006 * (1 - ((np.abs(x) - 0.031) / 0.02) ** 2)
        brow = head & (np.abs(x - ex) < 0.021) & (np.abs(y - arc) < 0.0032) & (z > 0)
        labels[brow] = REGIONS.index("brow")
        hole = head & (((x - ex) / EYE_HALF[0]) ** 2 + ((y - ey) / EYE_HALF[1]) ** 2 < 1) & (z > 0)
        labels[hole] = REGIONS.index("opening")
    u = np.clip(1 - (x / (MOUTH_HALF_WIDTH + 0.002)) ** 2, 0, None)
    lips = head & (z > 0) & (y < MOUTH_Y + 0.0085 * u ** 0.6) & (y > MOUTH_Y - 0.0105 * u ** 0.7)
    labels[lips] = REGIONS.index("lips")
    gap = head & (z > 0) & (np.abs(x) < MOUTH_HALF_WIDTH) & (np.abs(y - MOUTH_Y) < 0.0008)
    labels[gap] = REGIONS.index("opening")
    nostril = head & (np.hypot(np.abs(x) - 0.0075, (y + 0.039) * 1.6) < 0.0032) & (z > 0)
    labels[nostril] = REGIONS.index("nostril")
    for k in ("eyeball_left", "eyeball_right"):
        labels[part == PARTS.index(k)] = REGIONS.index("eyeball")
    labels[part == PARTS.index("cavity")] = REGIONS.index("mouth")
    return labels

