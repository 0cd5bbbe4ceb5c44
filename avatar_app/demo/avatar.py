"""Paint a GaussianAvatars-layout avatar onto the demo head (part of `avatar build-demo`).

Gaussians are sampled on the rest-pose triangles, coloured by facial region with baked
key-light shading (as a captured avatar has its lighting baked in), flattened along the
triangle normal, and stored in each triangle's local frame exactly as GaussianAvatars does.
"""
from __future__ import annotations

import numpy as np
import torch

from avatar_app.demo.head import (
    HEAD_RADII,
    MOUTH_Y,
    PARTS,
    REGIONS,
    TEETH_ARCH,
    TEETH_ROWS,
    DemoHead,
    _smoothstep,
    lip_depth,
    surface_regions,
)
from renderer.binding import triangle_frames
from renderer.gaussians import GaussianSet, rgb_to_sh0
from renderer.sh import C1

GAUSSIANS_PER_M2 = 2.6e5
DENSITY_SCALE = {"teeth_upper": 6.0, "teeth_lower": 6.0, "tongue": 1.5, "cavity": 1.0, "ear_left": 1.5,
                 "ear_right": 1.5}   # relative to GAUSSIANS_PER_M2; fine detail where it is small
LIP_DENSITY, SHOULDER_DENSITY = 3.0, 0.12
RIM_STEP = 0.0008             # m between the splats along the lips' inner rim
BASE_BAND = 0.008             # m above the bust's flat base painted denser
REGION_COLOURS = {            # linear-ish RGB before shading
    "skin": (0.86, 0.66, 0.54), "hair": (0.20, 0.12, 0.075), "brow": (0.17, 0.10, 0.06),
    "lips": (0.70, 0.30, 0.32), "nostril": (0.30, 0.14, 0.12), "eyeball": (0.93, 0.92, 0.9),
    "mouth": (0.16, 0.04, 0.05),
}
IRIS, PUPIL, TEETH, TONGUE = (0.25, 0.42, 0.55), (0.03, 0.03, 0.04), (0.90, 0.87, 0.78), (0.66, 0.30, 0.30)
GUM = (0.72, 0.36, 0.38)
TOOTH_EDGES = {"teeth_upper": (0.0085, 0.015, 0.0225, 0.0295), "teeth_lower": (0.0055, 0.0115, 0.018, 0.025)}
KEY_LIGHT = np.array([0.45, 0.55, 0.7]) / np.linalg.norm([0.45, 0.55, 0.7])


def _sample_points(tri: np.ndarray, rng: np.random.Generator, counts: np.ndarray):
    owner = np.repeat(np.arange(len(tri)), counts)
    r1, r2 = rng.random(len(owner)), rng.random(len(owner))
    s = np.sqrt(r1)
    bary = np.stack([1 - s, s * (1 - r2), s * r2], -1)
    return owner, np.einsum("nk,nkd->nd", bary, tri[owner])


def _paint_mouth(rgb: np.ndarray, points: np.ndarray, normals: np.ndarray, part: np.ndarray,
                 cavity_centre: np.ndarray) -> None:
    """Mouth interior in place: a cavity darkening toward the throat, teeth in off-white with
    dark gaps between them, gums at their roots and shade toward the back, a tongue lit from above."""
    x, y, z = points.T
    back = _smoothstep(cavity_centre[2] - 0.02, cavity_centre[2] + 0.02, z)   # 0 at the throat, 1 in front
    cavity = part == PARTS.index("cavity")
    rgb[cavity] *= (0.35 + 0.65 * back[cavity])[:, None]
    for name, edges in TOOTH_EDGES.items():
        on = part == PARTS.index(name)
        arc = np.abs(TEETH_ARCH[0] * np.arcsin(np.clip(x[on] / TEETH_ARCH[0], -1, 1)))
        gap = np.min(np.abs(arc[:, None] - np.array((0.0, *edges))[None]), axis=1)
        edge, gum = TEETH_ROWS[name]
        from_edge = np.abs(y[on] - MOUTH_Y - edge)
        tone = (1 - 0.45 * np.exp(-(gap / 0.0006) ** 2)) * (1 - 0.5 * (arc / 0.03).clip(0, 1) ** 1.5)
        tone *= 0.9 + 0.1 * _smoothstep(0.0, 0.0012, from_edge)       # a slightly translucent biting edge
        colour = np.where((from_edge > abs(gum - edge) - 0.002)[:, None], GUM, TEETH)
        rgb[on] = colour * tone[:, None]
    tongue = part == PARTS.index("tongue")
    rgb[tongue] = np.array(TONGUE) * (0.45 + 0.35 * back[tongue] + 0.25 * normals[tongue, 1].clip(0, 1))[:, None]


def _colours(points: np.ndarray, normals: np.ndarray, labels: np.ndarray, part: np.ndarray,
             eye_centres: np.ndarray, cavity_centre: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rgb = np.array([REGION_COLOURS[REGIONS[i]] for i in labels], dtype=np.float64)
    x, y, z = points.T
    skin = labels == REGIONS.index("skin")
    blush = np.exp(-((np.abs(x) - 0.038) ** 2 + (y + 0.022) ** 2) / (2 * 0.013 ** 2)) * (z > 0)
    rgb[skin] += (blush[skin, None] * np.array([0.04, -0.06, -0.05]))
    for k, centre in enumerate(eye_centres):
        on_eye = part == PARTS.index(("eyeball_left", "eyeball_right")[k])
        d = points - centre
        angle = np.arccos(np.clip(d[:, 2] / np.linalg.norm(d, axis=1).clip(1e-9), -1, 1))
        rgb[on_eye & (angle < 0.42)] = IRIS
        rgb[on_eye & (angle < 0.19)] = PUPIL
    lip_mix = _smoothstep(-0.0008, 0.0008, lip_depth(points))[:, None]
    soft = np.isin(labels, [REGIONS.index("skin"), REGIONS.index("lips")]) & (part == PARTS.index("head")) & (z > 0)
    rgb[soft] = (1 - lip_mix[soft]) * rgb[soft] + lip_mix[soft] * np.array(REGION_COLOURS["lips"])
    for k in ("ear_left", "ear_right"):   # the hollow of the ear in shadow
        on_ear = part == PARTS.index(k)
        d = np.linalg.norm(points[on_ear] - points[on_ear].mean(0), axis=1)
        rgb[on_ear] *= 1 - 0.3 * np.exp(-(d / 0.011) ** 2)[:, None]
    _paint_mouth(rgb, points, normals, part, cavity_centre)
    hair = labels == REGIONS.index("hair")
    rgb[hair] *= 1 + 0.35 * rng.standard_normal(hair.sum())[:, None].clip(-1.5, 1.5)
    rgb *= 1 + 0.025 * rng.standard_normal((len(rgb), 1))
    lit = labels != REGIONS.index("mouth")
    shade = 0.62 + 0.48 * np.clip(normals @ KEY_LIGHT, 0, 1) - 0.12 * np.clip(-normals[:, 1], 0, 1)
    rgb[lit] *= shade[lit, None]
    return rgb.clip(0, 1)


def _rim(v: np.ndarray, f: np.ndarray, seam: np.ndarray, painted: np.ndarray,
         step: float = RIM_STEP) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The lips' inner rim: points every `step` along the edges that painted triangles share with
    (unpainted) seam triangles, set a little into the painted triangle; with each point its
    triangle and the edge's unit direction."""
    edges = np.sort(np.stack([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], 1), axis=2)
    on_seam = {tuple(e) for e in edges[seam].reshape(-1, 2).tolist()}
    owner, points, along = [], [], []
    for t in np.flatnonzero(painted & np.isin(f, np.unique(f[seam])).any(1)):
        for a, b in edges[t].tolist():
            if (a, b) not in on_seam:
                continue
            d = v[b] - v[a]
            third = v[[i for i in f[t] if i not in (a, b)][0]] - v[a]
            inward = third - d * (third @ d) / (d @ d)
            n = max(2, int(np.ceil(np.linalg.norm(d) / step)))
            s = (np.arange(n) + 0.5) / n
            points.append(v[a] + s[:, None] * d + 0.15 * step * inward / np.linalg.norm(inward))
            owner.append(np.full(n, t))
            along.append(np.tile(d / np.linalg.norm(d), (n, 1)))
    if not owner:
        return np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 3))
    return np.concatenate(owner), np.concatenate(points), np.concatenate(along)


def paint_avatar(head: DemoHead, seed: int = 0) -> GaussianSet:
    """Sample, colour and bind Gaussians to the demo head's rest mesh (triangle-local form)."""
    rng = np.random.default_rng(seed)
    v, f = head.arrays["v_template"].astype(np.float64), head.arrays["f"]
    tri = v[f]
    centroid = tri.mean(1)
    face_label = surface_regions(centroid, head.face_part)
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    # No Gaussians in the eye and mouth openings, nor on seam triangles whose corners follow
    # different joints (the lip line): those stretch when the jaw opens.
    jaw = head.arrays["weights"][:, 2][f]
    seam = jaw.max(1) - jaw.min(1) > 0.5
    scale = np.array([DENSITY_SCALE.get(name, 1.0) for name in PARTS])[head.face_part]
    near_lips = (head.face_part == PARTS.index("head")) & (centroid[:, 2] > 0) & (lip_depth(centroid) > -0.004)
    scale = np.where(near_lips, LIP_DENSITY, scale)
    neck = head.face_part == PARTS.index("neck")
    base_y = v[head.vertex_part == PARTS.index("neck"), 1].min()
    scale = np.where(neck & (centroid[:, 1] < -0.11), SHOULDER_DENSITY, scale)
    band = neck & (centroid[:, 1] < base_y + BASE_BAND) & (centroid[:, 1] > base_y + 1e-6)
    scale = np.where(band, 0.6, scale)   # smaller splats along the base's edge
    # Nor on the neck inside the skull: only the open mouth would show it.
    inside = neck & (np.sum((centroid / HEAD_RADII) ** 2, axis=1) < 0.85)
    density = np.where((face_label == REGIONS.index("opening")) | seam | inside, 0.0, GAUSSIANS_PER_M2 * scale)
    counts = rng.poisson(area * density)
    counts[(counts == 0) & (density > 0)] = 1
    owner, points = _sample_points(tri, rng, counts)
    # The lips' inner rim gets a row of small splats along its edge, so the opening's outline is
    # a clean line rather than the ragged border of randomly placed discs.
    rim_owner, rim_points, rim_along = _rim(v, f, seam, (density > 0) & (head.face_part == PARTS.index("head")))
    owner, points = np.concatenate([owner, rim_owner]), np.concatenate([points, rim_points])
    rim = np.arange(len(owner)) >= len(owner) - len(rim_owner)
    near_rim = np.isin(owner, rim_owner) & ~rim

    R, k, c = (t.double().numpy() for t in triangle_frames(torch.from_numpy(v), torch.from_numpy(f)))
    R, k, c = R[owner], k[owner], c[owner]
    normals = R[:, :, 1]
    part = head.face_part[owner]
    labels = surface_regions(points, part)
    labels = np.where(labels == REGIONS.index("opening"), face_label[owner], labels)
    eyes = [v[head.vertex_part == PARTS.index(p)].mean(0) for p in ("eyeball_left", "eyeball_right")]
    cavity = v[head.vertex_part == PARTS.index("cavity")].mean(0)
    rgb = _colours(points, normals, labels, part, np.array(eyes), cavity, rng)
    rgb[rim] *= 0.6                                               # the shadowed line where the lips meet

    # Flat discs in the surface, sized to their triangle's share of area (denser, so smaller, by
    # the lips: with the blended lip colour their edge stays smooth).
    spacing = np.sqrt(area[owner] / np.maximum(counts[owner], 1))
    sigma = np.stack([0.9 * spacing, np.full_like(spacing, 0.00035), 0.9 * spacing], -1)
    hair = labels == REGIONS.index("hair")
    sigma[hair] *= np.array([1.8, 1.6, 0.55])
    sigma[part == PARTS.index("cavity")] *= np.array([1.6, 1.0, 1.6])   # overlapping, so it stays closed when stretched
    theta = rng.uniform(0, np.pi, len(points))                    # spin about the normal (local y)
    theta[hair] = 0.5 * np.pi + 0.25 * rng.standard_normal(hair.sum())
    sigma[near_rim, ::2] = np.minimum(sigma[near_rim, ::2], RIM_STEP)     # no disc overhangs the rim much
    sigma[labels == REGIONS.index("lips"), ::2] *= 0.75                    # a crisper lip outline
    # Nor the bust's base edge: discs shrink to their height above it (the base itself is flat).
    above_base = points[:, 1] - base_y
    edge = (part == PARTS.index("neck")) & (above_base > 1e-6)
    sigma[edge, ::2] = np.minimum(sigma[edge, ::2], np.maximum(0.5 * above_base[edge], 0.0004)[:, None])
    sigma[rim] = np.array([0.8 * RIM_STEP, 0.00035, 0.75 * RIM_STEP])   # meeting across the closed lips' slit
    # Rotation about the normal taking the splat's long local x onto the rim's direction.
    theta[rim] = np.arctan2(-np.einsum("nd,nd->n", rim_along, R[rim, :, 2]), np.einsum("nd,nd->n", rim_along, R[rim, :, 0]))
    quats = np.stack([np.cos(theta / 2), np.zeros_like(theta), np.sin(theta / 2), np.zeros_like(theta)], -1)

    local = np.einsum("nji,nj->ni", R, points - c) / k[:, None]
    local[:, 1] += np.where(hair, 0.0008, 0.0) / k
    opacity = np.where(hair, 0.92, 0.985)
    sh = np.zeros((len(points), 4, 3))
    sh[:, 0] = rgb_to_sh0(torch.from_numpy(rgb)).numpy()
    # A faint sheen toward the viewer: SH1 term = −0.04 · dir·n (dir from camera to Gaussian).
    sh[:, 1:, :] = (0.04 / C1 * np.stack([normals[:, 1], -normals[:, 2], normals[:, 0]], -1))[..., None]
    to32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    return GaussianSet(means=to32(local), quats=to32(quats), scales=to32(sigma / k[:, None]),
                       opacities=to32(opacity), sh=to32(sh), binding=torch.from_numpy(owner.astype(np.int64)))
