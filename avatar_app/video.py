"""Writing a clip: MP4 (H.264 yuv420p + AAC, +faststart, CFR) or a folder of PNGs, atomically.

Frames are encoded on a writer thread while the caller's thread renders the next ones
(`write_behind`): a bounded queue between them, and an exception or a cancellation on either
side stops both."""
from __future__ import annotations

import contextlib
import itertools
import queue
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
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


WRITE_AHEAD_BYTES = 64 << 20  # frames waiting between the renderer and the writer thread, at most…
WRITE_AHEAD_FRAMES = (2, 64)  # …and between this many frames
_END = object()  # after the last frame


class _Stopped(BaseException):
    """Thrown into the encoder when writing stops early: ffmpeg is killed rather than left to
    finish a file that is thrown away."""


def write_behind(frames: Iterable[np.ndarray], write: Callable[[np.ndarray], None], *, threaded: bool = True,
                 budget: int = WRITE_AHEAD_BYTES) -> int:
    """Call `write(frame)` on every frame in order on a writer thread, while this thread makes
    the next frames; at most `budget` bytes of frames (WRITE_AHEAD_FRAMES) wait between the two.
    An exception on either side (a failed write there; an error, `Cancelled` or a
    KeyboardInterrupt here) stops both: when it is raised here the writer thread has ended and
    `frames` has been closed. Returns the number of frames written. `threaded=False` makes the
    same calls in the same order on this thread."""
    frames = iter(frames)
    if not threaded:
        count = 0
        try:
            for frame in frames:
                write(frame)
                count += 1
        except BaseException:
            _close(frames)
            raise
        return count
    first = next(frames, _END)
    if first is _END:
        return 0
    waiting: queue.Queue = queue.Queue(int(np.clip(budget // max(np.asarray(first).nbytes, 1), *WRITE_AHEAD_FRAMES)))
    stop = threading.Event()  # set by the side that fails
    failures: list[BaseException] = []
    count = 0

    def run() -> None:
        nonlocal count
        try:
            while (frame := waiting.get()) is not _END and not stop.is_set():
                write(frame)
                count += 1
        except BaseException as err:  # noqa: BLE001 - raised on the caller's thread
            failures.append(err)
            stop.set()

    thread = threading.Thread(target=run, name="frame-writer", daemon=True)
    thread.start()
    try:
        for item in itertools.chain([first], frames, [_END]):
            while True:
                if stop.is_set():
                    raise failures[0]
                try:
                    waiting.put(item, timeout=0.05)
                    break
                except queue.Full:
                    pass
    except BaseException:
        stop.set()
        with contextlib.suppress(queue.Full):
            waiting.put_nowait(_END)  # wakes a writer waiting for a frame
        _close(frames)
        raise
    finally:
        _join(thread)
    if failures:  # the writer failed on a frame after the last one was handed over
        raise failures[0]
    return count


def _close(frames: Iterator[np.ndarray]) -> None:
    """Stop a frame generator (its `finally` blocks run) when its frames are no longer wanted."""
    close = getattr(frames, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()


def _join(thread: threading.Thread) -> None:
    """Wait for the writer thread, which ends after the frame in hand; a Ctrl-C or SIGTERM on
    the way is raised once it has ended (the encoder is never used by two threads)."""
    interrupt = None
    while thread.is_alive():
        try:
            thread.join()
        except KeyboardInterrupt as err:
            interrupt = interrupt or err
    if interrupt is not None:
        raise interrupt


def write_mp4(frames: Iterable[np.ndarray], path: str | Path, size: tuple[int, int], fps: float,
              num_frames: int, audio: AudioSource | None = None, *, threaded: bool = True) -> None:
    """Encode `num_frames` RGB frames (uint8 [height, width, 3]) with a soundtrack of exactly
    num_frames/fps seconds (silence when there is no audio), so every clip has one video and one
    audio stream. The soundtrack goes to the encoder through a temporary WAV written a chunk at a
    time, so memory does not grow with the clip. Frames are sent to ffmpeg on a writer thread
    (`write_behind`; `threaded=False`: on this thread, the same file); if anything fails or is
    cancelled, ffmpeg is stopped and nothing is left behind."""
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
        sent = 0

        def send(frame: np.ndarray) -> None:
            nonlocal sent
            frame = np.ascontiguousarray(frame)
            if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
                raise ValueError(f"{target}: frame {sent} is {frame.dtype} {'x'.join(map(str, frame.shape))}, "
                                 f"expected uint8 {height}x{width}x3")
            writer.send(frame)
            sent += 1

        try:
            written = write_behind(itertools.chain([] if first is None else [first], frames), send, threaded=threaded)
        except BaseException:
            _close(frames)
            with contextlib.suppress(_Stopped):
                writer.throw(_Stopped())
            raise
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


def write_png_folder(frames: Iterable[np.ndarray], folder: str | Path, audio: AudioSource | None = None, *,
                     threaded: bool = True) -> int:
    """frame_00000.png … in a folder that appears complete or not at all (with audio.wav); the
    PNGs are encoded on a writer thread (`write_behind`)."""
    with staged_folder(Path(folder), "PNG frames") as tmp:
        names = (tmp / f"frame_{index:05d}.png" for index in itertools.count())
        count = write_behind(frames, lambda frame: iio.imwrite(next(names), frame), threaded=threaded)
        if audio is not None:
            save_wav(audio, tmp / "audio.wav")
    return count
