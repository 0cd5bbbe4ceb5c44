"""The one contract every speech driver keeps, so a clip always carries the same kind of thing.

A driver turns a clip's audio into features once (`analyse`, the slow part) and turns those
features plus per-frame emotion intensities into speech and expression weights for any range
of frames (`weights`, cheap enough to rerun when a slider moves). The player never asks which
driver it holds.
"""
from __future__ import annotations

from collections.abc import Sized
from typing import Protocol

import numpy as np

from common.errors import InputError
from common.limits import MAX_FPS, MIN_FPS
from models.audio.sources import AudioSource, duration


class WeightReader(Protocol):
    """Reads a clip's features as weights under per-frame emotions."""

    speech_names: tuple[str, ...]
    emotion_names: tuple[str, ...]

    def weights(self, features: Sized, intensities: np.ndarray, start: int = 0,
                stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Speech (n, Ks) and expression (n, Ke) weights of frames start..stop-1 (default: all),
        under the clip's emotion intensities (T, E) in the order of `emotion_names`."""
        ...


class SpeechDriver(WeightReader, Protocol):
    """Audio in, per-frame weights out: `analyse` once per clip, `weights` per frame range."""

    def analyse(self, audio: AudioSource, fps: float) -> Sized:
        """The clip's features, one per frame: T = round(duration · fps)."""
        ...


def clip_frames(audio: AudioSource, fps: float, who: str) -> int:
    """The clip's frame count T = round(duration · fps), after checking the frame rate."""
    if not np.isfinite(fps) or not MIN_FPS <= fps <= MAX_FPS:
        raise InputError(f"{who}: fps {fps} is not a frame rate in {MIN_FPS:g}..{MAX_FPS:g}")
    return int(round(duration(audio) * fps))


def frame_range(frames: int, start: int, stop: int | None, who: str) -> int:
    """`stop` (default: the end) after checking start..stop lies within the clip's frames."""
    stop = frames if stop is None else stop
    if not 0 <= start <= stop <= frames:
        raise InputError(f"{who}: frames {start}..{stop} are not within the clip's {frames}")
    return stop


def neutral_speech(driver: SpeechDriver, audio: AudioSource, fps: float) -> np.ndarray:
    """Speech weights (T, Ks) of `audio` with no emotion: what the driver says on its own."""
    features = driver.analyse(audio, fps)
    neutral = np.zeros((len(features), len(driver.emotion_names)), np.float32)
    return driver.weights(features, neutral)[0]
