"""EWA projection of 3D Gaussians to the image, the same math as gsplat 1.5's classic mode.

Two details follow gsplat's CUDA kernels rather than textbook EWA, so the backends agree:
the Jacobian is evaluated at the mean clamped to 1.3× the field of view, and the screen
radius is per axis, 3.33σ shrunk to where the alpha falls under 1/255 for that opacity.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .rotations import quat_to_rotmat

EPS2D = 0.3
NEAR_PLANE = 0.01
ALPHA_MIN = 1.0 / 255.0
MAX_EXTENT = 3.33


@dataclass
class Projected:
    """Screen-space Gaussians. conics = (a, b, c) of the inverse 2D covariance [[a, b], [b, c]];
    radii [N, 2] are zero for Gaussians that are culled."""

    means2d: Tensor
    conics: Tensor
    depths: Tensor
    radii: Tensor


def covariance_3d(quats: Tensor, scales: Tensor) -> Tensor:
    """Σ = R S Sᵀ Rᵀ [N,3,3]."""
    M = quat_to_rotmat(quats) * scales[..., None, :]
    return M @ M.transpose(-1, -2)


def project(means: Tensor, quats: Tensor, scales: Tensor, viewmat: Tensor, K: Tensor,
            width: int, height: int, opacities: Tensor | None = None) -> Projected:
    """Project world Gaussians [N,·] through one pinhole camera."""
    R, t = viewmat[:3, :3].to(means), viewmat[:3, 3].to(means)
    K = K.to(means)
    mc = means @ R.T + t
    cov_c = R @ covariance_3d(quats, scales) @ R.T
    tx, ty, tz = mc.unbind(-1)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    lim_x_pos = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    lim_x_neg = cx / fx + 0.3 * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_y_neg = cy / fy + 0.3 * (0.5 * height / fy)
    safe_z = torch.where(tz.abs() > 1e-12, tz, torch.full_like(tz, 1e-12))
    jx = safe_z * torch.clamp(tx / safe_z, -lim_x_neg, lim_x_pos)
    jy = safe_z * torch.clamp(ty / safe_z, -lim_y_neg, lim_y_pos)
    zero = torch.zeros_like(tz)
    J = torch.stack([fx / safe_z, zero, -fx * jx / safe_z ** 2,
                     zero, fy / safe_z, -fy * jy / safe_z ** 2], dim=-1).reshape(-1, 2, 3)
    cov2d = J @ cov_c @ J.transpose(-1, -2) + EPS2D * torch.eye(2, dtype=means.dtype, device=means.device)
    a, b, c = cov2d[:, 0, 0], 0.5 * (cov2d[:, 0, 1] + cov2d[:, 1, 0]), cov2d[:, 1, 1]
    det = a * c - b * b
    means2d = torch.stack([fx * tx / safe_z + cx, fy * ty / safe_z + cy], dim=-1)
    conics = torch.stack([c, -b, a], dim=-1) / det.clamp(min=1e-10)[:, None]

    extent = torch.full_like(tz, MAX_EXTENT)
    if opacities is not None:
        ratio = (opacities.to(means) / ALPHA_MIN).clamp(min=1.0)
        extent = torch.minimum(extent, torch.sqrt(2.0 * torch.log(ratio)))
    radii = torch.ceil(extent[:, None] * torch.sqrt(torch.stack([a, c], dim=-1).clamp(min=0)))
    visible = (det > 0) & (tz > NEAR_PLANE)
    if opacities is not None:
        visible &= opacities.to(means) >= ALPHA_MIN
    inside = ((means2d + radii > 0) & (means2d - radii < torch.tensor([width, height]).to(means))).all(-1)
    radii = torch.where((visible & inside)[:, None], radii, torch.zeros_like(radii))
    return Projected(means2d, conics, tz, radii.to(torch.int32))
