"""The player core: one loaded avatar, its settings and clip; answers "frame i" and "the clip".

The `render` command, the GUI and stimulus batches all go through this object, so every
output is made by the same stages (DESIGN §1).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Iterator, Optional

import numpy as np
import torch

from models.emotion import check_emotions
from models.errors import InputError
from models.flame import FlameParams
from models.speech import SignalSpeechDriver, SpeechDriver
from renderer.binding import bind
from renderer.camera import Camera, frame_head, orbit_camera
from renderer.render import backend_device, render, resolve_backend

from .avatar import Avatar
from .clip import Clip, still_clip


@dataclass
class View:
    """Camera and image settings. distance None → auto-framed."""

    width: int = 512
    height: int = 512
    yaw: float = 0.0
    pitch: float = 0.0
    distance: Optional[float] = None
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass
class Performance:
    """How the face is driven on top of the clip: emotion mix and stream gains."""

    emotions: dict[str, float] = field(default_factory=dict)
    speech_gain: float = 1.0
    expression_gain: float = 1.0


class Cancelled(Exception):
    """Rendering stopped because the caller asked it to."""


class Player:
    """Renders frames of `clip` for `avatar` under `view` and `performance`."""

    def __init__(self, avatar: Avatar, backend: str = "auto", driver: Optional[SpeechDriver] = None) -> None:
        self.backend = resolve_backend(backend)
        self.device = backend_device(self.backend)
        self.avatar = avatar
        self.gaussians = avatar.gaussians.to(self.device)
        self.rig = avatar.rig.to(self.device) if avatar.rig is not None else None
        bs = avatar.blendshapes
        self.driver = driver or (SignalSpeechDriver(bs.speech_names) if bs is not None else None)
        self.view = View()
        self.performance = Performance()
        self.clip: Clip = still_clip(1.0)
        self._framing = self._framing_points()

    @property
    def num_gaussians(self) -> int:
        return len(self.gaussians)

    def _framing_points(self) -> torch.Tensor:
        if self.rig is None:
            means = self.gaussians.means
            lo, hi = torch.quantile(means, 0.01, dim=0), torch.quantile(means, 0.99, dim=0)
            return torch.stack([lo, hi]).cpu()
        return self.rig(self._neutral(1)).cpu()

    def _neutral(self, frames: int) -> FlameParams:
        p = self.avatar.params
        return FlameParams.neutral(frames, p.shape, p.static_offset)

    def set_emotions(self, emotions: dict[str, float]) -> None:
        bs = self.avatar.blendshapes
        if emotions and bs is None:
            raise InputError("emotions need a blendshape model (--blendshapes FILE)")
        if bs is not None:
            check_emotions(emotions, bs.emotion_names)
        self.performance.emotions = dict(emotions)

    def camera(self) -> Camera:
        """Orbit camera around the neutral head; auto-framed unless a distance is set."""
        v = self.view
        target, auto_distance = frame_head(self._framing, v.width, v.height)
        distance = v.distance if v.distance is not None else auto_distance
        return orbit_camera(target, v.yaw, v.pitch, distance, v.width, v.height)

    def flame_params(self, start: int, stop: int) -> FlameParams:
        """Per-frame FLAME parameters of frames start..stop-1 under the current settings."""
        clip, perf, bs = self.clip, self.performance, self.avatar.blendshapes
        frames = stop - start
        params = clip.motion.slice(start, stop) if clip.motion is not None else self._neutral(frames)
        params.shape, params.static_offset = self.avatar.params.shape, self.avatar.params.static_offset
        if bs is None:
            return params
        speech = clip.speech[start:stop] if clip.speech is not None else np.zeros((frames, len(bs.speech_names)), np.float32)
        expression = bs.expression_weights(perf.emotions, frames)
        if clip.expression is not None:
            expression = expression + clip.expression[start:stop]
        expr, jaw = bs.to_flame(speech, expression, perf.speech_gain, perf.expression_gain)
        params.expr = np.asarray(params.expr, np.float32) + expr
        params.jaw_pose = np.asarray(params.jaw_pose, np.float32) + jaw
        return params

    @torch.no_grad()
    def render_range(self, start: int, stop: int, batch: int = 8,
                     cancel: Optional[threading.Event] = None) -> Iterator[np.ndarray]:
        """uint8 frames [H, W, 3] of frames start..stop-1, computed `batch` frames at a time
        so a long clip streams in bounded memory."""
        camera = self.camera()
        background = torch.tensor(self.view.background, dtype=torch.float32, device=self.device)
        for first in range(start, stop, batch):
            last = min(first + batch, stop)
            if self.rig is not None:
                vertices = self.rig(self.flame_params(first, last))
                means, quats, scales = bind(self.gaussians, vertices, self.rig.faces)
            for k in range(last - first):
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                g = self.gaussians if self.rig is None else self.gaussians.with_world(means[k], quats[k], scales[k])
                image = render(g, camera, background, self.backend)
                yield (image.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()

    def render_frame(self, index: int) -> np.ndarray:
        return next(self.render_range(index, index + 1))
