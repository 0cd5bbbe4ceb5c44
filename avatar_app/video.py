"""Writing a clip: MP4 (H.264 yuv420p + AAC, +faststart, CFR) or a folder of PNGs, atomically."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Optional

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np

from models.audio import Audio, save_wav
from models.errors import InputError


def is_video_path(path: str | Path) -> bool:
    return str(path).lower().endswith(".mp4")


def check_video_size(width: int, height: int) -> None:
    if width % 2 or height % 2:
        raise InputError(f"size {width}x{height}: MP4 (yuv420p) needs an even width and height")


@contextlib.contextmanager
def _staged(target: Path, is_dir: bool) -> Iterator[Path]:
    """A temporary sibling of `target` that replaces it only when the block finishes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial"))
    else:
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".partial" + target.suffix)
        os.close(fd)
        tmp = Path(name)
        tmp.chmod(0o644)
    try:
        yield tmp
        if is_dir and target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()


def write_mp4(frames: Iterable[np.ndarray], path: str | Path, size: tuple[int, int], fps: float,
              num_frames: int, audio: Optional[Audio] = None) -> None:
    """Encode `num_frames` RGB frames with a soundtrack of exactly num_frames/fps seconds
    (silence when there is no audio), so every clip has one video and one audio stream."""
    width, height = size
    check_video_size(width, height)
    target = Path(path)
    duration = num_frames / fps
    with tempfile.TemporaryDirectory() as scratch, _staged(target, is_dir=False) as tmp:
        wav = Path(scratch) / "audio.wav"
        rate = audio.sample_rate if audio is not None else 16000
        samples = np.zeros(int(round(duration * rate)), np.float32)
        if audio is not None:
            keep = min(len(samples), len(audio.samples))
            samples[:keep] = audio.samples[:keep]
        save_wav(Audio(samples, rate), wav)
        writer = imageio_ffmpeg.write_frames(
            str(tmp), (width, height), fps=fps, codec="libx264", pix_fmt_out="yuv420p", quality=8,
            macro_block_size=1, ffmpeg_log_level="error", audio_path=str(wav), audio_codec="aac",
            output_params=["-movflags", "+faststart", "-fps_mode", "cfr", "-f", "mp4"],
        )
        writer.send(None)
        written = 0
        try:
            for frame in frames:
                writer.send(np.ascontiguousarray(frame))
                written += 1
        finally:
            writer.close()
        if written != num_frames:
            raise RuntimeError(f"{target}: wrote {written} frames, expected {num_frames}")


def write_png(image: np.ndarray, path: str | Path) -> None:
    """One PNG, written to a temporary name and renamed when complete."""
    with _staged(Path(path), is_dir=False) as tmp:
        iio.imwrite(tmp, image, extension=".png")


def write_png_folder(frames: Iterable[np.ndarray], folder: str | Path, audio: Optional[Audio] = None) -> int:
    """frame_00000.png … in a folder that appears complete or not at all (with audio.wav)."""
    count = 0
    with _staged(Path(folder), is_dir=True) as tmp:
        for count, frame in enumerate(frames, 1):
            iio.imwrite(tmp / f"frame_{count - 1:05d}.png", frame)
        if audio is not None:
            save_wav(audio, tmp / "audio.wav")
    return count
