"""Independent float64 references shared by several test modules."""
import numpy as np
from scipy.spatial.transform import Rotation

from renderer.gaussians import GaussianSet


def brute_force(g: GaussianSet, cam, background) -> np.ndarray:
    """Every pixel × every Gaussian in float64, front to back, gsplat's blending rules."""
    R = cam.viewmat[:3, :3].double().numpy()
    t = cam.viewmat[:3, 3].double().numpy()
    K = cam.K.double().numpy()
    means = g.means.double().numpy() @ R.T + t
    q = g.quats.double().numpy()
    rot = Rotation.from_quat(q[:, [1, 2, 3, 0]]).as_matrix()
    S = g.scales.double().numpy()
    cov = np.einsum("nij,nj,nkj->nik", rot, S ** 2, rot)
    cov_c = R @ cov @ R.T
    colors = np.clip(0.28209479177387814 * g.sh[:, 0].double().numpy() + 0.5, 0, None)
    ys, xs = np.mgrid[0:cam.height, 0:cam.width] + 0.5
    T = np.ones((cam.height, cam.width))
    done = np.zeros_like(T, dtype=bool)
    out = np.zeros((cam.height, cam.width, 3))
    for i in np.argsort(means[:, 2], kind="stable"):
        x, y, z = means[i]
        if z <= 0.01:
            continue
        J = np.array([[K[0, 0] / z, 0, -K[0, 0] * x / z ** 2], [0, K[1, 1] / z, -K[1, 1] * y / z ** 2]])
        c2 = J @ cov_c[i] @ J.T + 0.3 * np.eye(2)
        P = np.linalg.inv(c2)
        u, v = K[0, 0] * x / z + K[0, 2], K[1, 1] * y / z + K[1, 2]
        dx, dy = u - xs, v - ys
        sigma = 0.5 * (P[0, 0] * dx * dx + P[1, 1] * dy * dy) + P[0, 1] * dx * dy
        alpha = np.minimum(0.999, g.opacities[i].item() * np.exp(-sigma))
        use = (alpha >= 1 / 255) & ~done
        nxt = T * (1 - alpha)
        stop = use & (nxt <= 1e-4)
        done |= stop
        use &= ~stop
        out += np.where(use, alpha * T, 0)[..., None] * colors[i]
        T = np.where(use, nxt, T)
    return out + T[..., None] * background.double().numpy()
