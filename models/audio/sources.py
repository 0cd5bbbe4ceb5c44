"""Speech audio as the rest of the pipeline wants it: float32 mono in [-1, 1] plus its rate.

Audio is read a window at a time (`AudioSource.read`), so an hour of speech costs what one
window costs: `open_wav` validates a WAV header and decodes only the samples asked for, and
`AudioView` cuts, pads and scales a source without copying it. `Audio` holds samples in memory.
Files in other formats go through ffmpeg (`decode.open_audio`, which calls `open_wav` for a WAV).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Iterator, Protocol

import numpy as np
from scipy.signal import resample_poly

from common.atomic import atomic_write
from common.errors import InputError
from common.files import check_input_file
from common.limits import MAX_CHANNELS, MAX_DURATION_S, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

CHUNK_SAMPLES = 1 << 18  # what one read of a long source holds (1 MiB of float32)


class AudioSource(Protocol):
    """Mono audio read a window at a time; samples outside 0..num_samples-1 read as silence."""

    sample_rate: int
    num_samples: int

    def read(self, start: int, count: int) -> np.ndarray:
        """float32 samples start..start+count-1 in [-1, 1]."""
        ...


def duration(source: AudioSource) -> float:
    """Length in seconds."""
    return source.num_samples / source.sample_rate


def chunks(source: AudioSource, size: int = CHUNK_SAMPLES) -> Iterator[np.ndarray]:
    """The whole source, `size` samples at a time."""
    for start in range(0, source.num_samples, size):
        yield source.read(start, min(size, source.num_samples - start))


def read_all(source: AudioSource) -> np.ndarray:
    """Every sample in memory: for short clips only."""
    return source.read(0, source.num_samples)


def _check_rate(rate: float, who: str) -> int:
    if int(rate) != rate or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise InputError(f"{who}: sample rate {rate} is not a whole number of Hz in {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE}")
    return int(rate)


def _window(samples: np.ndarray, start: int, count: int) -> np.ndarray:
    """samples[start:start+count] with silence outside the array."""
    out = np.zeros(max(count, 0), np.float32)
    first, last = max(start, 0), min(start + count, len(samples))
    if first < last:
        out[first - start:last - start] = samples[first:last]
    return out


def as_mono_float(samples: np.ndarray, source: str = "audio") -> np.ndarray:
    """Any WAV-like sample array ([n] or [n, channels], int or float) as float32 mono in [-1, 1].

    Integer PCM is scaled by its full range (8-bit WAV is unsigned, wider PCM signed and
    left-justified), so every bit depth lands on the same amplitude scale.
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
    """Mono speech in memory; normalises whatever samples it is given so the invariant holds."""

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        self.sample_rate = _check_rate(self.sample_rate, "audio")
        self.samples = as_mono_float(self.samples)

    @property
    def num_samples(self) -> int:
        return len(self.samples)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate

    def read(self, start: int, count: int) -> np.ndarray:
        return _window(self.samples, start, count)


@dataclass(frozen=True)
class AudioView:
    """`length` samples of `source` from sample `offset` (negative: silence first), times
    `gain` and clipped to [-1, 1]: a segment, a padding or a level change without a copy."""

    source: AudioSource
    offset: int
    length: int
    gain: float = 1.0

    @property
    def sample_rate(self) -> int:
        return self.source.sample_rate

    @property
    def num_samples(self) -> int:
        return self.length

    def read(self, start: int, count: int) -> np.ndarray:
        out = np.zeros(max(count, 0), np.float32)
        first, last = max(start, 0), min(start + count, self.length)
        if first < last:
            out[first - start:last - start] = self.source.read(self.offset + first, last - first)
        if self.gain != 1.0:
            np.clip(out * np.float32(self.gain), -1.0, 1.0, out=out)
        return out


def fit_length(audio: AudioSource, duration_s: float) -> AudioView:
    """Trimmed or padded with silence to round(duration · rate) samples, so audio matches the frames."""
    if not np.isfinite(duration_s) or not 0 <= duration_s <= MAX_DURATION_S:
        raise InputError(f"fit_length: duration {duration_s} is not a number of seconds in 0..{MAX_DURATION_S:g}")
    return AudioView(audio, 0, int(round(duration_s * audio.sample_rate)))


class UnsupportedWav(InputError):
    """A well-formed WAV whose sample format we do not decode ourselves (μ-law, ADPCM, …)."""


# ---- WAV files -------------------------------------------------------------------------------
_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
_SAMPLE_TYPES = {(_PCM, 1): "u1", (_PCM, 2): "i2", (_PCM, 3): "i3", (_PCM, 4): "i4", (_FLOAT, 4): "f4", (_FLOAT, 8): "f8"}


@dataclass(frozen=True)
class WavFile:
    """A WAV file on disk, decoded a window at a time (PCM 8/16/24/32-bit, float 32/64-bit,
    WAVE_FORMAT_EXTENSIBLE, RIFF/RIFX/RF64), channels averaged to mono."""

    path: Path
    sample_rate: int
    num_samples: int
    channels: int
    sample_type: str  # "u1" | "i2" | "i3" | "i4" | "f4" | "f8"
    endian: str  # "<" or ">"
    data_offset: int

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate

    def read(self, start: int, count: int) -> np.ndarray:
        out = np.zeros(max(count, 0), np.float32)
        first, last = max(start, 0), min(start + count, self.num_samples)
        if first >= last:
            return out
        width = int(self.sample_type[1])
        block = width * self.channels
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.data_offset + first * block)
                raw = handle.read((last - first) * block)
        except OSError as err:
            raise InputError(f"{self.path}: cannot read ({err.strerror or err})") from None
        if len(raw) != (last - first) * block:
            raise InputError(f"{self.path}: the file became shorter while it was being read")
        samples = self._decode(raw).reshape(-1, self.channels)
        mono = samples.mean(axis=1) if self.channels > 1 else samples[:, 0]
        if not np.isfinite(mono).all():
            raise InputError(f"{self.path}: samples contain NaN or infinite values")
        out[first - start:last - start] = np.clip(mono, -1.0, 1.0)
        return out

    def _decode(self, raw: bytes) -> np.ndarray:
        """Raw interleaved samples → float64 in [-1, 1] (integers by their full range)."""
        kind = self.sample_type
        if kind == "u1":
            return (np.frombuffer(raw, np.uint8).astype(np.float64) - 128.0) / 128.0
        if kind == "i3":  # 24-bit: widen to 32 bits, keeping the sign
            bytes3 = np.frombuffer(raw, np.uint8).reshape(-1, 3)
            if self.endian == ">":
                bytes3 = bytes3[:, ::-1]
            wide = np.zeros((len(bytes3), 4), np.uint8)
            wide[:, 1:] = bytes3
            return wide.view("<i4")[:, 0].astype(np.float64) / 2.0**31
        values = np.frombuffer(raw, self.endian + kind).astype(np.float64)
        return values / 2.0 ** (8 * int(kind[1]) - 1) if kind[0] == "i" else values


def _chunks_of(handle: BinaryIO, size: int, endian: str, path: Path) -> Iterator[tuple[bytes, int, int]]:
    """(id, data offset, declared size) of each RIFF chunk after the WAVE tag."""
    position = 12
    while position + 8 <= size:
        handle.seek(position)
        header = handle.read(8)
        if len(header) < 8:
            return
        chunk_id, chunk_size = header[:4], struct.unpack(endian + "I", header[4:])[0]
        yield chunk_id, position + 8, chunk_size
        position += 8 + chunk_size + (chunk_size & 1)


def open_wav(path: str | os.PathLike) -> WavFile:
    """Validate a WAV file's header (every declared size against the file's real size and our
    bounds) without reading its samples; any problem is one InputError naming the file."""
    path = check_input_file(path, "WAV file")
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            return _parse_wav(handle, size, path)
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from None


def _parse_wav(handle: BinaryIO, size: int, path: Path) -> WavFile:
    head = handle.read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX", b"RF64") or head[8:12] != b"WAVE":
        raise InputError(f"{path}: not a WAV file (no RIFF/WAVE header)")
    endian = ">" if head[:4] == b"RIFX" else "<"
    fmt, data, long_data = None, None, None
    for chunk_id, offset, declared in _chunks_of(handle, size, endian, path):
        if chunk_id == b"ds64" and head[:4] == b"RF64" and declared >= 16:  # 64-bit sizes of RF64
            handle.seek(offset)
            long_data = struct.unpack("<QQ", handle.read(16))[1]
        elif chunk_id == b"fmt " and fmt is None:
            if declared < 16:
                raise InputError(f"{path}: WAV format chunk of {declared} bytes is too short")
            handle.seek(offset)
            fmt = handle.read(min(declared, 40))
        elif chunk_id == b"data" and data is None:
            if declared == 0xFFFFFFFF and long_data is not None:
                declared = long_data
            data = (offset, min(declared, size - offset))  # a truncated recording keeps what it has
        if fmt is not None and data is not None:
            break
    if fmt is None:
        raise InputError(f"{path}: WAV file has no format chunk")
    if data is None:
        raise InputError(f"{path}: WAV file has no data chunk")
    tag, channels, rate, _, block_align, bits = struct.unpack(endian + "HHIIHH", fmt[:16])
    if tag == _EXTENSIBLE:
        if len(fmt) < 26:
            raise InputError(f"{path}: WAVE_FORMAT_EXTENSIBLE header is too short")
        tag = struct.unpack(endian + "H", fmt[24:26])[0]
    if tag not in (_PCM, _FLOAT):
        raise UnsupportedWav(f"{path}: WAV sample format {tag} is not PCM or IEEE float")
    if not 1 <= channels <= MAX_CHANNELS:
        raise InputError(f"{path}: WAV declares {channels} channels (1..{MAX_CHANNELS} supported)")
    _check_rate(rate, str(path))
    width = block_align // channels if block_align % channels == 0 else 0
    sample_type = _SAMPLE_TYPES.get((tag, width))
    if sample_type is None or not 0 < bits <= 8 * width:
        raise UnsupportedWav(f"{path}: WAV block size {block_align} for {channels} channel(s) of {bits}-bit "
                             f"{'float' if tag == _FLOAT else 'PCM'} samples is not a supported layout")
    num_samples = data[1] // block_align
    if num_samples == 0:
        raise InputError(f"{path}: WAV file contains no samples")
    if num_samples / rate > MAX_DURATION_S:
        raise InputError(f"{path}: {num_samples / rate / 3600:.1f} hours of audio is longer than the "
                         f"{MAX_DURATION_S / 3600:g} hours supported")
    return WavFile(path, rate, num_samples, channels, sample_type, endian, data[0])


def load_wav(path: str | os.PathLike) -> Audio:
    """A whole WAV file in memory (for short clips; long ones are read with `open_wav`)."""
    wav = open_wav(path)
    return Audio(read_all(wav), wav.sample_rate)


def save_wav(audio: AudioSource, path: str | os.PathLike) -> None:
    """Write 16-bit PCM mono, the format every player and video muxer accepts, a chunk at a
    time and atomically."""
    data_bytes = 2 * audio.num_samples
    if data_bytes + 36 > 0xFFFFFFFF:
        raise InputError(f"{path}: {duration(audio) / 3600:.1f} hours of audio do not fit in a WAV file")

    def write(handle: BinaryIO) -> None:
        rate = audio.sample_rate
        handle.write(b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE")
        handle.write(b"fmt " + struct.pack("<IHHIIHH", 16, _PCM, 1, rate, 2 * rate, 2, 16))
        handle.write(b"data" + struct.pack("<I", data_bytes))
        for samples in chunks(audio):  # the same rounding as loading expects
            handle.write(np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2").tobytes())

    atomic_write(path, write)


# ---- resampling ------------------------------------------------------------------------------
def resample(audio: Audio, rate: int) -> Audio:
    """Polyphase resampling by the exact rational factor rate / audio.sample_rate."""
    rate = _check_rate(rate, "resample")
    if rate == audio.sample_rate:
        return Audio(audio.samples.copy(), audio.sample_rate)
    factor = Fraction(rate, audio.sample_rate)
    out = resample_poly(audio.samples, factor.numerator, factor.denominator)
    return Audio(np.clip(out, -1.0, 1.0).astype(np.float32), rate)


@dataclass(frozen=True)
class Resampled:
    """`source` at another rate, read a window at a time with the same polyphase filter as
    `resample`: each window is resampled from enough input around it that its samples equal
    those of the whole source resampled at once."""

    source: AudioSource
    sample_rate: int

    def __post_init__(self) -> None:
        _check_rate(self.sample_rate, "resample")

    @property
    def _factor(self) -> Fraction:
        return Fraction(self.sample_rate, self.source.sample_rate)

    @property
    def num_samples(self) -> int:
        return -(-self.source.num_samples * self._factor.numerator // self._factor.denominator)

    def read(self, start: int, count: int) -> np.ndarray:
        up, down = self._factor.numerator, self._factor.denominator
        if up == down:
            return self.source.read(start, count)
        out = np.zeros(max(count, 0), np.float32)
        first, last = max(start, 0), min(start + count, self.num_samples)
        if first >= last:
            return out
        # resample_poly's filter reaches 10·max(up, down) upsampled taps each side; input
        # windows start on multiples of `down`, where output and input samples line up
        margin = -(-(10 * max(up, down) // up + 2) // down) * down
        begin = first * down // up // down * down - margin
        end = -(-last * down // up) + margin
        window = resample_poly(self.source.read(begin, end - begin), up, down)
        offset = begin // down * up
        out[first - start:last - start] = np.clip(window[first - offset:last - offset], -1.0, 1.0)
        return out
