"""Gaussians riding mesh triangles (GaussianAvatars binding, docs/architecture.md §Formats), batched over frames.

`bind` gives world means, quaternions and scales (what gsplat takes). `bind_covariances` gives
what the CPU projection takes, world means and world covariances, without building
quaternions: with the triangle's frame (R, k, c) and the Gaussian's local covariance
Σ_l = R_l S² R_lᵀ (from its normalised quaternion and scales), Σ = k²·R Σ_l Rᵀ, which is what
bind's quaternion quat(R) ⊗ q_l and scales k·s give through `covariance_3d` (R is orthonormal;
on a degenerate triangle, whose frame is not, bind's quaternion is an arbitrary rotation and
this Σ the flattened one).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

from common.errors import InputError

from .gaussians import GaussianSet
from .projection import (
    _F,
    _HALF,
    _TINY_NORM,
    _U,
    _ZERO,
    CHUNK,
    _f32,
    _planar,
    kernel_threads,
    pack_covariances,
    packed_covariances,
    unpack_covariances,
)
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
    frame_quats = rotmat_to_quat(R)[..., b, :]  # one per triangle, then gathered: the same values
    R, k, c = R[..., b, :, :], k[..., b, None], c[..., b, :]
    means = k * (R @ gaussians.means[..., None])[..., 0] + c
    scales = gaussians.scales * k
    quats = quat_multiply(frame_quats, torch.nn.functional.normalize(gaussians.quats, dim=-1))
    return means, quats, scales


# The CPU kernels (see projection.py on layout and vectorisation): per mesh, the triangle frames
# are planar [13, F]: R row-major (planes 0–8, R[r][c] at 3r + c), k (9), centre (10–12).
_FRAME = 13
_THIRD = _F(1.0 / 3.0)


_PAD = 16  # floats added to each row of a block's planar scratch: rows a multiple of 4 KiB apart
           # share L1 sets (and 4K-alias loads against stores), which made the block loops 7× slower


@njit(nogil=True, cache=True, error_model="numpy")
def _corners_block(vertices, faces, corners):  # pragma: no cover - compiled
    """corners [9, ≥m]: v0, v1, v2 (xyz each) of the m triangles `faces` [3m] of one mesh [3V]."""
    m = faces.shape[0] // 3
    for d in range(9):
        corner, axis = d // 3, d % 3
        for j in range(m):
            corners[d, j] = vertices[3 * faces[3 * j + corner] + axis]


@njit(nogil=True, cache=True, error_model="numpy")
def _edges(corners, j):  # pragma: no cover - compiled
    """Triangle j's first corner, e1 = v1 − v0 and e2 = v2 − v0."""
    p0, p1, p2 = corners[0, j], corners[1, j], corners[2, j]
    e1 = (corners[3, j] - p0, corners[4, j] - p1, corners[5, j] - p2)
    e2 = (corners[6, j] - p0, corners[7, j] - p1, corners[8, j] - p2)
    return e1, e2


@njit(nogil=True, cache=True, error_model="numpy")
def _normalized(x, y, z):  # pragma: no cover - compiled
    """torch's normalize: v / max(|v|, 1e-12)."""
    d = max(math.sqrt(x * x + y * y + z * z), _TINY_NORM)
    return x / d, y / d, z / d


@njit(nogil=True, cache=True, error_model="numpy")
def _frame_axes(corners, j):  # pragma: no cover - compiled
    """a0 = normalize(e1), a1 = normalize(a0 × e2), a2 = −normalize(a1 × a0) of triangle j."""
    (ex, ey, ez), (gx, gy, gz) = _edges(corners, j)
    ax, ay, az = _normalized(ex, ey, ez)
    nx, ny, nz = _normalized(ay * gz - az * gy, az * gx - ax * gz, ax * gy - ay * gx)
    mx, my, mz = _normalized(ny * az - nz * ay, nz * ax - nx * az, nx * ay - ny * ax)
    return (ax, ay, az), (nx, ny, nz), (-mx, -my, -mz)


@njit(nogil=True, cache=True, error_model="numpy")
def _frames_block(corners, m, frames, n_faces, lo):  # pragma: no cover - compiled
    """`triangle_frames` of triangles lo..lo+m (their corners given) into the mesh's planar
    frames, in passes of a few outputs each; every pass recomputes the axes it needs from the
    corners rather than reading back another pass's output."""
    fu, lou = _U(n_faces), _U(lo)
    for j in range(m):
        (ax, ay, az), _, _ = _frame_axes(corners, j)
        at = lou + _U(j)
        frames[at], frames[_U(3) * fu + at], frames[_U(6) * fu + at] = ax, ay, az
    for j in range(m):
        _, (nx, ny, nz), _ = _frame_axes(corners, j)
        at = lou + _U(j)
        frames[fu + at], frames[_U(4) * fu + at], frames[_U(7) * fu + at] = nx, ny, nz
    for j in range(m):
        _, _, (mx, my, mz) = _frame_axes(corners, j)
        at = lou + _U(j)
        frames[_U(2) * fu + at], frames[_U(5) * fu + at], frames[_U(8) * fu + at] = mx, my, mz
    for j in range(m):
        _, _, (mx, my, mz) = _frame_axes(corners, j)
        (ex, ey, ez), (gx, gy, gz) = _edges(corners, j)
        at = lou + _U(j)
        frames[_U(9) * fu + at] = (math.sqrt(ex * ex + ey * ey + ez * ez) + abs(mx * gx + my * gy + mz * gz)) * _HALF
        frames[_U(10) * fu + at] = (corners[0, j] + corners[3, j] + corners[6, j]) * _THIRD
        frames[_U(11) * fu + at] = (corners[1, j] + corners[4, j] + corners[7, j]) * _THIRD
        frames[_U(12) * fu + at] = (corners[2, j] + corners[5, j] + corners[8, j]) * _THIRD


@njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def _frames_kernel(vertices, faces, frames):  # pragma: no cover - compiled
    """frames [B, 13·F] planar of meshes vertices [B, 3V] (flat per mesh), faces [3F]."""
    n_faces = faces.shape[0] // 3
    blocks = (n_faces + CHUNK - 1) // CHUNK
    for job in prange(vertices.shape[0] * blocks):
        b, block = job // blocks, job % blocks
        lo, hi = block * CHUNK, min(block * CHUNK + CHUNK, n_faces)
        corners = np.empty((9, hi - lo + _PAD), np.float32)
        _corners_block(vertices[b], faces[3 * lo:3 * hi], corners)
        _frames_block(corners, hi - lo, frames[b], n_faces, lo)


@njit(nogil=True, cache=True, error_model="numpy")
def _gather_block(frames, n_faces, binding, rows):  # pragma: no cover - compiled
    """rows [13, ≥m]: the frame of each of the m Gaussians' triangles (`binding` [m])."""
    m = binding.shape[0]
    for p in range(_FRAME):
        for i in range(m):
            rows[p, i] = frames[p * n_faces + binding[i]]


@njit(nogil=True, cache=True, error_model="numpy")
def _means_block(rows, local_means, means):  # pragma: no cover - compiled
    """means [3m] = k·R μ + c; returns how many are not finite."""
    bad = 0
    for i in range(local_means.shape[0] // 3):
        k = rows[9, i]
        u, v, w = local_means[3 * i], local_means[3 * i + 1], local_means[3 * i + 2]
        x = k * (rows[0, i] * u + rows[1, i] * v + rows[2, i] * w) + rows[10, i]
        y = k * (rows[3, i] * u + rows[4, i] * v + rows[5, i] * w) + rows[11, i]
        z = k * (rows[6, i] * u + rows[7, i] * v + rows[8, i] * w) + rows[12, i]
        means[3 * i], means[3 * i + 1], means[3 * i + 2] = x, y, z
        bad += 0 if x * _ZERO + y * _ZERO + z * _ZERO == _ZERO else 1   # x·0 is 0 iff x is finite
    return bad


@njit(nogil=True, cache=True, error_model="numpy")
def _covariances_block(rows, m, local_covs, covs, n, lo, second):  # pragma: no cover - compiled
    """Components xx, xy, xz (or with `second` yy, yz, zz) of Σ = k²·R Σ_l Rᵀ for Gaussians
    lo..lo+m, from planar [6·n] float64 Σ_l into planar float32 covariances, summed in float64;
    returns how many are not finite."""
    nu, lou = _U(n), _U(lo)
    first_plane = _U(3) if second else _U(0)
    bad = 0
    for i in range(m):
        r00, r01, r02 = np.float64(rows[0, i]), np.float64(rows[1, i]), np.float64(rows[2, i])
        r10, r11, r12 = np.float64(rows[3, i]), np.float64(rows[4, i]), np.float64(rows[5, i])
        r20, r21, r22 = np.float64(rows[6, i]), np.float64(rows[7, i]), np.float64(rows[8, i])
        kk = np.float64(rows[9, i]) * np.float64(rows[9, i])
        at = lou + _U(i)
        s00, s01, s02 = local_covs[at], local_covs[nu + at], local_covs[_U(2) * nu + at]
        s11, s12, s22 = local_covs[_U(3) * nu + at], local_covs[_U(4) * nu + at], local_covs[_U(5) * nu + at]
        # rows of P = k²·R Σ_l, then Σ = P Rᵀ
        p10 = kk * (r10 * s00 + r11 * s01 + r12 * s02)
        p11 = kk * (r10 * s01 + r11 * s11 + r12 * s12)
        p12 = kk * (r10 * s02 + r11 * s12 + r12 * s22)
        if second:
            p20 = kk * (r20 * s00 + r21 * s01 + r22 * s02)
            p21 = kk * (r20 * s01 + r21 * s11 + r22 * s12)
            p22 = kk * (r20 * s02 + r21 * s12 + r22 * s22)
            c0 = p10 * r10 + p11 * r11 + p12 * r12
            c1 = p10 * r20 + p11 * r21 + p12 * r22
            c2 = p20 * r20 + p21 * r21 + p22 * r22
        else:
            p00 = kk * (r00 * s00 + r01 * s01 + r02 * s02)
            p01 = kk * (r00 * s01 + r01 * s11 + r02 * s12)
            p02 = kk * (r00 * s02 + r01 * s12 + r02 * s22)
            c0 = p00 * r00 + p01 * r01 + p02 * r02
            c1 = p00 * r10 + p01 * r11 + p02 * r12
            c2 = p00 * r20 + p01 * r21 + p02 * r22
        c0, c1, c2 = _F(c0), _F(c1), _F(c2)
        covs[first_plane * nu + at] = c0
        covs[(first_plane + _U(1)) * nu + at] = c1
        covs[(first_plane + _U(2)) * nu + at] = c2
        bad += 0 if c0 * _ZERO + c1 * _ZERO + c2 * _ZERO == _ZERO else 1
    return bad


@njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def _bind_kernel(frames, binding, local_means, local_covs, means, covs, bad):  # pragma: no cover
    """World means [B, 3N] and planar covariances [B, 6N] of every Gaussian on every mesh
    (frames [B, 13·F]); bad[b, block] counts the values of that block that are not finite
    (one slot per job: no shared counter)."""
    n, n_faces = binding.shape[0], frames.shape[1] // _FRAME
    blocks = (n + CHUNK - 1) // CHUNK
    for job in prange(bad.shape[0] * blocks):
        b, block = job // blocks, job % blocks
        lo, hi = block * CHUNK, min(block * CHUNK + CHUNK, n)
        rows = np.empty((_FRAME, hi - lo + _PAD), np.float32)
        _gather_block(frames[b], n_faces, binding[lo:hi], rows)
        count = _means_block(rows, local_means[3 * lo:3 * hi], means[b, 3 * lo:3 * hi])
        count += _covariances_block(rows, hi - lo, local_covs, covs[b], n, lo, False)
        count += _covariances_block(rows, hi - lo, local_covs, covs[b], n, lo, True)
        bad[b, block] = count


def bind_covariances(gaussians: GaussianSet, vertices: Tensor, faces: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """World means [..., N, 3] and packed world covariances [..., N, 6] (projection.COVARIANCE_PACK)
    of triangle-local Gaussians on posed meshes [..., V, 3], and per mesh [...] whether all of
    those values are finite: the CPU path's `bind`. On the CPU, numba kernels (triangle frames,
    then a pass per block of Gaussians and mesh) give float32 values, the covariances summed in
    float64 and rounded once, stored component-major (a transposed view, as
    `projection.packed_covariances`); PyTorch elsewhere."""
    lead = vertices.shape[:-2]
    # Σ_l in float64 and k²·R Σ_l Rᵀ accumulated in float64: rounded once, Σ keeps the relative
    # accuracy of its thin directions (which conics of flat splats seen edge-on magnify).
    local_covs = packed_covariances(gaussians.quats, gaussians.scales, torch.float64)
    if vertices.device.type != "cpu" or gaussians.means.device.type != "cpu":
        R, k, c = triangle_frames(vertices, faces)
        b = gaussians.binding
        R, k, c = R[..., b, :, :], k[..., b, None], c[..., b, :]
        means = k * (R @ gaussians.means[..., None])[..., 0] + c
        covs = pack_covariances((k * k)[..., None] * (R @ unpack_covariances(local_covs.to(R)) @ R.transpose(-1, -2)))
        finite = torch.isfinite(torch.cat([means, covs], dim=-1)).flatten(-2).all(-1)
        return means, covs, finite
    meshes = np.ascontiguousarray(vertices.detach().to(torch.float32).reshape(-1, vertices.shape[-2] * 3).numpy())
    batch, n, n_faces = meshes.shape[0], len(gaussians), faces.shape[0]
    frames = np.empty((batch, _FRAME * n_faces), np.float32)
    means = np.empty((batch, 3 * n), np.float32)
    covs = np.empty((batch, 6 * n), np.float32)
    bad = np.zeros((batch, (n + CHUNK - 1) // CHUNK), np.int64)
    with kernel_threads():
        _frames_kernel(meshes, np.ascontiguousarray(faces.detach().cpu().numpy(), dtype=np.int64).reshape(-1), frames)
        _bind_kernel(frames, np.ascontiguousarray(gaussians.binding.detach().cpu().numpy(), dtype=np.int64),
                     _f32(gaussians.means).reshape(-1), _planar(local_covs, torch.float64), means, covs, bad)
    return (torch.from_numpy(means).reshape(*lead, n, 3),
            torch.from_numpy(covs).reshape(*lead, 6, n).transpose(-1, -2),
            torch.from_numpy(bad.sum(1) == 0).reshape(lead))
