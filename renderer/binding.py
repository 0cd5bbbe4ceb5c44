"""Gaussians riding mesh triangles (GaussianAvatars binding, docs/architecture.md §Formats), batched over frames."""
from __future__ import annotations

import torch
from torch import Tensor

from common.errors import InputError

from .gaussians import GaussianSet
from .rotations import quat_multiply, rotmat_to_quat


def triangle_frames(vertices: Tensor, faces: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-triangle orientation R [..., F, 3, 3] (columns a0, a1=normal, a2), scale k and centre."""
    v0, v1, v2 = (vertices[..., faces[:, i], :] for i in range(3))
    e1, e2 = v1 - v0, v2 - v0
    a0 = torch.nn.functional.normalize(e1, dim=-1)
    a1 = torch.nn.functional.normalize(torch.cross(a0, e2, dim=-1), dim=-1)
    a2 = -torch.nn.functional.normalize(torch.cross(a1, a0, dim=-1), dim=-1)
    R = torch.stack([a0, a1, a2], dim=-1)
    k = (e1.norm(dim=-1) + (a2 * e2).sum(-1).abs()) / 2
    return R, k, (v0 + v1 + v2) / 3


def check_binding(gaussians: GaussianSet, num_faces: int, source: str) -> None:
    """Fail early, naming the avatar, when bindings point outside the mesh's faces (a negative
    index would silently wrap around in `bind`)."""
    if not len(gaussians):
        return
    low, top = int(gaussians.binding.min()), int(gaussians.binding.max())
    if low < 0:
        raise InputError(f"{source}: Gaussians are bound to triangle {low}; triangle indices start at 0")
    if top >= num_faces:
        raise InputError(f"{source}: Gaussians are bound to triangle {top}, but the mesh has only "
                         f"{num_faces} faces (is this the FLAME model the avatar was trained with?)")


def bind(gaussians: GaussianSet, vertices: Tensor, faces: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """World means, quats, scales [..., N, ·] of triangle-local Gaussians on posed meshes [..., V, 3]."""
    R, k, c = triangle_frames(vertices, faces)
    b = gaussians.binding
    R, k, c = R[..., b, :, :], k[..., b, None], c[..., b, :]
    means = k * (R @ gaussians.means[..., None])[..., 0] + c
    scales = gaussians.scales * k
    quats = quat_multiply(rotmat_to_quat(R), torch.nn.functional.normalize(gaussians.quats, dim=-1))
    return means, quats, scales
