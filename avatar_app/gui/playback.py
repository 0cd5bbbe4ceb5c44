"""The playback clock. With audio and an output device, the sound's position is the clock and
frames follow it; without either, a monotonic wall clock drives silent playback."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QObject, QUrl, Signal
from PySide6.QtMultimedia import QAudioOutput, QMediaDevices, QMediaPlayer

from models.audio.sources import Audio, save_wav

MAX_EXTRAPOLATION = 0.15  # seconds the clock may run ahead of the last audio position report
STALL_SECONDS = 3.0       # an output that reports no progress this long is given up
NO_AUDIO = "the clip has no audio"


class PlaybackClock(QObject):
    """play / pause / seek / time() in seconds; `sound_off()` says why nothing is heard."""

    silenced = Signal(str)  # the output failed while in use: why (playback goes on silently)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._scratch = tempfile.TemporaryDirectory(prefix="avatar-app-audio-")
        self._media: QMediaPlayer | None = None
        self._output: QAudioOutput | None = None
        self.playing = False
        self.silent_reason = NO_AUDIO  # why there is no sound output ("" with one)
        self.muted = False
        self._anchor_time = 0.0     # clock time at the anchor
        self._anchor_wall = time.monotonic()
        self._started = False       # has the sound moved since play/seek?
        self._floor = 0.0           # the clock never goes back while playing

    # ---- sources -----------------------------------------------------------------------
    def set_audio(self, audio: Audio | None) -> None:
        """Use `audio` (already fitted to the clip length) as the clock; None → silent."""
        self.pause()
        self._release_media()
        if audio is None:
            self.silent_reason = NO_AUDIO
        elif not QMediaDevices.audioOutputs():
            self.silent_reason = "no audio output device"
        else:
            path = Path(self._scratch.name) / f"clip-{id(audio)}.wav"
            save_wav(audio, path)
            self._output = QAudioOutput(self)
            self._output.setMuted(self.muted)
            self._media = QMediaPlayer(self)
            self._media.setAudioOutput(self._output)
            self._media.errorOccurred.connect(self._on_error)
            self._media.positionChanged.connect(self._on_position)
            self._media.setSource(QUrl.fromLocalFile(str(path)))
            self.silent_reason = ""
        self.seek(0.0)

    @property
    def has_sound(self) -> bool:
        return self._media is not None

    def sound_off(self) -> str:
        """Why nothing is heard ("" when the clip's sound plays): no audio in the clip, no
        output device, a failed output, or muted."""
        return self.silent_reason or ("muted" if self.muted else "")

    def set_muted(self, muted: bool) -> None:
        self.muted = muted
        if self._output is not None:
            self._output.setMuted(muted)

    def _release_media(self) -> None:
        if self._media is not None:
            self._media.stop()
            self._media.setSource(QUrl())
            self._media.deleteLater()
            self._output.deleteLater()
        self._media = self._output = None

    def _on_error(self, _error: QMediaPlayer.Error, message: str) -> None:
        self._fall_silent(f"audio output failed ({message})")

    def _fall_silent(self, reason: str) -> None:
        """Keep playing from where the picture is (the last time returned), on the wall clock."""
        shown = max(self._floor, self._anchor_time) if self.playing and self._started else self._anchor_time
        self._release_media()
        self.silent_reason = reason
        self._anchor(shown)
        self.silenced.emit(reason)

    def _on_position(self, position_ms: int) -> None:
        seconds = position_ms / 1000.0
        if self.playing and (self._started or abs(seconds - self._anchor_time) > 1e-3):
            self._started = True  # the sound is moving: follow it
            self._anchor(seconds)

    # ---- transport ---------------------------------------------------------------------
    def _anchor(self, seconds: float) -> None:
        self._anchor_time, self._anchor_wall = seconds, time.monotonic()

    def time(self) -> float:
        """Seconds into the clip. With sound: the last reported audio position, extrapolated a
        little between reports, never going backwards, and holding still until the device has
        started (so picture and sound start together). A device that stops reporting for
        STALL_SECONDS is dropped and playback goes on silently."""
        if not self.playing:
            return self._anchor_time
        waited = time.monotonic() - self._anchor_wall
        if self._media is None:
            return self._anchor_time + waited
        if waited > STALL_SECONDS:
            self._fall_silent("audio output stalled")
            return self._anchor_time
        if not self._started:
            return self._anchor_time
        self._floor = max(self._floor, self._anchor_time + min(waited, MAX_EXTRAPOLATION))
        return self._floor

    def _restart(self) -> None:
        self._started, self._floor = False, 0.0
        self._anchor(self._anchor_time)

    def play(self) -> None:
        if self.playing:
            return
        self._restart()
        self.playing = True
        if self._media is not None:
            self._media.setPosition(round(self._anchor_time * 1000))
            self._media.play()

    def pause(self) -> None:
        if not self.playing:
            return
        self._anchor(self.time())
        self.playing = False
        if self._media is not None:
            self._media.pause()

    def seek(self, seconds: float) -> None:
        self._anchor(max(0.0, seconds))
        self._restart()
        if self._media is not None:
            self._media.setPosition(round(self._anchor_time * 1000))

    def close(self) -> None:
        self.pause()
        self._release_media()
        self._scratch.cleanup()
