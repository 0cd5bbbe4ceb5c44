"""The procedural demo head: a stylised head in the FLAME *file layout*, made by code.

It stands in for FLAME (whose licence forbids shipping it) so a new user sees a talking head
with no downloads. Same keys and conventions as FLAME: 5 joints (root, neck, jaw, left eye,
right eye), +y up, face toward +z, 300 shape + 100 expression columns (only the first few
carry motion), linear blend skinning. Parts: the head surface (a lat-long sphere shaped into
a head, with a lip line where the jaw splits), a neck flaring into a shoulder yoke, two eyeballs
on the eye joints, two ears, and a mouth interior (a cavity open toward two rows of teeth and a
tongue). `regions` tells which part of the surface a point is (skin, hair, lips…)
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
PARTS = ("head", "neck", "eyeball_left", "eyeball_right", "cavity", "ear_left", "ear_right",
         "teeth_upper", "teeth_lower", "tongue")
REGIONS = ("skin", "hair", "brow", "lips", "opening", "nostril", "eyeball", "mouth")  # see surface_regions

# Expression components that carry motion (the other expression columns are zero).
# Each is one FACS-like action (see _expression_dirs); lips_round/lips_press are speech's.
EXPRESSIONS = ("smile", "frown", "lips_round", "lip_stretch", "upper_lip_raise",
               "lower_lip_depress", "lips_press", "cheek_raise", "brow_outer_up", "brow_lower",
               "brow_inner_up", "eyelids_close", "eyes_wide", "nose_wrinkle",
               "dimple_left", "lower_lid_raise", "lips_tighten")


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
    crown = rows * cols                  # a pole closes the top ring, so no bald spot shows
    ring = np.arange(cols) + crown - cols
    cap = np.stack([np.full(cols, crown), ring, np.roll(ring, -1)], -1)
    verts = np.concatenate([np.stack([x, y, z], -1).reshape(-1, 3), [[0, HEAD_RADII[1], 0]]])
    return verts, np.concatenate([_grid_faces(rows, cols), cap])


def _bust(y_top: float, y_bottom: float, rows: int = 22, cols: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """The neck, a tube that flares below into a shoulder yoke (trapezius slope, then the
    deltoids) closed by a flat base far below the face; the painter keeps the base's edge crisp."""
    ys = np.linspace(y_bottom, y_top, rows)
    t = _smoothstep(-0.125, -0.215, ys)[:, None]
    rx, rz = 0.049 + 0.125 * t, 0.05 + 0.03 * t
    zc, power = -0.012 - 0.006 * t, 2 / (2 + 1.2 * t)      # superellipse: round neck, boxier chest
    lo = np.linspace(-np.pi, np.pi, cols, endpoint=False)[None]
    s, c = np.sin(lo), np.cos(lo)
    x, z = rx * np.sign(s) * np.abs(s) ** power, zc + rz * np.sign(c) * np.abs(c) ** power
    verts = np.stack([x, np.broadcast_to(ys[:, None], x.shape), z], -1).reshape(-1, 3)
    ring = np.arange(cols)                # a flat base closes the bottom ring
    base = np.stack([np.full(cols, rows * cols), np.roll(ring, -1), ring], -1)
    return np.concatenate([verts, [[0, y_bottom, float(zc[0, 0])]]]), np.concatenate([_grid_faces(rows, cols), base])


def _ear(side: int, rows: int = 14, cols: int = 22) -> tuple[np.ndarray, np.ndarray]:
    """A simple ear: a flattened ellipsoid whose outer face is hollowed into a bowl (the concha
    inside a rim), tilted back and flared out at its rear edge, half sunk into the head's side."""
    verts, faces = _sphere(np.zeros(3), np.array([0.0065, 0.03, 0.018]), rows, cols)
    n, u, w = verts.T
    bowl = np.clip(1 - (u / 0.026) ** 2 - (w / 0.0145) ** 2, 0, None)
    n = np.where(n > 0, n - 0.0095 * bowl ** 0.7, n)
    tilt, flare = np.radians(14), np.radians(30)       # top leans back; rear edge stands out
    u, w = u * np.cos(tilt) + w * np.sin(tilt), w * np.cos(tilt) - u * np.sin(tilt)
    n, w = n * np.cos(flare) - w * np.sin(flare), w * np.cos(flare) + n * np.sin(flare)
    verts = np.stack([side * (0.08 + n), 0.004 + u, -0.012 + w], -1)
    return verts, (faces if side > 0 else faces[:, ::-1])


def _arch(x: np.ndarray, front_z: float, half_width: float, depth: float) -> np.ndarray:
    """z of a dental arch (an ellipse through the incisors) at x; +inf beyond its ends."""
    inside = np.abs(x) < half_width
    return np.where(inside, front_z - depth * (1 - np.sqrt(np.clip(1 - (x / half_width) ** 2, 0, 1))), np.inf)


TEETH_ARCH = (0.0215, 0.016)   # half width, depth (m) of the upper arch; the lower one sits 2 mm behind
TEETH_ROWS = {"teeth_upper": (-0.0035, 0.0075), "teeth_lower": (-0.0012, -0.0115)}  # edge, gum: y − MOUTH_Y


def _teeth_row(front_z: float, y_edge: float, y_root: float, rows: int = 6,
               cols: int = 29) -> tuple[np.ndarray, np.ndarray]:
    """One row of teeth as a curved band along the dental arch, from the biting edge (which
    rises slightly toward the back, the smile line) to the gum."""
    a, b = TEETH_ARCH
    phi = np.linspace(-1.15, 1.15, cols)
    x = a * np.sin(phi)
    rise = 0.0018 * np.sin(phi) ** 2 * np.sign(y_root - y_edge)
    ys = np.linspace(0, 1, rows)[:, None] * (y_root - y_edge - rise) + y_edge + rise
    verts = np.stack([np.broadcast_to(x, ys.shape), ys, np.broadcast_to(_arch(x, front_z, a, b), ys.shape)], -1)
    faces = _grid_faces(rows, cols, wrap=False)
    return verts.reshape(-1, 3), (faces[:, ::-1] if y_root > y_edge else faces)   # normals face out


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


def face_points(head: np.ndarray) -> dict[str, np.ndarray]:
    """Named points on the face's front surface (x, y from the head's layout, z on `head`'s
    surface): where the expression components act, and the demo's action-unit landmarks
    (avatar_app/demo/landmarks.py). Sided names end in _left (+x) and _right."""
    ym, mw = MOUTH_Y, MOUTH_HALF_WIDTH
    xy = {"upper_lip": (0.0, ym + 0.006), "lower_lip": (0.0, ym - 0.007), "chin": (0.0, -0.088),
          "nose_bridge": (0.0, -0.008)}
    for side, s, (ex, ey) in (("left", 1, EYE_CENTRES[0]), ("right", -1, EYE_CENTRES[1])):
        xy |= {f"lip_corner_{side}": (s * mw, ym + 0.0008), f"brow_inner_{side}": (s * 0.015, 0.045),
               f"brow_outer_{side}": (s * 0.045, 0.046), f"upper_lid_{side}": (ex, ey + EYE_HALF[1]),
               f"lower_lid_{side}": (ex, ey - EYE_HALF[1]), f"cheek_{side}": (s * 0.036, -0.004),
               f"cheek_low_{side}": (s * 0.038, -0.02), f"nose_wing_{side}": (s * 0.011, -0.034)}
    return {name: np.array([x, y, front_surface_z(x, y, head)]) for name, (x, y) in xy.items()}


def _expression_dirs(p: np.ndarray, head: np.ndarray, jaw_w: np.ndarray) -> np.ndarray:
    """(V, 3, len(EXPRESSIONS)) displacement fields of the expression components, at unit weight.

    Each emotion-side component is one FACS action unit (Ekman & Friesen 1978) at a size typical
    of a full real movement (mm at its landmark): smile AU12 (corners 8 up, 2.5 out), cheek_raise
    AU6 (4, pushing the lower lids 2 up), frown AU15 (7 down), brow_inner_up AU1 (8), brow_outer_up
    AU2 (7), brow_lower AU4 (6 down, 4 together), eyes_wide AU5 (upper lids 3.5 up), lower_lid_raise AU7 (3),
    nose_wrinkle AU9 (4), upper_lip_raise AU10 (4), lower_lip_depress AU16 (5), lip_stretch
    AU20 (8 out), lips_tighten AU23 (lips 1.5 each toward the other), dimple_left AU14 on the
    left only; eyelids_close closes the lids; lips_round, lips_press serve speech.
    """
    at = face_points(head)
    upper = (1 - jaw_w)[:, None]
    lower = jaw_w[:, None]
    sign_x = np.sign(p[:, 0])[:, None]
    sides = ("left", "right")
    corners = [at[f"lip_corner_{s}"] for s in sides]

    def corner_move(dx: float, dy: float, dz: float, on: tuple[int, ...] = (0, 1), r: float = 0.011) -> np.ndarray:
        m = sum(_mask(p, corners[s], r) for s in on)[:, None]
        return m * np.stack([dx * sign_x[:, 0], np.full(len(p), dy), np.full(len(p), dz)], -1)

    def region(names: list[str], r: float, d: tuple[float, float, float]) -> np.ndarray:
        return sum(_mask(p, at[n], r) for n in names)[:, None] * np.asarray(d)

    def both(name: str) -> list[str]:
        return [f"{name}_{s}" for s in sides]

    def lid(name: str, above: bool, r: float = 0.008) -> np.ndarray:
        """Mask of one lid's skin: above (or below) the eye centres' height near `name`'s points."""
        side = (p[:, 1] > EYE_CENTRES[0, 1] - 0.001) if above else (p[:, 1] < EYE_CENTRES[0, 1] + 0.001)
        return (side * sum(_mask(p, at[n], r) for n in both(name)))[:, None]

    lids_down = lid("upper_lid", True) * np.array([0, -0.0135, 0.003])
    # AU23 narrows the red of the lips without moving the lip line itself.
    off_line = _smoothstep(0.0008, 0.005, np.abs(p[:, 1] - MOUTH_Y))[:, None]
    fields = {
        "smile": corner_move(0.0025, 0.008, -0.002, r=0.012) + region(both("cheek_low"), 0.012, (0, 0.0015, 0.001)),
        "frown": corner_move(0.001, -0.007, -0.001),
        "lips_round": region(["upper_lip", "lower_lip"], 0.012, (0, 0, 0.006)) + corner_move(-0.008, 0, 0.002),
        "lip_stretch": corner_move(0.008, -0.002, -0.002, r=0.013),
        "upper_lip_raise": upper * region(["upper_lip"], 0.01, (0, 0.004, 0.001)),
        "lower_lip_depress": lower * region(["lower_lip"], 0.01, (0, -0.005, 0.001)),
        "lips_press": (upper * region(["upper_lip"], 0.009, (0, -0.0012, -0.001))
                       + lower * region(["lower_lip"], 0.009, (0, 0.0012, -0.001))),
        "cheek_raise": (region(both("cheek"), 0.013, (0, 0.004, 0.0015))
                        + lid("lower_lid", False, 0.007) * np.array([0, 0.002, 0.0005])),
        "brow_outer_up": region(both("brow_outer"), 0.01, (0, 0.007, 0.001)),
        "brow_lower": (region(both("brow_inner"), 0.011, (0, -0.006, 0.0005))
                       - 0.004 * sign_x * region(both("brow_inner"), 0.011, (1, 0, 0))
                       + region(both("brow_outer"), 0.012, (0, -0.002, 0))),
        "brow_inner_up": region(both("brow_inner"), 0.01, (0, 0.008, 0.001)),
        "eyelids_close": lids_down,
        "eyes_wide": lid("upper_lid", True) * np.array([0, 0.0035, 0.0005]),
        "nose_wrinkle": (region(both("nose_wing"), 0.009, (0, 0.004, 0.0005))
                         + region(["nose_bridge"], 0.01, (0, 0.002, -0.001))
                         + upper * region(["upper_lip"], 0.011, (0, 0.0015, 0.0))),
        "dimple_left": (corner_move(0.003, 0.005, -0.004, on=(0,))
                        + region(["cheek_low_left"], 0.008, (0, 0.001, -0.0015))),
        "lower_lid_raise": lid("lower_lid", False, 0.007) * np.array([0, 0.003, 0.0005]),
        "lips_tighten": off_line * (upper * region(["upper_lip"], 0.007, (0, -0.0015, -0.0005))
                                    + lower * region(["lower_lip"], 0.007, (0, 0.0015, -0.0005))),
    }
    return np.stack([fields[name] for name in EXPRESSIONS], -1)


def build_demo_head() -> DemoHead:
    """Deterministically build the demo head's FLAME-layout arrays."""
    head, head_f = _head_surface()
    neck, neck_f = _bust(-0.045, -0.25)
    eyes = []
    for ex, ey in EYE_CENTRES:
        centre = np.array([ex, ey, front_surface_z(ex, ey, head) - EYEBALL_RADIUS + 0.003])
        eyes.append((centre, *_sphere(centre, np.full(3, EYEBALL_RADIUS), 12, 20)))
    z_mouth = front_surface_z(0, MOUTH_Y, head)
    teeth_z = z_mouth - 0.0065
    upper_teeth = _teeth_row(teeth_z, *(MOUTH_Y + np.array(TEETH_ROWS["teeth_upper"])))
    lower_teeth = _teeth_row(teeth_z - 0.002, *(MOUTH_Y + np.array(TEETH_ROWS["teeth_lower"])))
    tongue = _sphere(np.array([0, MOUTH_Y - 0.0105, z_mouth - 0.029]), np.array([0.017, 0.0055, 0.018]), 8, 20)
    # The cavity: a dark bowl behind the teeth, open in front of the arch so it never covers them.
    cavity_c = np.array([0, MOUTH_Y - 0.004, z_mouth - 0.03])
    cavity, cavity_f = _sphere(cavity_c, np.array([0.027, 0.019, 0.024]), 12, 24)
    centre_z = cavity[cavity_f].mean(1)
    cavity_f = cavity_f[centre_z[:, 2] < _arch(centre_z[:, 0], teeth_z - 0.003, *TEETH_ARCH)]

    pieces = [(head, head_f), (neck, neck_f), eyes[0][1:], eyes[1][1:], (cavity, cavity_f), _ear(1), _ear(-1),
              upper_teeth, lower_teeth, tongue]
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
    # The cavity opens evenly over its whole height, so no part of it stretches thin.
    jaw = np.where(vpart == PARTS.index("cavity"), np.clip((cavity_c[1] + 0.017 - y) / 0.034, 0, 1), jaw)
    jaw = np.where(np.isin(vpart, [PARTS.index(p) for p in ("neck", "ear_left", "ear_right", "teeth_upper")]), 0.0, jaw)
    jaw = np.where(np.isin(vpart, [PARTS.index("teeth_lower"), PARTS.index("tongue")]), 1.0, jaw)
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


def lip_depth(points: np.ndarray) -> np.ndarray:
    """How far (m, vertically) each point lies inside the lips' outline; negative outside. The
    painter blends lip and skin colour across 0 so the lip edge is smooth."""
    x, y = points[:, 0], points[:, 1]
    u = np.clip(1 - (x / (MOUTH_HALF_WIDTH + 0.002)) ** 2, 0, None)
    depth = np.minimum(MOUTH_Y + 0.0085 * u ** 0.6 - y, y - MOUTH_Y + 0.0105 * u ** 0.7)
    return np.where(u > 0, depth, -1.0)


def surface_regions(points: np.ndarray, part: np.ndarray) -> np.ndarray:
    """Label rest-pose surface points for painting: one of REGIONS per point.

    `part` is the mesh part (index into PARTS) each point lies on."""
    x, y, z = points.T
    labels = np.full(len(points), REGIONS.index("skin"))
    head = part == PARTS.index("head")
    azimuth_front = z / np.maximum(np.linalg.norm(points[:, [0, 2]], axis=1), 1e-9)
    hairline = -0.045 + 0.113 * _smoothstep(0.2, 0.85, azimuth_front)
    hairline += 0.006 * np.cos(x / 0.02)                      # a soft widow's peak
    hairline += 0.035 * np.exp(-((z + 0.008) / 0.018) ** 2) * _smoothstep(0.055, 0.07, np.abs(x))  # by the ears
    labels[head & (y > hairline)] = REGIONS.index("hair")
    for ex, ey in EYE_CENTRES:
        arc = 0.043 + 0.006 * (1 - ((np.abs(x) - 0.031) / 0.02) ** 2)
        brow = head & (np.abs(x - ex) < 0.021) & (np.abs(y - arc) < 0.0032) & (z > 0)
        labels[brow] = REGIONS.index("brow")
        hole = head & (((x - ex) / EYE_HALF[0]) ** 2 + ((y - ey) / EYE_HALF[1]) ** 2 < 1) & (z > 0)
        labels[hole] = REGIONS.index("opening")
    labels[head & (z > 0) & (lip_depth(points) > 0)] = REGIONS.index("lips")
    gap = head & (z > 0) & (np.abs(x) < MOUTH_HALF_WIDTH) & (np.abs(y - MOUTH_Y) < 0.0008)
    labels[gap] = REGIONS.index("opening")
    nostril = head & (np.hypot(np.abs(x) - 0.0075, (y + 0.039) * 1.6) < 0.0032) & (z > 0)
    labels[nostril] = REGIONS.index("nostril")
    for k in ("eyeball_left", "eyeball_right"):
        labels[part == PARTS.index(k)] = REGIONS.index("eyeball")
    labels[np.isin(part, [PARTS.index(p) for p in ("cavity", "teeth_upper", "teeth_lower", "tongue")])] = \
        REGIONS.index("mouth")
    return labels

