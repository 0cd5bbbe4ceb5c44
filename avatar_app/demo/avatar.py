"""Paint a GaussianAvatars-layout avatar onto the demo head (part of `avatar build-demo`).

Gaussians are sampled on the rest-pose triangles, coloured by facial region with baked
key-light shading (as a captured avatar has its lighting baked in), flattened along the
triangle normal, and stored in each triangle's local frame exactly as GaussianAvatars does.
"""
from __future__ import annotations

import numpy as np
import torch

from avatar_app.demo.head import MOUTH_Y, PARTS, REGIONS, DemoHead, surface_regions
from renderer.binding import triangle_frames
from renderer.gaussians import GaussianSet, rgb_to_sh0
from renderer.sh import C1

GAUSSIANS_PER_M2 = 2.6e5
REGION_COLOURS = {            # linear-ish RGB before shading
    "skin": (0.86, 0.66, 0.54), "hair": (0.20, 0.12, 0.075), "brow": (0.17, 0.10, 0.06),
    "lips": (0.70, 0.30, 0.32), "nostril": (0.30, 0.14, 0.12), "eyeball": (0.93, 0.92, 0.9),
    "mouth": (0.28, 0.07, 0.08),
}
IRIS, PUPIL, TEETH, TONGUE = (0.25, 0.42, 0.55), (0.03, 0.03, 0.04), (0.93, 0.91, 0.85), (0.62, 0.28, 0.28)
KEY_LIGHT = np.array([0.45, 0.55, 0.7]) / np.linalg.norm([0.45, 0.55, 0.7])


def _sample_points(tri: np.ndarray, rng: np.random.Generator, counts: np.ndarray):
    owner = np.repeat(np.arange(len(tri)), counts)
    r1, r2 = rng.random(len(owner)), rng.random(len(owner))
    s = np.sqrt(r1)
    bary = np.stack([1 - s, s * (1 - r2), s * r2], -1)
    return owner, np.einsum("nk,nkd->nd", bary, tri[owner])


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
    mouth = labels == REGIONS.index("mouth")
    front = z > cavity_centre[2] + 0.012
    upper_teeth = (y > MOUTH_Y + 0.001) & (y < MOUTH_Y + 0.0075)
    lower_teeth = (y < MOUTH_Y - 0.003) & (y > MOUTH_Y - 0.0085)
    rgb[mouth & (y < cavity_centre[1] - 0.009)] = TONGUE
    rgb[mouth & front & (upper_teeth | lower_teeth) & (np.abs(x) < 0.016)] = TEETH
    hair = labels == REGIONS.index("hair")
    rgb[hair] *= 1 + 0.35 * rng.standard_normal(hair.sum())[:, None].clip(-1.5, 1.5)
    rgb *= 1 + 0.025 * rng.standard_normal((len(rgb), 1))
    lit = ~np.isin(labels, [REGIONS.index("mouth")])
    shade = 0.62 + 0.48 * np.clip(normals @ KEY_LIGHT, 0, 1) - 0.12 * np.clip(-normals[:, 1], 0, 1)
    rgb[lit] *= shade[lit, None]
    return rgb.clip(0, 1)


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
    density = np.where((face_label == REGIONS.index("opening")) | seam, 0.0, GAUSSIANS_PER_M2)
    density = np.where(face_label == REGIONS.index("mouth"), 0.35 * GAUSSIANS_PER_M2, density)
    counts = rng.poisson(area * density)
    counts[(counts == 0) & (density > 0)] = 1
    owner, points = _sample_points(tri, rng, counts)

    R, k, c = (t.double().numpy() for t in triangle_frames(torch.from_numpy(v), torch.from_numpy(f)))
    R, k, c = R[owner], k[owner], c[owner]
    normals = R[:, :, 1]
    part = head.face_part[owner]
    labels = surface_regions(points, part)
    labels = np.where(labels == REGIONS.index("opening"), face_label[owner], labels)
    eyes = [v[head.vertex_part == PARTS.index(p)].mean(0) for p in ("eyeball_left", "eyeball_right")]
    cavity = v[head.vertex_part == PARTS.index("cavity")].mean(0)
    rgb = _colours(points, normals, labels, part, np.array(eyes), cavity, rng)

    spacing = np.sqrt(area[owner] / np.maximum(counts[owner], 1))
    sigma = np.stack([0.9 * spacing, np.full_like(spacing, 0.00035), 0.9 * spacing], -1)
    hair = labels == REGIONS.index("hair")
    sigma[hair] *= np.array([1.8, 1.6, 0.55])
    theta = rng.uniform(0, np.pi, len(points))                    # spin about the normal (local y)
    theta[hair] = 0.5 * np.pi + 0.25 * rng.standard_normal(hair.sum())
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
