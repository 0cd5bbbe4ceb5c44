"""What drives a clip: audio, a weights file or a FLAME motion file, on a fixed frame grid."""
from __future__ import annotations

from collections.abc import Sized
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import InputError
from common.limits import MAX_DURATION_S, MAX_FPS, MIN_FPS
from models.audio.decode import open_audio
from models.audio.loudness import LoudnessTarget, Normalisation, normalise
from models.audio.sources import AudioSource, AudioView, fit_length
from models.audio.sources import duration as seconds_of
from models.audio.spoken_text import SpokenText, speak
from models.drivers.contract import SpeechDriver, WeightReader
from models.drivers.recorded import RecordedDriver, RecordedWeights
from models.rig.blendshapes import BlendshapeModel, WeightSequence
from models.rig.flame import FlameParams
from models.rig.motion_files import load_motion, motion_length

from .options import DEFAULT_FPS

STILL_SECONDS = 3.0


@dataclass
class Clip:
    """A timeline of `num_frames` frames at `fps`. `features` are what drives the face, one per
    frame, and `reader` turns them into speech and expression weights under the current
    emotions: a speech driver's analysis of the audio, or weights recorded in a file (a still
    or a FLAME-motion clip records silence). Both are None only without a blendshape model.
    `motion` holds FLAME parameters played one per frame. The audio is read from its file as it
    is needed."""

    fps: float
    num_frames: int
    audio: AudioSource | None = None
    features: Sized | None = None
    reader: WeightReader | None = None
    motion: FlameParams | None = None
    loudness: Normalisation | None = None  # what loudness normalisation did to the audio
    origin: str = ""  # what drives it, for messages ("speech.wav", "take.weights.npz with soundtrack a.wav")

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


def frame_count(duration: float, fps: float) -> int:
    """A clip of D seconds has exactly round(D·fps) frames (docs/architecture.md §Pipeline)."""
    return int(round(duration * fps))


def _check_timing(fps: float, duration: float | None) -> None:
    if not np.isfinite(fps) or not MIN_FPS <= fps <= MAX_FPS:
        raise InputError(f"--fps {fps:g}: must be a frame rate in {MIN_FPS:g}..{MAX_FPS:g}")
    if duration is not None and (not np.isfinite(duration) or not 0 < duration <= MAX_DURATION_S):
        raise InputError(f"--duration {duration:g}: must be a number of seconds in 0..{MAX_DURATION_S:g}")


def _resample_rows(values: np.ndarray, src_fps: float, fps: float, frames: int, start: float = 0.0) -> np.ndarray:
    """Linear interpolation of per-frame rows onto another frame rate, from `start` seconds."""
    if len(values) == 0:
        return np.zeros((frames, values.shape[1]), np.float32)
    t_src = np.arange(len(values)) / src_fps
    t = start + np.arange(frames) / fps
    return np.stack([np.interp(t, t_src, values[:, k]) for k in range(values.shape[1])], -1).astype(np.float32)


def with_soundtrack(clip: Clip, audio: AudioSource | None) -> Clip:
    """Attach audio trimmed/padded to the clip's exact duration."""
    if audio is not None:
        clip.audio = fit_length(audio, clip.duration)
    return clip


def clip_from_audio(audio: AudioSource | str | Path, driver: SpeechDriver, fps: float = DEFAULT_FPS,
                    duration: float | None = None) -> Clip:
    _check_timing(fps, duration)
    audio = open_audio(audio) if isinstance(audio, (str, Path)) else audio
    frames = frame_count(duration if duration is not None else seconds_of(audio), fps)
    audio = fit_length(audio, frames / fps)
    return Clip(fps, frames, audio=audio, features=driver.analyse(audio, fps), reader=driver)


def clip_from_weights(path: str | Path, model: BlendshapeModel, fps: float = DEFAULT_FPS,
                      duration: float | None = None, start: float = 0.0) -> Clip:
    _check_timing(fps, duration)
    seq = WeightSequence.load(path)
    seq.check_against(model)
    length = len(seq.speech) / float(seq.fps)
    frames = frame_count(duration if duration is not None else length - start, fps)
    recorded = RecordedWeights(_resample_rows(seq.speech, float(seq.fps), fps, frames, start),
                               _resample_rows(seq.expression, float(seq.fps), fps, frames, start))
    return Clip(fps, frames, features=recorded, reader=RecordedDriver.for_model(model))


def clip_from_motion(path: str | Path, fps: float = DEFAULT_FPS, duration: float | None = None,
                     start: float = 0.0) -> Clip:
    """Motion frames (a parameter file or a folder of per-frame files) are played one per output
    frame, from frame round(start·fps)."""
    _check_timing(fps, duration)
    motion = load_motion(path)
    first = min(frame_count(start, fps), motion.num_frames)
    frames = motion.num_frames - first
    if duration is not None:
        frames = min(frames, frame_count(duration, fps))
    return Clip(fps, frames, motion=motion.slice(first, first + frames))


def still_clip(duration: float, fps: float = DEFAULT_FPS) -> Clip:
    _check_timing(fps, duration)
    return Clip(fps, frame_count(duration, fps))


def with_silence(clip: Clip, model: BlendshapeModel | None) -> Clip:
    """A clip without speech (a still, a FLAME motion) made to record silence under `model`, so
    the emotions still drive its expression."""
    if model is not None and clip.features is None:
        clip.features = RecordedWeights.silent(clip.num_frames, model.speech_names)
        clip.reader = RecordedDriver.for_model(model)
    return clip


@dataclass(frozen=True)
class ClipSource:
    """Where a clip comes from, kept so it can be rebuilt at another frame rate (an export at
    a chosen fps) or after the avatar changes. `audio` (any file ffmpeg decodes) drives the
    speech unless `weights` or `motion` do; then it is their soundtrack. `text`, spoken by
    espeak-ng, drives it instead of audio. No source at all is a still clip. `start` and
    `duration` (seconds) cut a segment out of the source, the audio in step; `loudness`
    brings that audio segment to a target level before it drives the face or is heard."""

    audio: Path | None = None
    weights: Path | None = None
    motion: Path | None = None
    duration: float | None = None
    start: float = 0.0
    loudness: LoudnessTarget | None = None
    text: SpokenText | None = None

    def __post_init__(self) -> None:
        if self.text is not None and (self.audio or self.weights or self.motion):
            raise InputError("a spoken text drives the face by itself: give it without audio, weights or motion")
        if not (np.isfinite(self.start) and self.start >= 0):
            raise InputError(f"start {self.start}: must be a number of seconds >= 0")

    def source_length(self, fps: float = DEFAULT_FPS) -> float | None:
        """Seconds of what drives the clip (weights, motion played at `fps`, else audio); None
        for a still."""
        if self.weights:
            seq = WeightSequence.load(self.weights)
            return len(seq.speech) / float(seq.fps)
        if self.motion:
            return motion_length(self.motion) / fps
        speech = self._speech()
        return None if speech is None else seconds_of(speech)

    def check_trim(self, fps: float = DEFAULT_FPS) -> None:
        """Reject a segment that does not lie inside the source."""
        if self.duration is not None and not (np.isfinite(self.duration) and self.duration > 0):
            raise InputError(f"the segment from {self.start:g} s has length {self.duration}: it must be positive")
        length = self.source_length(fps)
        if length is None:
            if self.duration is None:
                raise InputError("a still clip (no audio, weights or motion) needs a length")
            return
        end = self.start + (self.duration or 0.0)
        if self.start >= length or end > length + 1e-6:
            raise InputError(f"the segment {self.start:g}..{end if self.duration else length:g} s does not lie "
                             f"inside the source, which is {length:g} s long")
        if frame_count((end if self.duration else length) - self.start, fps) < 1:
            raise InputError(f"the segment {self.start:g}..{end if self.duration else length:g} s is shorter "
                             f"than one frame at {fps:g} fps")

    def soundtrack(self) -> tuple[AudioSource | None, Normalisation | None]:
        """The audio segment (read from its file as needed), loudness-normalised when a target
        is set."""
        speech = self._speech()
        if speech is None:
            return None, None
        first = min(int(round(self.start * speech.sample_rate)), speech.num_samples)
        last = speech.num_samples if self.duration is None else first + int(round(self.duration * speech.sample_rate))
        audio = AudioView(speech, first, min(last, speech.num_samples) - first)
        if self.loudness is None or not audio.num_samples:
            return audio, None
        return normalise(audio, self.loudness)

    def _speech(self) -> AudioSource | None:
        """The whole audio file (decoded if it is not a WAV) or the spoken text; None without."""
        if self.text is not None:
            return speak(self.text)
        return open_audio(self.audio) if self.audio else None

    def build(self, driver: SpeechDriver | None, blendshapes: BlendshapeModel | None,
              fps: float = DEFAULT_FPS) -> Clip:
        needs_blendshapes = self.weights or ((self.audio or self.text) and not self.motion)
        if needs_blendshapes and (blendshapes is None or driver is None):
            raise InputError("driving from audio or weights needs a blendshape model (--blendshapes FILE)")
        audio, level = self.soundtrack()
        if self.weights:
            clip = with_soundtrack(clip_from_weights(self.weights, blendshapes, fps, self.duration, self.start), audio)
        elif self.motion:
            clip = with_soundtrack(clip_from_motion(self.motion, fps, self.duration, self.start), audio)
        elif audio is not None and audio.num_samples:
            clip = clip_from_audio(audio, driver, fps, self.duration)
        elif audio is None:
            clip = still_clip(self.duration or STILL_SECONDS, fps)
        else:
            clip = Clip(fps, 0)
        if clip.num_frames < 1:
            raise InputError(f"{self.describe()}: no frames left after starting at {self.start:g} s")
        with_silence(clip, blendshapes)
        clip.loudness, clip.origin = level, self.describe()
        return clip

    def describe(self) -> str:
        if self.text is not None:
            return self.text.describe()
        if self.weights or self.motion:
            text = Path(self.weights or self.motion).name
            return text + (f" with soundtrack {Path(self.audio).name}" if self.audio else "")
        return Path(self.audio).name if self.audio else "still"
