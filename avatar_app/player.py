"""The player core: one loaded avatar, its settings and clip; answers "frame i" and "the clip".

The `render` command, the GUI and stimulus batches all go through this object, so every
output is made by the same stages (DESIGN §1).
"""
from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

import numpy as np
import torch

from models.blendshapes import WeightSequence
from models.emotion import EmotionTrack, check_emotions
from models.errors import InputError
from models.flame import FlameParams
from models.speech import SignalSpeechDriver, SpeechDriver
from renderer.binding import bind
from renderer.camera import Camera, frame_head, orbit_camera
from renderer.render import backend_device, render, resolve_backend

from .avatar import Avatar
from .clip import Clip, still_clip


VIEW_PRESETS = {  # name: (yaw, pitch) in degrees; yaw > 0 looks from the subject's left
    "Front": (0.0, 0.0),
    "Three-quarter left": (35.0, 0.0),
    "Three-quarter right": (-35.0, 0.0),
    "Profile left": (90.0, 0.0),
    "Profile right": (-90.0, 0.0),
}


@dataclass
class View:
    """Camera and image settings. distance None → auto-framed."""

    width: int = 512
    height: int = 512
    yaw: float = 0.0
    pitch: float = 0.0
    distance: Optional[float] = None
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pan: tuple[float, float] = (0.0, 0.0)  # metres along the camera's right and up axes


@dataclass
class Performance:
    """How the face is driven on top of the clip: emotion mix and stream gains.

    With keyframes the emotions follow the keyframe track; without, the `emotions` mix holds
    for the whole clip."""

    emotions: dict[str, float] = field(default_factory=dict)
    speech_gain: float = 1.0
    expression_gain: float = 1.0
    keyframes: EmotionTrack = EmotionTrack()

    def intensities(self, times: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """(T, E) emotion intensities at `times` seconds, emotions in the order of `names`."""
        if self.keyframes:
            return self.keyframes.intensities(times, names)
        constant = np.array([self.emotions.get(n, 0.0) for n in names], np.float32)
        return np.tile(constant, (len(times), 1))


class Cancelled(Exception):
    """Rendering stopped because the caller asked it to."""


GENERATED_CHUNK = 2048  # frames the learned generator decodes (and the player keeps) at a time
_KEPT_CHUNKS = 8


class Player:
    """Renders frames of `clip` for `avatar` under `view` and `performance`."""

    def __init__(self, avatar: Avatar, backend: str = "auto", driver: Optional[SpeechDriver] = None) -> None:
        self.backend = resolve_backend(backend)
        self.device = backend_device(self.backend)
        self.avatar = avatar
        self.gaussians = avatar.gaussians.to(self.device)
        self.rig = avatar.rig.to(self.device) if avatar.rig is not None else None
        bs = avatar.blendshapes
        self.driver = driver or avatar.driver or (SignalSpeechDriver(bs.speech_names) if bs is not None else None)
        self.view = View()
        self.performance = Performance()
        self.clip: Clip = still_clip(1.0)
        self._framing = self._framing_points()
        self._pose_cache: dict = {}  # see _posed
        self._generated_cache: dict = {}  # see _generated_chunk
        self._intensity_cache: dict = {}  # see _intensities

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

    def _check_emotion_names(self, names: Sequence[str]) -> None:
        bs = self.avatar.blendshapes
        if names and bs is None:
            raise InputError("emotions need a blendshape model (--blendshapes FILE)")
        if bs is not None:
            check_emotions(dict.fromkeys(names, 0.0), bs.emotion_names)

    def set_emotions(self, emotions: dict[str, float]) -> None:
        self._check_emotion_names(list(emotions))
        self.performance.emotions = dict(emotions)

    def set_keyframes(self, track: EmotionTrack) -> None:
        self._check_emotion_names(sorted(track.emotion_names()))
        self.performance.keyframes = track

    def set_performance(self, performance: Performance) -> None:
        """Take a whole performance (e.g. a loaded preset) after checking its emotion names."""
        self._check_emotion_names(sorted({*performance.emotions, *performance.keyframes.emotion_names()}))
        self.performance = copy.deepcopy(performance)

    def snapshot(self) -> Player:
        """A copy with its own settings sharing the loaded data: a render thread can keep
        rendering it while the settings of this one change."""
        twin = copy.copy(self)
        twin.view = copy.deepcopy(self.view)
        twin.performance = copy.deepcopy(self.performance)
        return twin

    def auto_distance(self) -> float:
        """The camera distance that frames the neutral head at the current image size."""
        return frame_head(self._framing, self.view.width, self.view.height)[1]

    def camera(self) -> Camera:
        """Orbit camera around the neutral head (shifted by the pan); auto-framed unless a
        distance is set."""
        v = self.view
        target, auto_distance = frame_head(self._framing, v.width, v.height)
        distance = v.distance if v.distance is not None else auto_distance
        camera = orbit_camera(target, v.yaw, v.pitch, distance, v.width, v.height)
        if v.pan == (0.0, 0.0):
            return camera
        right, down = camera.viewmat[0, :3], camera.viewmat[1, :3]
        return orbit_camera(target + v.pan[0] * right - v.pan[1] * down, v.yaw, v.pitch, distance,
                            v.width, v.height)

    def weights(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Speech (T, Ks) and expression (T, Ke) weights of frames start..stop-1 with the
        gains applied: clip weights plus the emotions (or their keyframes) at each frame time."""
        clip, perf, bs = self.clip, self.performance, self.avatar.blendshapes
        if bs is None:
            raise InputError("weights need a blendshape model (--blendshapes FILE)")
        frames = stop - start
        if clip.features is not None:
            speech, expression = self._generated(start, stop)
        else:
            speech = clip.speech[start:stop] if clip.speech is not None else np.zeros((frames, len(bs.speech_names)), np.float32)
            times = np.arange(start, stop) / clip.fps
            expression = bs.expression_weights(perf.intensities(times, bs.emotion_names), frames)
        if clip.expression is not None:
            expression = expression + clip.expression[start:stop]
        return perf.speech_gain * speech, perf.expression_gain * expression

    def _intensities(self) -> np.ndarray:
        """The performance's emotion intensities at every frame of the clip (T, E), kept while
        the clip and the emotions stay the same (shared with snapshots)."""
        clip, perf = self.clip, self.performance
        cached = self._intensity_cache.get("last")  # one read: other threads may replace it
        if cached is not None and cached[0] is clip and cached[1] == (perf.emotions, perf.keyframes):
            return cached[2]
        names = self.avatar.blendshapes.emotion_names
        value = perf.intensities(np.arange(clip.num_frames) / clip.fps, names)
        self._intensity_cache["last"] = (clip, (dict(perf.emotions), perf.keyframes), value)
        return value

    def _generated(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """The learned generator's speech and expression weights of frames start..stop-1 under
        the performance's per-frame emotions, assembled from GENERATED_CHUNK-frame chunks."""
        intensities = self._intensities()
        chunks = range(start // GENERATED_CHUNK, -(-stop // GENERATED_CHUNK))
        if not chunks:
            return self.driver.generate(self.clip.features, intensities, start, start)
        values = [self._generated_chunk(chunk, intensities) for chunk in chunks]
        first = chunks[0] * GENERATED_CHUNK
        speech, expression = (np.concatenate([value[i] for value in values]) for i in range(2))
        return speech[start - first:stop - first], expression[start - first:stop - first]

    def _generated_chunk(self, chunk: int, intensities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One chunk, decoded with the network's reach each side (equal to decoding the whole
        clip, as in training). The last few are kept, shared with snapshots, so a slider move
        reruns only the decoder of the chunks shown."""
        features = self.clip.features
        cached = self._generated_cache.get(chunk)  # one read: other threads may replace it
        if cached is not None and cached[0] is features and cached[1] is intensities:
            return cached[2]
        first = chunk * GENERATED_CHUNK
        value = self.driver.generate(features, intensities, first, min(first + GENERATED_CHUNK, self.clip.num_frames))
        kept = list(self._generated_cache)  # one call: other threads may change it
        for old in kept[:max(0, len(kept) - _KEPT_CHUNKS + 1)]:
            self._generated_cache.pop(old, None)
        self._generated_cache[chunk] = (features, intensities, value)
        return value

    def weight_sequence(self) -> WeightSequence:
        """The whole clip's weights as a weights file: re-rendered with gains 1 and no
        emotions it gives the same frames."""
        bs = self.avatar.blendshapes
        speech, expression = self.weights(0, self.clip.num_frames)
        return WeightSequence(fps=self.clip.fps, speech=speech, expression=expression,
                              speech_names=bs.speech_names, expression_names=bs.expression_names)

    def flame_params(self, start: int, stop: int) -> FlameParams:
        """Per-frame FLAME parameters of frames start..stop-1 under the current settings."""
        clip, bs = self.clip, self.avatar.blendshapes
        frames = stop - start
        params = clip.motion.slice(start, stop) if clip.motion is not None else self._neutral(frames)
        params.shape, params.static_offset = self.avatar.params.shape, self.avatar.params.static_offset
        if bs is None:
            return params
        expr, jaw = bs.to_flame(*self.weights(start, stop))
        params.expr = np.asarray(params.expr, np.float32) + expr
        params.jaw_pose = np.asarray(params.jaw_pose, np.float32) + jaw
        return params

    @torch.no_grad()
    def render_range(self, start: int, stop: int, batch: int = 8, cancel: Optional[threading.Event] = None,
                     require_visible: bool = False) -> Iterator[np.ndarray]:
        """uint8 frames [H, W, 3] of frames start..stop-1, computed `batch` frames at a time
        so a long clip streams in bounded memory. With `require_visible`, a range in which no
        frame shows anything but the background ends in an InputError after its last frame
        (a file being written from it is then not kept)."""
        camera = self.camera()
        background = torch.tensor(self.view.background, dtype=torch.float32, device=self.device)
        plain = (background.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
        seen = not require_visible
        for first in range(start, stop, batch):
            last = min(first + batch, stop)
            if self.rig is not None:
                means, quats, scales = self._posed(first, last)
            for k in range(last - first):
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                g = self.gaussians if self.rig is None else self.gaussians.with_world(means[k], quats[k], scales[k])
                image = (render(g, camera, background, self.backend).clamp(0, 1) * 255 + 0.5).to(torch.uint8)
                seen = seen or bool((image != plain).any())
                yield image.cpu().numpy()
        if not seen and stop > start:
            raise InputError(f"{self.avatar.source}: nothing of the avatar is visible in any frame from this view "
                             "(every Gaussian is transparent, too small or outside the image); nothing was written")

    def _posed(self, first: int, last: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """World Gaussians of frames first..last-1. The last result is kept (and shared with
        snapshots) so that moving the camera over a paused frame skips FLAME and binding.
        Values that overflow on the way (absurd FLAME parameters or avatar values) stop here,
        naming the avatar and the frame, rather than render as nothing."""
        cached = self._pose_cache.get("last")  # one read: other threads may replace it
        if cached is not None:
            (clip, *settings), value = cached
            if clip is self.clip and settings == [first, last, self.performance]:
                return value
        vertices = self.rig(self.flame_params(first, last))
        value = bind(self.gaussians, vertices, self.rig.faces)
        finite = torch.stack([torch.isfinite(v).flatten(1).all(1) for v in value]).all(0)
        if not bool(finite.all()):
            frame = first + int(torch.nonzero(~finite)[0])
            raise InputError(f"{self.avatar.source}: frame {frame} of {self.clip.origin or 'the clip'} poses Gaussians "
                             "at infinite or undefined positions: the FLAME parameters or the avatar's values are "
                             "out of range")
        self._pose_cache["last"] = ((self.clip, first, last, copy.deepcopy(self.performance)), value)
        return value

    def render_frame(self, index: int) -> np.ndarray:
        return next(self.render_range(index, index + 1))
