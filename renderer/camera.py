"""OpenCV pinhole cameras (x right, y down, z forward), orbit controls and head auto-framing."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

DEFAULT_FOVY = 20.0  # degrees, as the GaussianAvatars viewer
HEAD_FILL = 0.88     # the framed points (a head down to its chin) fill this fraction of the image height


@dataclass
class Camera:
    """viewmat: world→camera 4×4; K: intrinsics in pixels."""

    viewmat: Tensor
    K: Tensor
    width: int
    height: int

    @property
    def center(self) -> Tensor:
        """Camera centre in world coordinates."""
        R, t = self.viewmat[:3, :3], self.viewmat[:3, 3]
        return -R.T @ t


def intrinsics(width: int, height: int, fovy_deg: float = DEFAULT_FOVY) -> Tensor:
    f = 0.5 * height / math.tan(math.radians(fovy_deg) / 2)
    return torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=torch.float32)


def look_at(eye: Tensor, target: Tensor, up: Tensor | None = None) -> Tensor:
    """World→camera matrix for a camera at `eye` looking at `target` with world +y up."""
    up = torch.tensor([0.0, 1.0, 0.0]) if up is None else up
    forward = torch.nn.functional.normalize(target - eye, dim=0)
    right = torch.nn.functional.normalize(torch.linalg.cross(forward, up), dim=0)
    down = torch.linalg.cross(forward, right)
    R = torch.stack([right, down, forward])
    view = torch.eye(4)
    view[:3, :3] = R
    view[:3, 3] = -R @ eye
    return view


def orbit_camera(target: Tensor, yaw: float, pitch: float, distance: float,
                 width: int, height: int, fovy_deg: float = DEFAULT_FOVY) -> Camera:
    """Camera on a sphere around `target`. yaw/pitch in degrees: yaw>0 moves toward +x
    (the subject's left), pitch>0 looks from above; (0, 0) is frontal at target + (0, 0, d)."""
    y, p = math.radians(yaw), math.radians(pitch)
    offset = torch.tensor([math.sin(y) * math.cos(p), math.sin(p), math.cos(y) * math.cos(p)])
    target = target.float().cpu()
    return Camera(look_at(target + distance * offset, target), intrinsics(width, height, fovy_deg),
                  width, height)


def frame_head(vertices: Tensor, width: int, height: int,
               fovy_deg: float = DEFAULT_FOVY) -> tuple[Tensor, float]:
    """Target and distance so the mesh's bounding box fills HEAD_FILL of the frame, frontally."""
    lo, hi = vertices.reshape(-1, 3).min(0).values, vertices.reshape(-1, 3).max(0).values
    size = hi - lo
    extent = max(float(size[1]), float(size[0]) * height / width)
    distance = 0.5 * extent / HEAD_FILL / math.tan(math.radians(fovy_deg) / 2) + 0.5 * float(size[2])
    return ((lo + hi) / 2).float(), distance
