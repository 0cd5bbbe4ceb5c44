"""Speech audio from any file ffmpeg can decode (MP3, M4A/AAC, FLAC, OGG/Opus, the sound of a
video, …), wherever a WAV is accepted.

A WAV keeps its exact in-process path (`open_wav`: a window at a time, nothing decoded ahead).
Anything else, and a WAV whose codec we do not read ourselves (μ-law, ADPCM, …), is decoded
once by the ffmpeg binary that imageio-ffmpeg ships: its float32 samples come through a pipe,
their channels are averaged to mono as `open_wav` averages a WAV's, and they are written to an
anonymous temporary file that is mapped, not read, into memory. So a long MP3 costs disk
(4 bytes per sample: 0.7 GB per hour at 48 kHz) and page cache, not the process's memory, and
the file disappears with the source. Decodings are cached by the file's identity (path, size,
modification time), so checking a segment, building the clip and rebuilding it at another
frame rate decode once.
"""

from __future__ import annotations

import functools
import os
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from common.errors import InputError
from common.files import check_input_file
from common.limits import MAX_CHANNELS, MAX_DURATION_S

from .sources import Audio, AudioSource, UnsupportedWav, _check_rate, _window, open_wav, read_all

# What the app's Open dialog and drag and drop offer; content decides, not the name: a file of
# any other name is tried as well.
AUDIO_SUFFIXES = (".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".oga", ".opus", ".wma", ".aif", ".aiff",
                  ".caf", ".ac3", ".amr", ".mka", ".webm", ".mp4", ".m4v", ".mov", ".mkv", ".avi")
_PIPE_BYTES = 1 << 20  # what one read from ffmpeg's pipe holds


@dataclass(frozen=True)
class DecodedAudio:
    """Mono float32 samples ffmpeg decoded from `path`, mapped from a temporary file."""

    path: Path
    sample_rate: int
    samples: np.ndarray  # read-only memory map, float32 in [-1, 1]

    @property
    def num_samples(self) -> int:
        return len(self.samples)

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate

    def read(self, start: int, count: int) -> np.ndarray:
        return _window(self.samples, start, count)


def open_audio(path: str | os.PathLike) -> AudioSource:
    """Any audio file as a source read a window at a time: a WAV in process, anything else
    through ffmpeg; a file neither reads is one InputError saying what was tried."""
    path = check_input_file(path, "audio file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from None
    if head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
        try:
            return open_wav(path)
        except UnsupportedWav as err:  # a WAV codec of ffmpeg's (μ-law, ADPCM, …)
            why = str(err).removeprefix(f"{path}: ")
    else:
        why = "not a WAV file"
    stat = path.stat()
    return _decoded(path.resolve(), stat.st_size, stat.st_mtime_ns, why)


def load_audio(path: str | os.PathLike) -> Audio:
    """A whole audio file in memory (for short clips)."""
    source = open_audio(path)
    return Audio(read_all(source), source.sample_rate)


def ffmpeg_exe() -> str:
    """The ffmpeg binary imageio-ffmpeg ships (or the one IMAGEIO_FFMPEG_EXE names)."""
    import imageio_ffmpeg  # noqa: PLC0415 - only a file that is not a WAV needs it

    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as err:
        raise InputError(f"no ffmpeg to decode audio with: {err}") from None


@functools.lru_cache(maxsize=4)
def _decoded(path: Path, size: int, mtime_ns: int, why_not_wav: str) -> DecodedAudio:
    """`path` decoded by ffmpeg (size and mtime make a changed file decode again)."""
    exe = ffmpeg_exe()
    command = [exe, "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-vn", "-sn", "-dn",
               "-c:a", "pcm_f32le", "-fflags", "+bitexact", "-map_metadata", "-1", "-f", "wav", "-"]
    storage = tempfile.TemporaryFile(prefix="avatar-audio-")
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a damaged file's many warnings never block ffmpeg
        with subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log) as ffmpeg:
            try:
                rate, count = _store_mono(ffmpeg.stdout, storage, path)
            except BaseException:
                ffmpeg.kill()
                storage.close()
                raise
            finally:
                ffmpeg.stdout.close()
            failed = ffmpeg.wait() != 0
        log.seek(max(0, log.seek(0, os.SEEK_END) - 4096))  # the last lines: ffmpeg's verdict
        errors = log.read().decode("utf-8", "replace")
    if failed or count == 0:
        storage.close()
        detail = _last_error(errors) or "no audio samples"
        if "matches no streams" in errors:
            raise InputError(f"{path}: has no audio stream ({why_not_wav}; ffmpeg found no audio in it)")
        raise InputError(f"{path}: no audio could be read: {why_not_wav}, and the ffmpeg that ships with "
                         f"imageio-ffmpeg ({Path(exe).name}) could not decode it ({detail})")
    samples = np.memmap(storage, np.float32, "r", shape=(count,))
    storage.close()  # the map keeps the file alive; it disappears with the last reference
    return DecodedAudio(path, rate, samples)


def _store_mono(pipe: BinaryIO, storage: BinaryIO, path: Path) -> tuple[int, int]:
    """Read the float32 WAV ffmpeg streams (sizes unknown: a pipe), write its channels' mean to
    `storage`; (sample rate, samples written). (0, 0) when ffmpeg wrote nothing."""
    if len(pipe.read(12)) < 12:  # RIFF, size, WAVE
        return 0, 0
    channels = rate = 0
    while True:
        chunk = pipe.read(8)
        if len(chunk) < 8:
            return 0, 0
        tag, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if tag == b"data":
            break
        body = pipe.read(length + (length & 1))
        if tag == b"fmt ":
            channels, rate = struct.unpack("<HI", body[2:8])
    if not 1 <= channels <= MAX_CHANNELS:
        raise InputError(f"{path}: {channels} audio channels (1..{MAX_CHANNELS} supported)")
    rate = _check_rate(rate, str(path))
    limit = int(MAX_DURATION_S * rate)
    block = 4 * channels
    count, rest = 0, b""
    while data := pipe.read(_PIPE_BYTES):
        data = rest + data
        whole = len(data) - len(data) % block
        rest = data[whole:]
        frames = np.frombuffer(data[:whole], "<f4").reshape(-1, channels)
        mono = frames.mean(axis=1, dtype=np.float64) if channels > 1 else frames[:, 0]
        if not np.isfinite(mono).all():
            raise InputError(f"{path}: decoded samples contain NaN or infinite values")
        count += len(mono)
        if count > limit:
            raise InputError(f"{path}: the audio is longer than the {MAX_DURATION_S / 3600:g} hours supported")
        storage.write(np.clip(mono, -1.0, 1.0).astype(np.float32).tobytes())
    storage.flush()
    return rate, count


def _last_error(errors: str) -> str:
    """ffmpeg's last error line, without its `[component @ 0x…]` prefix."""
    lines = [line.split("] ", 1)[-1].strip() for line in errors.splitlines() if line.strip()]
    return lines[-1] if lines else ""
