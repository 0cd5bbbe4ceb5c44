"""Writing a clip: MP4 (H.264 yuv420p + AAC, +faststart, CFR) or a folder of PNGs, atomically."""
from __future__ import annotations

import contextlib
import itertools
import tempfile
from collections.abc import Iterable
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np

from common.atomic import staged_file
from common.errors import InputError
from models.audio.sources import Audio, AudioSource, AudioView, fit_length, save_wav

from .outputs import (
    MP4_TAG,
    check_output_file,
    check_output_folder,
    is_our_mp4,
    staged_folder,
)


def is_video_path(path: str | Path) -> bool:
    return str(path).lower().endswith(".mp4")


def check_video_output(path: str | Path) -> None:
    """An MP4 to write, or a folder of PNG frames, that replaces nothing but our own output."""
    if is_video_path(path):
        check_output_file(path, is_our_mp4, "video")
    else:
        check_output_folder(path, what="PNG frames")


def check_video_size(width: int, height: int) -> None:
    if width % 2 or height % 2:
        raise InputError(f"size {width}x{height}: MP4 (yuv420p) needs an even width and height")


def _staged(target: Path) -> contextlib.AbstractContextManager[Path]:
    """A temporary sibling of the file `target` (same suffix: ffmpeg and imageio choose the
    format by it) that replaces `target` when the block finishes (`common.atomic`). (Callers
    check that what it replaces is theirs: `check_video_output`.)"""
    return staged_file(target, suffix=".partial" + target.suffix, parents=True)


def write_mp4(frames: Iterable[np.ndarray], path: str | Path, size: tuple[int, int], fps: float,
              num_frames: int, audio: AudioSource | None = None) -> None:
    """Encode `num_frames` RGB frames with a soundtrack of exactly num_frames/fps seconds
    (silence when there is no audio), so every clip has one video and one audio stream. The
    soundtrack goes to the encoder through a temporary WAV written a chunk at a time, so
    memory does not grow with the clip."""
    width, height = size
    check_video_size(width, height)
    target = Path(path)
    soundtrack = fit_length(audio if audio is not None else Audio(np.zeros(0, np.float32), 16000), num_frames / fps)
    frames = iter(frames)
    first = next(frames, None)  # made before the encoder starts: a failure here leaves no encoder behind
    with _staged(target) as tmp, tempfile.TemporaryDirectory() as scratch:
        wav = Path(scratch) / "audio.wav"
        save_wav(soundtrack, wav)
        writer = imageio_ffmpeg.write_frames(
            str(tmp), (width, height), fps=fps, codec="libx264", pix_fmt_out="yuv420p", quality=8,
            macro_block_size=1, ffmpeg_log_level="error", audio_path=str(wav), audio_codec="aac",
            output_params=["-movflags", "+faststart", "-fps_mode", "cfr", "-metadata",
                           f"comment=made by {MP4_TAG.decode()}", "-f", "mp4"],
        )
        writer.send(None)
        written = 0
        try:
            for frame in itertools.chain([] if first is None else [first], frames):
                writer.send(np.ascontiguousarray(frame))
                written += 1
        finally:
            writer.close()
        if written != num_frames:
            raise RuntimeError(f"{target}: wrote {written} frames, expected {num_frames}")


def padded_audio(audio: AudioSource | None, before: float, after: float) -> AudioSource | None:
    """`audio` with `before` and `after` seconds of silence (read lazily): the soundtrack of a
    clip shown between still lead-in and lead-out frames."""
    if audio is None or not (before or after):
        return audio
    lead, tail = (round(s * audio.sample_rate) for s in (before, after))
    return AudioView(audio, -lead, lead + audio.num_samples + tail)


def write_png(image: np.ndarray, path: str | Path) -> None:
    """One PNG, written to a temporary name and renamed when complete."""
    with _staged(Path(path)) as tmp:
        iio.imwrite(tmp, image, extension=".png")


def write_png_folder(frames: Iterable[np.ndarray], folder: str | Path, audio: AudioSource | None = None) -> int:
    """frame_00000.png … in a folder that appears complete or not at all (with audio.wav)."""
    count = 0
    with staged_folder(Path(folder), "PNG frames") as tmp:
        for count, frame in enumerate(frames, 1):
            iio.imwrite(tmp / f"frame_{count - 1:05d}.png", frame)
        if audio is not None:
            save_wav(audio, tmp / "audio.wav")
    return count
