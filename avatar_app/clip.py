"""What drives a clip: audio, a weights file or a FLAME motion file, on a fixed frame grid."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from models.audio import Audio, fit_length, load_wav
from models.blendshapes import BlendshapeModel, WeightSequence
from models.errors import InputError
from models.flame import FlameParams, load_flame_params
from models.generator import LearnedDriver
from models.speech import SpeechDriver

DEFAULT_FPS = 30.0
STILL_SECONDS = 3.0


@dataclass
class Clip:
    """A timeline of `num_frames` frames at `fps`. Speech/expression weights (T, K) come from
    audio or a weights file, or from a learned generator's `features` of the audio (then the
    player generates the weights under the current emotions); `motion` holds FLAME
    parameters played one per frame."""

    fps: float
    num_frames: int
    audio: Optional[Audio] = None
    speech: Optional[np.ndarray] = None
    expression: Optional[np.ndarray] = None
    motion: Optional[FlameParams] = None
    features: Optional[torch.Tensor] = None  # a learned generator's audio features [T, F]

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


def frame_count(duration: float, fps: float) -> int:
    """A clip of D seconds has exactly round(D·fps) frames (DESIGN §3)."""
    return int(round(duration * fps))


def _check_timing(fps: float, duration: Optional[float]) -> None:
    if not np.isfinite(fps) or fps <= 0:
        raise InputError(f"--fps {fps}: must be a positive number")
    if duration is not None and (not np.isfinite(duration) or duration <= 0):
        raise InputError(f"--duration {duration}: must be a positive number of seconds")


def _resample_rows(values: np.ndarray, src_fps: float, fps: float, frames: int) -> np.ndarray:
    """Linear interpolation of per-frame rows onto another frame rate."""
    if len(values) == 0:
        return np.zeros((frames, values.shape[1]), np.float32)
    t_src = np.arange(len(values)) / src_fps
    t = np.arange(frames) / fps
    return np.stack([np.interp(t, t_src, values[:, k]) for k in range(values.shape[1])], -1).astype(np.float32)


def with_soundtrack(clip: Clip, audio_path: Optional[str | Path]) -> Clip:
    """Attach audio trimmed/padded to the clip's exact duration."""
    if audio_path is not None:
        clip.audio = fit_length(load_wav(audio_path), clip.duration)
    return clip


def clip_from_audio(audio_path: str | Path, driver: SpeechDriver, fps: float = DEFAULT_FPS,
                    duration: Optional[float] = None) -> Clip:
    _check_timing(fps, duration)
    audio = load_wav(audio_path)
    frames = frame_count(duration if duration is not None else audio.duration, fps)
    audio = fit_length(audio, frames / fps)
    if isinstance(driver, LearnedDriver):  # speech and expression come from it at play time
        return Clip(fps, frames, audio=audio, features=driver.features(audio.samples, audio.sample_rate, fps))
    speech = driver.weights(audio.samples, audio.sample_rate, fps)
    return Clip(fps, frames, audio=audio, speech=speech)


def clip_from_weights(path: str | Path, model: BlendshapeModel, fps: float = DEFAULT_FPS,
                      duration: Optional[float] = None) -> Clip:
    _check_timing(fps, duration)
    seq = WeightSequence.load(path)
    seq.check_against(model)
    frames = frame_count(duration if duration is not None else len(seq.speech) / float(seq.fps), fps)
    return Clip(fps, frames, speech=_resample_rows(seq.speech, float(seq.fps), fps, frames),
                expression=_resample_rows(seq.expression, float(seq.fps), fps, frames))


def clip_from_motion(path: str | Path, fps: float = DEFAULT_FPS, duration: Optional[float] = None) -> Clip:
    """Motion frames are played one per output frame."""
    _check_timing(fps, duration)
    motion = load_flame_params(path)
    frames = motion.num_frames if duration is None else min(motion.num_frames, frame_count(duration, fps))
    return Clip(fps, frames, motion=motion.slice(0, frames))


def still_clip(duration: float, fps: float = DEFAULT_FPS) -> Clip:
    _check_timing(fps, duration)
    return Clip(fps, frame_count(duration, fps))


@dataclass(frozen=True)
class ClipSource:
    """Where a clip comes from, kept so it can be rebuilt at another frame rate (an export at
    a chosen fps) or after the avatar changes. `audio` drives the speech unless `weights` or
    `motion` do; then it is their soundtrack. No source at all is a still clip."""

    audio: Optional[Path] = None
    weights: Optional[Path] = None
    motion: Optional[Path] = None
    duration: Optional[float] = None

    def build(self, driver: Optional[SpeechDriver], blendshapes: Optional[BlendshapeModel],
              fps: float = DEFAULT_FPS) -> Clip:
        needs_blendshapes = self.weights or (self.audio and not self.motion)
        if needs_blendshapes and (blendshapes is None or driver is None):
            raise InputError("driving from audio or weights needs a blendshape model (--blendshapes FILE)")
        if self.weights:
            return with_soundtrack(clip_from_weights(self.weights, blendshapes, fps, self.duration), self.audio)
        if self.motion:
            return with_soundtrack(clip_from_motion(self.motion, fps, self.duration), self.audio)
        if self.audio:
            return clip_from_audio(self.audio, driver, fps, self.duration)
        return still_clip(self.duration or STILL_SECONDS, fps)

    def describe(self) -> str:
        if self.weights or self.motion:
            text = Path(self.weights or self.motion).name
            return text + (f" with soundtrack {Path(self.audio).name}" if self.audio else "")
        return Path(self.audio).name if self.audio else "still"
