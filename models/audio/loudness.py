"""Loudness of speech clips, so that a set of stimuli can be brought to one level.

Two measures, chosen by a target such as `-23LUFS` or `-20dBFS`:
- integrated loudness per ITU-R BS.1770-4 (LUFS): K-weighting (a high shelf and a high pass,
  designed for any sample rate as libebur128 does, which reproduces the standard's 48 kHz
  coefficients), mean square over 400 ms blocks every 100 ms, an absolute gate at −70 LUFS and a
  relative gate 10 LU under the ungated level. Mono: one channel of weight 1.
- RMS level (dBFS, a full-scale square wave is 0 dBFS, a full-scale sine −3.01).
Silence is left alone: it has no loudness to normalise.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from common.errors import InputError
from models.audio.sources import AudioSource, AudioView, chunks

_BLOCK_S, _STEP_S = 0.4, 0.1
_ABSOLUTE_GATE, _RELATIVE_GATE = -70.0, -10.0
_UNITS = {"lufs": "LUFS", "dbfs": "dBFS"}


def k_weighting(rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The two biquads (b, a) of BS.1770's K-weighting at `rate` Hz."""
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh ** 0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf = (np.array([vh + vb * k / q + k * k, 2.0 * (k * k - vh), vh - vb * k / q + k * k]) / a0,
             np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]))
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1.0 + k / q + k * k
    high_pass = (np.array([1.0, -2.0, 1.0]), np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]))
    return [shelf, high_pass]


def integrated_loudness(audio: AudioSource) -> float:
    """BS.1770-4 integrated loudness in LUFS; −inf for silence. A clip shorter than one
    400 ms block is measured as one block. Streams through the audio a chunk at a time."""
    n, rate = audio.num_samples, audio.sample_rate
    block = int(round(_BLOCK_S * rate))
    step = int(round(_STEP_S * rate))
    if n <= block:
        ends = np.array([0, n])  # one block: the whole clip
    else:
        starts = np.arange(0, n - block + 1, step)
        ends = np.unique(np.concatenate([starts, starts + block]))
    energy = np.zeros(len(ends))  # Σ of the K-weighted squares before each of `ends`
    filters = [(b, a, np.zeros(2)) for b, a in k_weighting(rate)]
    total, first = 0.0, 0
    for samples in chunks(audio):
        x = samples.astype(np.float64)
        for i, (b, a, state) in enumerate(filters):
            x, state = lfilter(b, a, x, zi=state)
            filters[i] = (b, a, state)
        running = total + np.cumsum(np.square(x))
        picked = (ends > first) & (ends <= first + len(x))
        energy[picked] = running[ends[picked] - first - 1]
        total, first = float(running[-1]), first + len(x)
    if n <= block:
        powers = np.array([energy[1] / n if n else 0.0])
    else:
        powers = (energy[np.searchsorted(ends, starts + block)] - energy[np.searchsorted(ends, starts)]) / block
    with np.errstate(divide="ignore"):
        levels = -0.691 + 10.0 * np.log10(powers)
    gated = powers[levels > _ABSOLUTE_GATE]
    if not len(gated):
        return -math.inf
    relative = -0.691 + 10.0 * math.log10(gated.mean()) + _RELATIVE_GATE
    kept = powers[(levels > _ABSOLUTE_GATE) & (levels > relative)]
    return -0.691 + 10.0 * math.log10(kept.mean())


def rms_level(audio: AudioSource) -> float:
    """RMS level in dBFS; −inf for silence."""
    square_sum = sum(float(np.square(x.astype(np.float64)).sum()) for x in chunks(audio))
    mean_square = square_sum / max(audio.num_samples, 1)
    return 10.0 * math.log10(mean_square) if mean_square > 0 else -math.inf


def frame_levels(audio: AudioSource, fps: float, num_frames: int, frames_per_read: int = 2048) -> np.ndarray:
    """RMS level in dBFS of each video frame's samples (frame i: i/fps ≤ t < (i+1)/fps), read a
    window at a time; silence is −120."""
    levels = np.empty(num_frames)
    bounds = np.round(np.arange(num_frames + 1) * audio.sample_rate / fps).astype(np.int64)
    for first in range(0, num_frames, frames_per_read):
        last = min(first + frames_per_read, num_frames)
        samples = audio.read(int(bounds[first]), int(bounds[last] - bounds[first])).astype(np.float64)
        cuts = bounds[first:last + 1] - bounds[first]
        square = np.add.reduceat(np.square(samples), cuts[:-1]) if len(samples) else np.zeros(last - first)
        square[np.diff(cuts) == 0] = 0.0
        levels[first:last] = 10 * np.log10(np.maximum(square / np.maximum(np.diff(cuts), 1), 1e-12))
    return levels


@dataclass(frozen=True)
class LoudnessTarget:
    """A level and the measure it is in: `LUFS` (BS.1770 integrated) or `dBFS` (RMS)."""

    level: float
    unit: str

    @classmethod
    def parse(cls, text: str) -> LoudnessTarget:
        """`-23LUFS`, `-23 LUFS`, `-20dBFS`; a bare number is LUFS."""
        match = re.fullmatch(r"\s*([-+]?\d+(?:\.\d*)?)\s*(lufs|dbfs)?\s*", text, re.IGNORECASE)
        if not match:
            raise InputError(f"loudness target {text!r}: expected e.g. -23LUFS, -20dBFS (RMS) or off")
        level = float(match.group(1))
        if not -70.0 < level <= 0.0:
            raise InputError(f"loudness target {text!r}: the level must lie in -70..0")
        return cls(level, _UNITS[(match.group(2) or "lufs").lower()])

    def __str__(self) -> str:
        return f"{self.level:g} {self.unit}"

    def measure(self, audio: AudioSource) -> float:
        return integrated_loudness(audio) if self.unit == "LUFS" else rms_level(audio)


@dataclass(frozen=True)
class Normalisation:
    """What bringing one clip to a target did: level before, gain, level after, and the
    samples that had to be clipped at full scale (their count, 0 when none)."""

    level_in: float
    gain_db: float
    level_out: float
    clipped_samples: int


def normalise(audio: AudioSource, target: LoudnessTarget) -> tuple[AudioSource, Normalisation]:
    """`audio` brought to `target` by one gain (applied as it is read); silence is returned
    unchanged. The clipped samples are counted as the gain will clip them."""
    level = target.measure(audio)
    if not math.isfinite(level):
        return audio, Normalisation(level, 0.0, level, 0)
    gain_db = target.level - level
    out = AudioView(audio, 0, audio.num_samples, 10.0 ** (gain_db / 20.0))
    factor = np.float32(out.gain)
    clipped = sum(int(np.count_nonzero(np.abs(x * factor) > 1.0)) for x in chunks(audio))
    return out, Normalisation(level, gain_db, target.measure(out), clipped)
