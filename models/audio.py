"""Speech audio as the rest of the pipeline wants it: float32 mono in [-1, 1] plus its rate."""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

from models.errors import InputError
from models.files import atomic_write


def as_mono_float(samples: np.ndarray, source: str = "audio") -> np.ndarray:
    """Any WAV-like sample array ([n] or [n, channels], int or float) as float32 mono in [-1, 1].

    Integer PCM is scaled by its full range (8-bit WAV is unsigned, wider PCM signed and, as
    scipy returns it, left-justified), so every bit depth lands on the same amplitude scale.
    """
    x = np.asarray(samples)
    if x.ndim not in (1, 2):
        raise InputError(f"{source}: samples must be [n] or [n, channels], got shape {x.shape}")
    if x.dtype == np.uint8:
        x = (x.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(x.dtype, np.signedinteger):
        x = x.astype(np.float64) / float(2 ** (8 * x.dtype.itemsize - 1))
    elif not np.issubdtype(x.dtype, np.floating):
        raise InputError(f"{source}: samples of dtype {x.dtype} are not audio")
    if x.ndim == 2:
        x = x.mean(axis=1)
    if not np.isfinite(x).all():
        raise InputError(f"{source}: samples contain NaN or infinite values")
    return np.clip(x, -1.0, 1.0).astype(np.float32, copy=False)


@dataclass
class Audio:
    """Mono speech; normalises whatever samples it is given so the invariant always holds."""

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        if int(self.sample_rate) != self.sample_rate or self.sample_rate <= 0:
            raise InputError(f"audio: sample rate {self.sample_rate} is not a positive integer")
        self.sample_rate = int(self.sample_rate)
        self.samples = as_mono_float(self.samples)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate


def load_wav(path: str | os.PathLike) -> Audio:
    """Read a WAV file of any rate, channel count and PCM/float format (EXTENSIBLE included)."""
    try:
        rate, data = wavfile.read(path)
    except FileNotFoundError:
        raise InputError(f"{path}: file does not exist") from None
    except (ValueError, EOFError, OSError) as err:
        raise InputError(f"{path}: not a readable WAV file ({err})") from None
    samples = as_mono_float(data, source=str(path))
    if samples.size == 0:
        raise InputError(f"{path}: WAV file contains no samples")
    return Audio(samples, rate)


def resample(audio: Audio, rate: int) -> Audio:
    """Polyphase resampling by the exact rational factor rate / audio.sample_rate."""
    if int(rate) != rate or rate <= 0:
        raise InputError(f"resample: target rate {rate} is not a positive integer")
    if rate == audio.sample_rate:
        return Audio(audio.samples.copy(), audio.sample_rate)
    factor = Fraction(int(rate), audio.sample_rate)
    out = resample_poly(audio.samples, factor.numerator, factor.denominator)
    return Audio(np.clip(out, -1.0, 1.0).astype(np.float32), int(rate))


def fit_length(audio: Audio, duration: float) -> Audio:
    """Trim or pad with silence to round(duration * rate) samples, so audio matches the frames."""
    if not np.isfinite(duration) or duration < 0:
        raise InputError(f"fit_length: duration {duration} is not a non-negative number")
    n = int(round(duration * audio.sample_rate))
    samples = np.zeros(n, dtype=np.float32)
    keep = min(n, len(audio.samples))
    samples[:keep] = audio.samples[:keep]
    return Audio(samples, audio.sample_rate)


def save_wav(audio: Audio, path: str | os.PathLike) -> None:
    """Write 16-bit PCM mono, the format every player and video muxer accepts."""
    pcm = np.clip(np.round(audio.samples * 32768.0), -32768, 32767).astype(np.int16)  # as loaded
    atomic_write(path, lambda handle: wavfile.write(handle, audio.sample_rate, pcm))
