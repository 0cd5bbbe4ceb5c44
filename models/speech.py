"""Speech drivers: audio in, per-frame speech blendshape weights out.

`SpeechDriver` is the interface the player uses; `SignalSpeechDriver` is a hand-made, signal-based
implementation that needs no training data, so the studio animates speech out of the box. A learned
driver can replace it behind the same interface.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from models.audio import Audio, as_mono_float, resample
from models.errors import InputError

JAW_OPEN = "jaw_open"
LIPS_WIDE = "lips_wide"
LIPS_ROUND = "lips_round"
LIPS_CLOSED = "lips_closed"

ANALYSIS_RATE = 16000  # speech cues live below 8 kHz; a fixed rate makes every threshold fixed
_CHUNK_FRAMES = 2048  # bounds the [frames, window] buffers on long clips
_ATTACK_S = 0.015  # the mouth opens quickly ...
_RELEASE_S = 0.04  # ... and closes a little slower, so it does not chatter


def speech_input(audio: np.ndarray, sample_rate: int, fps: float, who: str) -> tuple[np.ndarray, int]:
    """Checked float mono samples and the clip's frame count T = round(duration · fps)."""
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise InputError(f"{who}: sample rate {sample_rate} is not a positive integer")
    if not np.isfinite(fps) or fps <= 0:
        raise InputError(f"{who}: fps {fps} is not a positive number")
    samples = as_mono_float(audio, source="speech audio")
    return samples, int(round(len(samples) / sample_rate * fps))


class SpeechDriver(Protocol):
    """Maps speech audio to weights of the named speech blendshapes."""

    speech_names: tuple[str, ...]

    def weights(self, audio: np.ndarray, sample_rate: int, fps: float) -> np.ndarray:
        """[T, Ks] weights, T = round(duration · fps); audio is [n] or [n, channels], int or float."""
        ...


@dataclass(frozen=True)
class _Features:
    """Per-frame acoustic cues."""

    level: np.ndarray  # [0, 1] loudness above the clip's noise floor
    noisiness: np.ndarray  # [0, 1] spectral flatness: fricatives, breath, noise
    voicing: np.ndarray  # [0, 1] tonal and low-band dominated: vowels, nasals
    brightness: np.ndarray  # log2(centroid / the speaker's mean): > 0 for /i/ /e/, < 0 for /o/ /u/


class SignalSpeechDriver:
    """Signal-based lip sync, no learning: loudness and spectral shape, frame by frame.

    - `jaw_open` follows the loudness envelope (dB above the noise floor), reduced on noisy
      (fricative-like) frames;
    - `lips_wide` / `lips_round`: voiced frames whose (pre-emphasised) spectral centroid lies
      above / below the clip's voiced average, as in /i/ /e/ versus /o/ /u/;
    - `lips_closed`: short loudness dips with speech on both sides (stop closures, /m/ /b/ /p/);
    - any other speech blendshape gets weight 0.
    Weights are attack/release smoothed and lie in [0, 1]; silence gives 0. Loudness and
    centroid are normalised per clip (noise floor, speaker's average), so give it whole clips.
    """

    def __init__(self, speech_names: Sequence[str]) -> None:
        self.speech_names = tuple(speech_names)
        if len(set(self.speech_names)) != len(self.speech_names):
            raise InputError(f"speech driver: duplicate speech names in {list(self.speech_names)}")

    def weights(self, audio: np.ndarray, sample_rate: int, fps: float) -> np.ndarray:
        """[T, Ks] weights; the audio is analysed at 16 kHz whatever its rate."""
        samples, frames = speech_input(audio, sample_rate, fps, "speech driver")
        out = np.zeros((frames, len(self.speech_names)), dtype=np.float32)
        if frames == 0:
            return out
        signal = resample(Audio(samples, int(sample_rate)), ANALYSIS_RATE).samples
        cues = _mouth_cues(_features(signal, fps, frames), fps)
        for column, name in enumerate(self.speech_names):
            if name in cues:
                out[:, column] = cues[name]
        return np.clip(_attack_release(out, fps), 0.0, 1.0)


def _power(padded: np.ndarray, starts: np.ndarray, hann: np.ndarray, nfft: int) -> np.ndarray:
    """Power spectra [len(starts), nfft // 2 + 1] of Hann windows starting at `starts`."""
    windows = sliding_window_view(padded, len(hann))[starts] * hann
    return np.abs(np.fft.rfft(windows, nfft, axis=1)) ** 2


def _features(signal: np.ndarray, fps: float, frames: int) -> _Features:
    """Cues from Hann windows centred on each frame time i / fps."""
    win = max(int(0.032 * ANALYSIS_RATE), int(round(1.5 * ANALYSIS_RATE / fps)))
    nfft = 1 << (win - 1).bit_length()
    half = win // 2
    padded = np.pad(signal, (half, win))
    emphasised = np.pad(signal[1:] - 0.97 * signal[:-1], (half + 1, win))
    starts = np.round(np.arange(frames) * ANALYSIS_RATE / fps).astype(np.int64)
    hann = np.hanning(win).astype(np.float32)
    freqs = np.fft.rfftfreq(nfft, 1.0 / ANALYSIS_RATE)
    band = (freqs >= 80) & (freqs <= 7000)
    low = (freqs >= 80) & (freqs <= 1000)
    high = (freqs >= 2500) & (freqs <= 7000)
    formant = (freqs >= 150) & (freqs <= 4000)

    rms, flatness, low_high_db = (np.empty(frames) for _ in range(3))
    tilted = np.empty((frames, int(formant.sum())), dtype=np.float32)
    for first in range(0, frames, _CHUNK_FRAMES):
        rows = slice(first, min(first + _CHUNK_FRAMES, frames))
        power = _power(padded, starts[rows], hann, nfft) + 1e-12
        rms[rows] = np.sqrt(2.0 * power.sum(axis=1) / nfft / np.sum(hann**2))  # Parseval
        in_band = power[:, band]
        flatness[rows] = np.exp(np.mean(np.log(in_band), axis=1)) / np.mean(in_band, axis=1)
        low_high_db[rows] = 10 * np.log10(power[:, low].sum(axis=1) / power[:, high].sum(axis=1))
        tilted[rows] = _power(emphasised, starts[rows], hann, nfft)[:, formant]

    # amplitude (not power) centroid of the pre-emphasised formant band, so that F2 is not
    # drowned by F1; the mean spectrum of the clip's quietest tenth (its noise) is subtracted first
    noise = tilted[rms <= np.percentile(rms, 10)].mean(axis=0)
    amplitude = np.sqrt(np.maximum(tilted - noise, 0.0))
    centroid = (amplitude @ freqs[formant]) / (amplitude.sum(axis=1) + 1e-12)
    noisiness = np.clip((flatness - 0.08) / 0.3, 0.0, 1.0)
    voicing = (1.0 - noisiness) / (1.0 + np.exp(-(low_high_db - 3.0) / 4.0))
    level = _loudness(rms)
    # relative to the clip's mean over voiced frames: voices differ more than their vowels do
    log_centroid = np.log2(np.maximum(centroid, 1.0))
    weight = level * voicing
    reference = (weight @ log_centroid) / (weight.sum() + 1e-12)
    brightness = log_centroid - reference
    return _Features(level=level, noisiness=noisiness, voicing=voicing, brightness=brightness)


def _loudness(rms: np.ndarray) -> np.ndarray:
    """dB above the clip's noise floor, scaled so its loud frames reach 1.

    The floor is the 10th percentile (pauses), but at least 30 dB under the 95th percentile
    (speech without pauses) and never under −60 dBFS (digital silence stays silent).
    """
    db = 20 * np.log10(rms + 1e-9)
    peak = np.percentile(db, 95)
    floor = max(min(np.percentile(db, 10), peak - 30.0), -60.0)
    return np.clip((db - floor) / max(peak - floor, 1e-6), 0.0, 1.0)


def _mouth_cues(f: _Features, fps: float) -> dict[str, np.ndarray]:
    """Blendshape weights from the cues, before smoothing."""
    voiced = f.level * f.voicing
    context = max(1, int(round(0.12 * fps)))  # a closure is shorter than ~2 × 120 ms
    padded = np.pad(f.level, context)
    running_max = sliding_window_view(padded, context).max(axis=1)
    before, after = running_max[: len(f.level)], running_max[context + 1 :]
    dip = np.clip(np.minimum(before, after) - f.level, 0.0, None)
    # a quiet noisy dip is background noise in a closure; a loud noisy one is a fricative
    fricative = f.noisiness * np.clip((f.level - 0.2) / 0.3, 0.0, 1.0)
    closed = np.clip((dip - 0.2) / 0.3, 0.0, 1.0) * (1.0 - fricative)
    return {
        JAW_OPEN: f.level * (1.0 - 0.5 * f.noisiness) * (1.0 - closed),
        LIPS_WIDE: voiced * np.clip(f.brightness / 0.4, 0.0, 1.0),
        LIPS_ROUND: voiced * np.clip(-f.brightness / 0.4, 0.0, 1.0),
        LIPS_CLOSED: closed,
    }


def _attack_release(weights: np.ndarray, fps: float) -> np.ndarray:
    """One-pole follower per column: fast rise, slower fall (sequential by nature)."""
    attack = 1.0 - np.exp(-1.0 / (fps * _ATTACK_S))
    release = 1.0 - np.exp(-1.0 / (fps * _RELEASE_S))
    out = np.empty_like(weights)
    state = np.zeros(weights.shape[1], dtype=weights.dtype)
    for t, target in enumerate(weights):
        state += np.where(target > state, attack, release) * (target - state)
        out[t] = state
    return out
