"""EWA projection of 3D Gaussians to the image, the same math as gsplat 1.5's classic mode.

Two details follow gsplat's CUDA kernels rather than textbook EWA, so the backends agree:
the Jacobian is evaluated at the mean clamped to 1.3× the field of view, and the screen
radius is per axis, 3.33σ shrunk to where the alpha falls under 1/255 for that opacity.

`project` (PyTorch, any device) is the readable reference, from quaternions and scales. The CPU
path takes world covariances instead (`packed_covariances`, or `binding.bind_covariances` for
an avatar, which never builds quaternions) and `project_shade` projects them and evaluates the
SH colours in one numba pass per Gaussian: the same formulas in float32, the products merely
grouped differently (the camera rotation is folded into the EWA Jacobian, divisions by z are
one reciprocal), so values agree to float32 rounding (tests/test_cpu_path.py) and a radius can
differ only where ceil's argument lies within rounding of an integer.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numba
import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

from .camera import Camera
from .gaussians import sh_degree_for
from .rotations import quat_to_rotmat
from .sh import C0, C1, C2, C3, sh_colors

EPS2D = 0.3
NEAR_PLANE = 0.01
ALPHA_MIN = 1.0 / 255.0
MAX_EXTENT = 3.33
COVARIANCE_PACK = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))  # packed Σ: xx, xy, xz, yy, yz, zz


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


def pack_covariances(cov: Tensor) -> Tensor:
    """Symmetric [..., 3, 3] → packed upper triangle [..., 6] (COVARIANCE_PACK order)."""
    rows, cols = zip(*COVARIANCE_PACK)
    return cov[..., list(rows), list(cols)]


def unpack_covariances(packed: Tensor) -> Tensor:
    """Packed [..., 6] → symmetric [..., 3, 3]."""
    xx, xy, xz, yy, yz, zz = packed.unbind(-1)
    return torch.stack([xx, xy, xz, xy, yy, yz, xz, yz, zz], dim=-1).reshape(packed.shape[:-1] + (3, 3))


def _ewa(mc: Tensor, cov_c: Tensor, K: Tensor, width: int, height: int,
         opacities: Tensor | None) -> Projected:
    """Camera-space means [N,3] and covariances [N,3,3] → screen (gsplat's persp_proj and culling)."""
    tx, ty, tz = mc.unbind(-1)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    lim_x_pos, lim_x_neg, lim_y_pos, lim_y_neg = _fov_limits(K, width, height)
    safe_z = torch.where(tz.abs() > 1e-12, tz, torch.full_like(tz, 1e-12))
    jx = safe_z * torch.clamp(tx / safe_z, -lim_x_neg, lim_x_pos)
    jy = safe_z * torch.clamp(ty / safe_z, -lim_y_neg, lim_y_pos)
    zero = torch.zeros_like(tz)
    J = torch.stack([fx / safe_z, zero, -fx * jx / safe_z ** 2,
                     zero, fy / safe_z, -fy * jy / safe_z ** 2], dim=-1).reshape(-1, 2, 3)
    cov2d = J @ cov_c @ J.transpose(-1, -2) + EPS2D * torch.eye(2, dtype=mc.dtype, device=mc.device)
    a, b, c = cov2d[:, 0, 0], 0.5 * (cov2d[:, 0, 1] + cov2d[:, 1, 0]), cov2d[:, 1, 1]
    det = a * c - b * b
    means2d = torch.stack([fx * tx / safe_z + cx, fy * ty / safe_z + cy], dim=-1)
    conics = torch.stack([c, -b, a], dim=-1) / det.clamp(min=1e-10)[:, None]

    extent = torch.full_like(tz, MAX_EXTENT)
    if opacities is not None:
        ratio = (opacities.to(mc) / ALPHA_MIN).clamp(min=1.0)
        extent = torch.minimum(extent, torch.sqrt(2.0 * torch.log(ratio)))
    radii = torch.ceil(extent[:, None] * torch.sqrt(torch.stack([a, c], dim=-1).clamp(min=0)))
    visible = (det > 0) & (tz > NEAR_PLANE)
    if opacities is not None:
        visible &= opacities.to(mc) >= ALPHA_MIN
    inside = ((means2d + radii > 0) & (means2d - radii < torch.tensor([width, height]).to(mc))).all(-1)
    radii = torch.where((visible & inside)[:, None], radii, torch.zeros_like(radii))
    return Projected(means2d, conics, tz, radii.to(torch.int32))


def _fov_limits(K: Tensor, width: int, height: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """x/z and y/z bounds at which the Jacobian is evaluated: 1.3× the field of view."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    return ((width - cx) / fx + 0.3 * (0.5 * width / fx), cx / fx + 0.3 * (0.5 * width / fx),
            (height - cy) / fy + 0.3 * (0.5 * height / fy), cy / fy + 0.3 * (0.5 * height / fy))


def project(means: Tensor, quats: Tensor, scales: Tensor, viewmat: Tensor, K: Tensor,
            width: int, height: int, opacities: Tensor | None = None) -> Projected:
    """Project world Gaussians [N,·] through one pinhole camera."""
    R, t = viewmat[:3, :3].to(means), viewmat[:3, 3].to(means)
    mc = means @ R.T + t
    cov_c = R @ covariance_3d(quats, scales) @ R.T
    return _ewa(mc, cov_c, K.to(means), width, height, opacities)


def project_covariances(means: Tensor, covariances: Tensor, viewmat: Tensor, K: Tensor,
                        width: int, height: int, opacities: Tensor | None = None) -> Projected:
    """`project` for world covariances [N,6] (packed) instead of quaternions and scales."""
    R, t = viewmat[:3, :3].to(means), viewmat[:3, 3].to(means)
    mc = means @ R.T + t
    cov_c = R @ unpack_covariances(covariances) @ R.T
    return _ewa(mc, cov_c, K.to(means), width, height, opacities)


# ---------------------------------------------------------------------------------------------
# The CPU path: numba kernels over blocks of Gaussians, float32 values (layout below).

@contextmanager
def kernel_threads() -> Iterator[None]:
    """Run the numba kernels inside on the caller's thread budget: the smaller of torch's and
    numba's thread counts as the calling thread has them (numba's is per thread), restored
    afterwards, so `torch.set_num_threads` or `numba.set_num_threads` by the caller both hold
    and nothing changes globally. Blocks go to the threads one at a time as they ask
    (`parallel_chunksize(1)`): a thread that another process preempts holds back one block, not
    its fixed share of the frame."""
    before = numba.get_num_threads()
    threads = max(1, min(before, torch.get_num_threads()))
    if threads != before:
        numba.set_num_threads(threads)
    try:
        with numba.parallel_chunksize(1):
            yield
    finally:
        if threads != before:
            numba.set_num_threads(before)


def _f32(x: Tensor) -> np.ndarray:
    """A float32, C-contiguous NumPy view (a copy only when the tensor is not one already)."""
    return np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())


def _on_cpu(*tensors: Tensor) -> bool:
    return all(t.device.type == "cpu" for t in tensors)


_F = np.float32
_ZERO, _HALF, _ONE, _TWO, _THREE, _FOUR = _F(0.0), _F(0.5), _F(1.0), _F(2.0), _F(3.0), _F(4.0)
_TINY_Z, _TINY_NORM, _TINY_DET = _F(1e-12), _F(1e-12), _F(1e-10)
_EPS2D, _NEAR, _ALPHA_MIN, _MAX_EXTENT = _F(EPS2D), _F(NEAR_PLANE), _F(ALPHA_MIN), _F(MAX_EXTENT)
_RADIUS_MAX = _F(2 ** 31 - 128)   # largest float32 under 2³¹: radii saturate as gsplat's CUDA int conversion
_SH0, _SH1 = _F(C0), _F(C1)
_SH2_0, _SH2_1, _SH2_2, _SH2_3, _SH2_4 = (_F(c) for c in C2)
_SH3_0, _SH3_1, _SH3_2, _SH3_3, _SH3_4, _SH3_5, _SH3_6 = (_F(c) for c in C3)
CHUNK = 1024  # Gaussians per block: the unit of parallel work
_U = np.uint64

# Layout and vectorisation. Each kernel is a parallel loop over blocks of CHUNK Gaussians whose
# body runs plain loops from 0; LLVM vectorises those (AVX2/AVX-512) when (a) every index is
# provably ≥ 0, so numba's negative-index wrap-around folds away: i·const + const with i from
# range(n), or unsigned (uint64) arithmetic, and (b) a loop writes at most a few streams (up to
# 5 in our measurements, with LLVM 20). Hence packed covariances are stored component-major
# ([6, N] in memory, handed out as the transposed [N, 6] view), written by loops of three
# components each; loops that call libm (log) or gather through an index stay apart.


def _planar(packed: Tensor, dtype: torch.dtype = torch.float32) -> np.ndarray:
    """Packed covariances [N,6] as the flat [6·N] component-major array the kernels take (no
    copy for what `packed_covariances`/`bind_covariances` return)."""
    return np.ascontiguousarray(packed.detach().to("cpu", dtype).t().numpy()).reshape(-1)


@njit(nogil=True, cache=True, error_model="numpy")
def _covariances_block(quats, scales, out, n, lo, second):  # pragma: no cover - compiled
    """Σ = M Mᵀ with M = R diag(s), R from the normalised quaternion as rotations.quat_to_rotmat:
    components xx, xy, xz (or with `second` yy, yz, zz) of Gaussians lo.. into planar `out`."""
    nu, lou = _U(n), _U(lo)
    first_plane = _U(3) if second else _U(0)
    for j in range(scales.shape[0] // 3):
        w, x, y, z = quats[4 * j], quats[4 * j + 1], quats[4 * j + 2], quats[4 * j + 3]
        norm = max(math.sqrt(w * w + x * x + y * y + z * z), _TINY_NORM)   # torch's normalize
        w, x, y, z = w / norm, x / norm, y / norm, z / norm
        sx, sy, sz = scales[3 * j], scales[3 * j + 1], scales[3 * j + 2]
        m10 = _TWO * (x * y + w * z) * sx
        m11 = (_ONE - _TWO * (x * x + z * z)) * sy
        m12 = _TWO * (y * z - w * x) * sz
        m20 = _TWO * (x * z - w * y) * sx
        m21 = _TWO * (y * z + w * x) * sy
        m22 = (_ONE - _TWO * (x * x + y * y)) * sz
        if second:
            c0 = m10 * m10 + m11 * m11 + m12 * m12
            c1 = m10 * m20 + m11 * m21 + m12 * m22
            c2 = m20 * m20 + m21 * m21 + m22 * m22
        else:
            m00 = (_ONE - _TWO * (y * y + z * z)) * sx
            m01 = _TWO * (x * y - w * z) * sy
            m02 = _TWO * (x * z + w * y) * sz
            c0 = m00 * m00 + m01 * m01 + m02 * m02
            c1 = m00 * m10 + m01 * m11 + m02 * m12
            c2 = m00 * m20 + m01 * m21 + m02 * m22
        at = lou + _U(j)
        out[first_plane * nu + at] = c0
        out[(first_plane + _U(1)) * nu + at] = c1
        out[(first_plane + _U(2)) * nu + at] = c2


@njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def _covariances_kernel(quats, scales, out):  # pragma: no cover - compiled
    """out [6·N] planar = packed R S Sᵀ Rᵀ of quats [4N] (wxyz, normalised here) and scales [3N]."""
    n = scales.shape[0] // 3
    for block in prange((n + CHUNK - 1) // CHUNK):
        lo, hi = block * CHUNK, min(block * CHUNK + CHUNK, n)
        _covariances_block(quats[4 * lo:4 * hi], scales[3 * lo:3 * hi], out, n, lo, False)
        _covariances_block(quats[4 * lo:4 * hi], scales[3 * lo:3 * hi], out, n, lo, True)


def packed_covariances(quats: Tensor, scales: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Σ = R S Sᵀ Rᵀ packed [N,6] (COVARIANCE_PACK): on the CPU a numba pass in `dtype` (float32
    or float64) whose result is stored component-major (a transposed view); `covariance_3d`
    elsewhere."""
    if not _on_cpu(quats, scales):
        return pack_covariances(covariance_3d(quats, scales))
    n = quats.shape[0]
    out = np.empty(6 * n, dtype=torch.empty(0, dtype=dtype).numpy().dtype)
    as_array = lambda t: np.ascontiguousarray(t.detach().to(dtype).numpy()).reshape(-1)  # noqa: E731
    with kernel_threads():
        _covariances_kernel(as_array(quats), as_array(scales), out)
    return torch.from_numpy(out).reshape(6, n).t()


@njit(nogil=True, cache=True, error_model="numpy")
def _extents_block(opacities, out):  # pragma: no cover - compiled
    """σ-multiple of the screen radius: 3.33, shrunk to where o·exp(−e²/2) = 1/255; 0 culls
    (an opacity under 1/255, or NaN)."""
    for i in range(opacities.shape[0]):
        ratio = max(opacities[i] / _ALPHA_MIN, _ONE)
        out[i] = min(_MAX_EXTENT, math.sqrt(_TWO * math.log(ratio)))


@njit(nogil=True, cache=True, error_model="numpy")
def _project_block(means, covs, n, lo, extents, view, camera, means2d, conics, depths, radii):  # pragma: no cover
    """gsplat's persp_proj, blur, conic, radius and culling, as `_ewa`, with the camera rotation
    folded into the Jacobian: Σ2D = (J R) Σ (J R)ᵀ. Gaussians lo.. of planar covs [6·n]."""
    nu, lou = _U(n), _U(lo)
    fx, fy, cx, cy = camera[0], camera[1], camera[2], camera[3]
    lxn, lxp, lyn, lyp = camera[4], camera[5], camera[6], camera[7]
    width, height = camera[8], camera[9]
    r00, r01, r02, t0 = view[0], view[1], view[2], view[3]
    r10, r11, r12, t1 = view[4], view[5], view[6], view[7]
    r20, r21, r22, t2 = view[8], view[9], view[10], view[11]
    for i in range(extents.shape[0]):
        wx, wy, wz = means[3 * i], means[3 * i + 1], means[3 * i + 2]
        tx = r00 * wx + r01 * wy + r02 * wz + t0
        ty = r10 * wx + r11 * wy + r12 * wz + t1
        tz = r20 * wx + r21 * wy + r22 * wz + t2
        rz = _ONE / (tz if abs(tz) > _TINY_Z else _TINY_Z)
        u = min(max(tx * rz, -lxn), lxp)         # the mean clamped to 1.3× the field of view
        v = min(max(ty * rz, -lyn), lyp)
        jx, jy = fx * rz, fy * rz
        a0, a1, a2 = jx * (r00 - u * r20), jx * (r01 - u * r21), jx * (r02 - u * r22)
        b0, b1, b2 = jy * (r10 - v * r20), jy * (r11 - v * r21), jy * (r12 - v * r22)
        at = lou + _U(i)
        s00, s01, s02 = covs[at], covs[nu + at], covs[_U(2) * nu + at]
        s11, s12, s22 = covs[_U(3) * nu + at], covs[_U(4) * nu + at], covs[_U(5) * nu + at]
        p0 = a0 * s00 + a1 * s01 + a2 * s02
        p1 = a0 * s01 + a1 * s11 + a2 * s12
        p2 = a0 * s02 + a1 * s12 + a2 * s22
        q0 = b0 * s00 + b1 * s01 + b2 * s02
        q1 = b0 * s01 + b1 * s11 + b2 * s12
        q2 = b0 * s02 + b1 * s12 + b2 * s22
        a = p0 * a0 + p1 * a1 + p2 * a2 + _EPS2D
        b = _HALF * ((p0 * b0 + p1 * b1 + p2 * b2) + (q0 * a0 + q1 * a1 + q2 * a2))
        c = q0 * b0 + q1 * b1 + q2 * b2 + _EPS2D
        det = a * c - b * b
        mx = fx * tx * rz + cx
        my = fy * ty * rz + cy
        inv = _ONE / max(det, _TINY_DET)
        means2d[2 * i] = mx
        means2d[2 * i + 1] = my
        conics[3 * i] = c * inv
        conics[3 * i + 1] = -b * inv
        conics[3 * i + 2] = a * inv
        depths[i] = tz
        e = extents[i]
        ex = min(e * math.sqrt(max(a, _ZERO)), _RADIUS_MAX)
        ey = min(e * math.sqrt(max(c, _ZERO)), _RADIUS_MAX)
        rx, ry = _F(np.int32(ex)), _F(np.int32(ey))   # ceil of values ≥ 0 (no libm call)
        rx = rx + _ONE if rx < ex else rx
        ry = ry + _ONE if ry < ey else ry
        keep = ((det > _ZERO) & (tz > _NEAR) & (e > _ZERO) & (mx + rx > _ZERO) & (mx - rx < width)
                & (my + ry > _ZERO) & (my - ry < height))
        radii[2 * i] = np.int32(rx) if keep else np.int32(0)
        radii[2 * i + 1] = np.int32(ry) if keep else np.int32(0)


@njit(nogil=True, cache=True, error_model="numpy")
def _direction(means, i, ox, oy, oz):  # pragma: no cover - compiled
    """Unit direction from the camera centre to Gaussian i's mean (torch's normalize)."""
    dx, dy, dz = means[3 * i] - ox, means[3 * i + 1] - oy, means[3 * i + 2] - oz
    norm = max(math.sqrt(dx * dx + dy * dy + dz * dz), _TINY_NORM)
    return dx / norm, dy / norm, dz / norm


@njit(inline="always")
def _store_colour(colors, i, r, g, b):  # pragma: no cover - compiled
    """SH colour + 0.5, clamped at 0 (gsplat), into the packed RGB row of Gaussian i."""
    colors[3 * i], colors[3 * i + 1], colors[3 * i + 2] = max(r + _HALF, _ZERO), max(g + _HALF, _ZERO), \
        max(b + _HALF, _ZERO)


@njit(nogil=True, cache=True, error_model="numpy")
def _term(sh, at, sc, weight, r, g, b):  # pragma: no cover - compiled
    """(r, g, b) + weight · the coefficient at `at` (channels `sc` apart)."""
    return r + weight * sh[at], g + weight * sh[at + sc], b + weight * sh[at + 2 * sc]


@njit(nogil=True, cache=True, error_model="numpy")
def _band1(sh, at, sk, sc, x, y, z, r, g, b):  # pragma: no cover - compiled
    r, g, b = _term(sh, at + sk, sc, -_SH1 * y, r, g, b)
    r, g, b = _term(sh, at + 2 * sk, sc, _SH1 * z, r, g, b)
    return _term(sh, at + 3 * sk, sc, -_SH1 * x, r, g, b)


@njit(nogil=True, cache=True, error_model="numpy")
def _band2(sh, at, sk, sc, x, y, z, r, g, b):  # pragma: no cover - compiled
    xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
    r, g, b = _term(sh, at + 4 * sk, sc, _SH2_0 * xy, r, g, b)
    r, g, b = _term(sh, at + 5 * sk, sc, _SH2_1 * yz, r, g, b)
    r, g, b = _term(sh, at + 6 * sk, sc, _SH2_2 * (_TWO * zz - xx - yy), r, g, b)
    r, g, b = _term(sh, at + 7 * sk, sc, _SH2_3 * xz, r, g, b)
    return _term(sh, at + 8 * sk, sc, _SH2_4 * (xx - yy), r, g, b)


@njit(nogil=True, cache=True, error_model="numpy")
def _band3(sh, at, sk, sc, x, y, z, r, g, b):  # pragma: no cover - compiled
    xx, yy, zz, xy = x * x, y * y, z * z, x * y
    r, g, b = _term(sh, at + 9 * sk, sc, _SH3_0 * y * (_THREE * xx - yy), r, g, b)
    r, g, b = _term(sh, at + 10 * sk, sc, _SH3_1 * xy * z, r, g, b)
    r, g, b = _term(sh, at + 11 * sk, sc, _SH3_2 * y * (_FOUR * zz - xx - yy), r, g, b)
    r, g, b = _term(sh, at + 12 * sk, sc, _SH3_3 * z * (_TWO * zz - _THREE * xx - _THREE * yy), r, g, b)
    r, g, b = _term(sh, at + 13 * sk, sc, _SH3_4 * x * (_FOUR * zz - xx - yy), r, g, b)
    r, g, b = _term(sh, at + 14 * sk, sc, _SH3_5 * z * (xx - yy), r, g, b)
    return _term(sh, at + 15 * sk, sc, _SH3_6 * x * (xx - _THREE * yy), r, g, b)


@njit(nogil=True, cache=True, error_model="numpy")
def _shade_block(means, sh, sn, sk, sc, degree, ox, oy, oz, colors):  # pragma: no cover - compiled
    """colors = max(Σ basis·coefficients + 0.5, 0) as `sh.sh_colors`; coefficient k, channel ch
    of Gaussian i at sh[i·sn + k·sk + ch·sc]. One loop per degree, each without branches."""
    n = colors.shape[0] // 3
    if degree == 0:
        for i in range(n):
            r, g, b = _term(sh, i * sn, sc, _SH0, _ZERO, _ZERO, _ZERO)
            _store_colour(colors, i, r, g, b)
    elif degree == 1:
        for i in range(n):
            x, y, z = _direction(means, i, ox, oy, oz)
            r, g, b = _term(sh, i * sn, sc, _SH0, _ZERO, _ZERO, _ZERO)
            r, g, b = _band1(sh, i * sn, sk, sc, x, y, z, r, g, b)
            _store_colour(colors, i, r, g, b)
    elif degree == 2:
        for i in range(n):
            x, y, z = _direction(means, i, ox, oy, oz)
            r, g, b = _term(sh, i * sn, sc, _SH0, _ZERO, _ZERO, _ZERO)
            r, g, b = _band1(sh, i * sn, sk, sc, x, y, z, r, g, b)
            r, g, b = _band2(sh, i * sn, sk, sc, x, y, z, r, g, b)
            _store_colour(colors, i, r, g, b)
    else:
        for i in range(n):
            x, y, z = _direction(means, i, ox, oy, oz)
            r, g, b = _term(sh, i * sn, sc, _SH0, _ZERO, _ZERO, _ZERO)
            r, g, b = _band1(sh, i * sn, sk, sc, x, y, z, r, g, b)
            r, g, b = _band2(sh, i * sn, sk, sc, x, y, z, r, g, b)
            r, g, b = _band3(sh, i * sn, sk, sc, x, y, z, r, g, b)
            _store_colour(colors, i, r, g, b)


@njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def _project_shade_kernel(means, covs, opacities, sh, sn, sk, sc, degree, view, camera,
                          means2d, conics, depths, radii, colors):  # pragma: no cover - compiled
    """Per block of Gaussians: extents, projection, SH colours. Flat float32 arrays: means [3N],
    covs [6N] planar, opacities [N], SH as described in `_shade_block`; view [12] world→camera rows;
    camera = fx, fy, cx, cy, x/z limits −, +, y/z limits −, +, width, height, centre xyz."""
    n = opacities.shape[0]
    ox, oy, oz = camera[10], camera[11], camera[12]
    for block in prange((n + CHUNK - 1) // CHUNK):
        lo, hi = block * CHUNK, min(block * CHUNK + CHUNK, n)
        extents = np.empty(hi - lo, np.float32)
        _extents_block(opacities[lo:hi], extents)
        _project_block(means[3 * lo:3 * hi], covs, n, lo, extents, view, camera, means2d[2 * lo:2 * hi],
                       conics[3 * lo:3 * hi], depths[lo:hi], radii[2 * lo:2 * hi])
        _shade_block(means[3 * lo:3 * hi], sh[lo * sn:], sn, sk, sc, degree, ox, oy, oz, colors[3 * lo:3 * hi])


def _flat_sh(sh: Tensor) -> tuple[np.ndarray, int, int, int]:
    """SH [N,K,3] as a flat float32 array over its storage and its element strides (n, k, channel),
    without a copy when the Gaussians are its outermost dimension (a PLY's channel-major
    coefficients are [N,3,K] in memory)."""
    sh = sh.detach().to("cpu", torch.float32)
    n, k, _ = sh.shape
    sn, sk, sc = sh.stride()
    dense = (sk, sc) in ((3, 1), (1, k)) or (k == 1 and sc == 1)
    if sh.storage_offset() != 0 or sn != 3 * k or not dense:
        sh = sh.contiguous()
        sn, sk, sc = sh.stride()
    flat = torch.as_strided(sh, (n * k * 3,), (1,))
    return flat.numpy(), sn, sk, sc


def _camera_params(camera: Camera, view: np.ndarray) -> np.ndarray:
    """fx, fy, cx, cy, the Jacobian's x/z limits −, +, y/z limits −, +, width, height and the
    camera centre −Rᵀt, in float32 as `_fov_limits` and `Camera.center` compute them (NumPy
    scalars: a few µs rather than a dozen tensor ops)."""
    k = _f32(camera.K)
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    w, h = _F(camera.width), _F(camera.height)
    margin_x, margin_y = _F(0.3) * (_HALF * w / fx), _F(0.3) * (_HALF * h / fy)
    centre = -(view[:, :3].T @ view[:, 3])
    return np.array([fx, fy, cx, cy, cx / fx + margin_x, (w - cx) / fx + margin_x, cy / fy + margin_y,
                     (h - cy) / fy + margin_y, w, h, *centre], np.float32)


def project_shade(means: Tensor, covariances: Tensor, opacities: Tensor, sh: Tensor,
                  camera: Camera) -> tuple[Projected, Tensor]:
    """Screen-space Gaussians and their colours [N,3] for world means [N,3], packed world
    covariances [N,6], opacities [N] and SH [N,(d+1)²,3] seen by `camera`: `project_covariances`
    (with the opacities) and `sh.sh_colors` in one numba pass, float32, on the CPU; those two
    functions themselves on any other device."""
    if not _on_cpu(means, covariances, opacities, sh):
        proj = project_covariances(means, covariances, camera.viewmat, camera.K, camera.width,
                                   camera.height, opacities=opacities)
        return proj, sh_colors(sh, means, camera.center)
    n = means.shape[0]
    flat_sh, sn, sk, sc = _flat_sh(sh)
    degree = sh_degree_for(sh.shape[-2])
    view = _f32(camera.viewmat[:3])
    means2d, conics = np.empty(2 * n, np.float32), np.empty(3 * n, np.float32)
    depths, radii, colors = np.empty(n, np.float32), np.empty(2 * n, np.int32), np.empty(3 * n, np.float32)
    with kernel_threads():
        _project_shade_kernel(_f32(means).reshape(-1), _planar(covariances), _f32(opacities).reshape(-1),
                              flat_sh, sn, sk, sc, degree, view.reshape(-1), _camera_params(camera, view),
                              means2d, conics, depths, radii, colors)
    proj = Projected(torch.from_numpy(means2d).reshape(n, 2), torch.from_numpy(conics).reshape(n, 3),
                     torch.from_numpy(depths), torch.from_numpy(radii).reshape(n, 2))
    return proj, torch.from_numpy(colors).reshape(n, 3)
