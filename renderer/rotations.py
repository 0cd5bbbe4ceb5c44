"""Quaternion helpers (wxyz, Hamilton) shared by binding and both backends."""
from __future__ import annotations

import torch
from torch import Tensor


def quat_to_rotmat(q: Tensor) -> Tensor:
    """Rotation matrices [..., 3, 3] from (not necessarily unit) wxyz quaternions [..., 4]."""
    w, x, y, z = torch.nn.functional.normalize(q, dim=-1).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).reshape(q.shape[:-1] + (3, 3))


def rotmat_to_quat(R: Tensor) -> Tensor:
    """Unit wxyz quaternions [..., 4] from rotation matrices, stable for any angle.

    Each of the four candidate formulas is exact where its pivot is large; we pick the
    candidate with the largest pivot per matrix (Shepperd's method).
    """
    m = R
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    pivots = torch.stack([trace, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], dim=-1)
    s = torch.sqrt(torch.clamp(1.0 + 2.0 * pivots - trace[..., None], min=1e-12))  # 2|q_i|
    candidates = torch.stack([
        torch.stack([s[..., 0] / 2, (m[..., 2, 1] - m[..., 1, 2]) / (2 * s[..., 0]),
                     (m[..., 0, 2] - m[..., 2, 0]) / (2 * s[..., 0]),
                     (m[..., 1, 0] - m[..., 0, 1]) / (2 * s[..., 0])], dim=-1),
        torch.stack([(m[..., 2, 1] - m[..., 1, 2]) / (2 * s[..., 1]), s[..., 1] / 2,
                     (m[..., 0, 1] + m[..., 1, 0]) / (2 * s[..., 1]),
                     (m[..., 0, 2] + m[..., 2, 0]) / (2 * s[..., 1])], dim=-1),
        torch.stack([(m[..., 0, 2] - m[..., 2, 0]) / (2 * s[..., 2]),
                     (m[..., 0, 1] + m[..., 1, 0]) / (2 * s[..., 2]), s[..., 2] / 2,
                     (m[..., 1, 2] + m[..., 2, 1]) / (2 * s[..., 2])], dim=-1),
        torch.stack([(m[..., 1, 0] - m[..., 0, 1]) / (2 * s[..., 3]),
                     (m[..., 0, 2] + m[..., 2, 0]) / (2 * s[..., 3]),
                     (m[..., 1, 2] + m[..., 2, 1]) / (2 * s[..., 3]), s[..., 3] / 2], dim=-1),
    ], dim=-2)
    best = pivots.argmax(dim=-1)
    q = torch.gather(candidates, -2, best[..., None, None].expand(best.shape + (1, 4)))[..., 0, :]
    return torch.nn.functional.normalize(q, dim=-1)


def quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product a ⊗ b of wxyz quaternions (rotation b first, then a)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], dim=-1)
