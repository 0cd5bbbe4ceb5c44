"""The signal-based speech driver: hand-made lip sync from loudness and spectral shape.

It needs no training data, so the studio animates speech out of the box; a learned driver
(`models.drivers.generator`) replaces it behind the same contract (`models.drivers.contract`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from models.audio.sources import AudioSource, Resampled
from models.drivers.contract import clip_frames
from models.drivers.recorded import RecordedDriver, RecordedWeights

JAW_OPEN = "jaw_open"
LIPS_WIDE = "lips_wide"
LIPS_ROUND = "lips_round"
LIPS_CLOSED = "lips_closed"

ANALYSIS_RATE = 16000  # speech cues live below 8 kHz; a fixed rate makes every threshold fixed
_CHUNK_FRAMES = 2048  # frames analysed at once ...
_SPECTRUM_VALUES = 1 << 19  # ... and at most this many spectrum bins (low frame rates have long windows)
_ATTACK_S = 0.015  # the mouth opens quickly ...
_RELEASE_S = 0.04  # ... and closes a little slower, so it does not chatter


@dataclass(frozen=True)
class _Features:
    """Per-frame acoustic cues."""

    level: np.ndarray  # [0, 1] loudness above the clip's noise floor
    noisiness: np.ndarray  # [0, 1] spectral flatness: fricatives, breath, noise
    voicing: np.ndarray  # [0, 1] tonal and low-band dominated: vowels, nasals
    brightness: np.ndarray  # log2(centroid / the speaker's mean): > 0 for /i/ /e/, < 0 for /o/ /u/


class SignalSpeechDriver(RecordedDriver):
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

    def analyse(self, audio: AudioSource, fps: float) -> RecordedWeights:
        """Speech weights (T, Ks) as `RecordedWeights`; the audio is analysed at 16 kHz whatever
        its rate, a window at a time. The expression comes from the emotions (see the base)."""
        return RecordedWeights(self._speech(audio, fps))

    def _speech(self, audio: AudioSource, fps: float) -> np.ndarray:
        frames = clip_frames(audio, fps, "speech driver")
        out = np.zeros((frames, len(self.speech_names)), dtype=np.float32)
        if frames == 0:
            return out
        cues = _mouth_cues(_Analysis(Resampled(audio, ANALYSIS_RATE), fps, frames).features(), fps)
        for column, name in enumerate(self.speech_names):
            if name in cues:
                out[:, column] = cues[name]
        return np.clip(_attack_release(out, fps), 0.0, 1.0)


class _Analysis:
    """Hann windows centred on each frame time i / fps of a 16 kHz source, `_CHUNK_FRAMES` frames
    of audio at a time (three passes: levels, the noise spectrum, the centroid), so memory does
    not grow with the clip."""

    def __init__(self, signal: AudioSource, fps: float, frames: int) -> None:
        self.signal, self.frames = signal, frames
        self.win = max(int(0.032 * ANALYSIS_RATE), int(round(1.5 * ANALYSIS_RATE / fps)))
        self.nfft = 1 << (self.win - 1).bit_length()
        self.hann = np.hanning(self.win).astype(np.float32)
        # window i covers signal samples starts[i] - win // 2 onwards (silence outside the clip)
        self.first = np.round(np.arange(frames) * ANALYSIS_RATE / fps).astype(np.int64) - self.win // 2
        freqs = np.fft.rfftfreq(self.nfft, 1.0 / ANALYSIS_RATE)
        self.band = (freqs >= 80) & (freqs <= 7000)
        self.low = (freqs >= 80) & (freqs <= 1000)
        self.high = (freqs >= 2500) & (freqs <= 7000)
        self.formant = (freqs >= 150) & (freqs <= 4000)
        self.formant_freqs = freqs[self.formant]

    def _spectra(self, rows: np.ndarray, emphasised: bool) -> np.ndarray:
        """Power spectra [len(rows), nfft // 2 + 1] of the frames `rows` (ascending), of the
        signal or of its pre-emphasis s[k] − 0.97·s[k−1] (zero where s[k−1] is outside)."""
        lo = int(self.first[rows[0]]) - 1
        segment = self.signal.read(lo, int(self.first[rows[-1]]) + self.win - lo)
        if emphasised:
            k = np.arange(lo + 1, lo + len(segment))
            values = np.where((k >= 1) & (k < self.signal.num_samples), segment[1:] - 0.97 * segment[:-1], 0.0)
        else:
            values = segment[1:]
        windows = sliding_window_view(values, self.win)[self.first[rows] - lo - 1] * self.hann
        return np.abs(np.fft.rfft(windows, self.nfft, axis=1)) ** 2

    def _batches(self, rows: np.ndarray) -> Iterator[np.ndarray]:
        """`rows` a batch at a time, so that the windows and spectra held at once are bounded."""
        size = max(1, min(_CHUNK_FRAMES, _SPECTRUM_VALUES // self.nfft))
        for first in range(0, len(rows), size):
            yield rows[first:first + size]

    def features(self) -> _Features:
        every = np.arange(self.frames)
        rms, flatness, low_high_db = (np.empty(self.frames) for _ in range(3))
        for rows in self._batches(every):
            power = self._spectra(rows, emphasised=False) + 1e-12
            rms[rows] = np.sqrt(2.0 * power.sum(axis=1) / self.nfft / np.sum(self.hann**2))  # Parseval
            in_band = power[:, self.band]
            flatness[rows] = np.exp(np.mean(np.log(in_band), axis=1)) / np.mean(in_band, axis=1)
            low_high_db[rows] = 10 * np.log10(power[:, self.low].sum(axis=1) / power[:, self.high].sum(axis=1))

        # amplitude (not power) centroid of the pre-emphasised formant band, so that F2 is not
        # drowned by F1; the mean spectrum of the clip's quietest tenth (its noise) is subtracted first
        quiet = every[rms <= np.percentile(rms, 10)]
        noise = sum(self._tilted(rows).sum(axis=0) for rows in self._batches(quiet)) / len(quiet)
        centroid = np.empty(self.frames)
        for rows in self._batches(every):
            amplitude = np.sqrt(np.maximum(self._tilted(rows) - noise, 0.0))
            centroid[rows] = (amplitude @ self.formant_freqs) / (amplitude.sum(axis=1) + 1e-12)

        noisiness = np.clip((flatness - 0.08) / 0.3, 0.0, 1.0)
        voicing = (1.0 - noisiness) / (1.0 + np.exp(-(low_high_db - 3.0) / 4.0))
        level = _loudness(rms)
        # relative to the clip's mean over voiced frames: voices differ more than their vowels do
        log_centroid = np.log2(np.maximum(centroid, 1.0))
        weight = level * voicing
        reference = (weight @ log_centroid) / (weight.sum() + 1e-12)
        return _Features(level=level, noisiness=noisiness, voicing=voicing, brightness=log_centroid - reference)

    def _tilted(self, rows: np.ndarray) -> np.ndarray:
        return self._spectra(rows, emphasised=True)[:, self.formant].astype(np.float32)


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
