"""A small built-in speech synthesizer whose mouth shapes are known exactly.

The synthetic training corpus needs speech audio together with the speech blendshape weights
that "produced" it. Both come from one `Utterance` (phonemes with start and end times): the
audio from a source–filter synthesis (glottal pulses through formant resonators, filtered
noise for fricatives and bursts), the weights from each phoneme's viseme target with
coarticulation. A speech generator trained on such clips learns to read the mouth shape from
the acoustic cues, and its answers can be checked against the planted truth. Nothing needs to
be installed or downloaded: numpy and scipy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, lfilter

from common.errors import InputError

SPEECH_NAMES = ("jaw_open", "lips_wide", "lips_round", "lips_closed")
SILENCE = "sil"

_SCHWA = (500.0, 1500.0, 2500.0)
_VOWEL_BANDWIDTHS = (80.0, 100.0, 150.0)
_NASAL_BANDWIDTHS = (50.0, 300.0, 400.0)  # a nasal murmur: one strong low resonance
_VOICE_BAR = (200.0, 1100.0, 2500.0)  # low-frequency voicing heard through closed lips


@dataclass(frozen=True)
class Phoneme:
    """One sound: how long it lasts, how the mouth looks, and how it sounds."""

    duration: tuple[float, float]  # (shortest, longest) seconds at rate 1
    viseme: tuple[float, float, float, float]  # target weights over SPEECH_NAMES
    voicing: float = 0.0  # level of the glottal (voiced) component, 0 = voiceless
    formants: tuple[float, float, float] = _SCHWA  # F1–F3 in Hz for an adult male voice
    bandwidths: tuple[float, float, float] = _VOWEL_BANDWIDTHS
    noise: float = 0.0  # level of the noise component, 0 = none
    band: tuple[float, float] = (1000.0, 4000.0)  # pass band of the noise in Hz
    burst: bool = False  # noise only as a release burst ending the segment (stops)


PHONEMES: dict[str, Phoneme] = {
    SILENCE: Phoneme((0.06, 0.20), (0.0, 0.0, 0.0, 0.0)),
    "a": Phoneme((0.09, 0.18), (0.9, 0.2, 0.0, 0.0), 1.0, (730.0, 1090.0, 2440.0)),
    "e": Phoneme((0.08, 0.15), (0.5, 0.7, 0.0, 0.0), 1.0, (530.0, 1840.0, 2480.0)),
    "i": Phoneme((0.07, 0.14), (0.3, 0.9, 0.0, 0.0), 1.0, (270.0, 2290.0, 3010.0)),
    "o": Phoneme((0.09, 0.17), (0.55, 0.0, 0.75, 0.0), 1.0, (570.0, 840.0, 2410.0)),
    "u": Phoneme((0.08, 0.15), (0.25, 0.0, 1.0, 0.0), 1.0, (300.0, 870.0, 2240.0)),
    "w": Phoneme((0.05, 0.09), (0.15, 0.0, 0.9, 0.0), 0.7, (300.0, 650.0, 2200.0)),
    "m": Phoneme((0.06, 0.10), (0.0, 0.0, 0.0, 1.0), 0.3, (250.0, 1100.0, 2300.0), _NASAL_BANDWIDTHS),
    "n": Phoneme((0.05, 0.09), (0.2, 0.2, 0.0, 0.0), 0.3, (250.0, 1600.0, 2600.0), _NASAL_BANDWIDTHS),
    "b": Phoneme((0.06, 0.10), (0.0, 0.0, 0.0, 1.0), 0.1, _VOICE_BAR, _NASAL_BANDWIDTHS,
        noise=0.2, band=(400.0, 2500.0), burst=True),
    "p": Phoneme((0.07, 0.11), (0.0, 0.0, 0.0, 1.0), noise=0.3, band=(400.0, 2500.0), burst=True),
    "d": Phoneme((0.05, 0.09), (0.2, 0.3, 0.0, 0.0), 0.1, _VOICE_BAR, _NASAL_BANDWIDTHS,
        noise=0.25, band=(2500.0, 6000.0), burst=True),
    "t": Phoneme((0.06, 0.10), (0.2, 0.3, 0.0, 0.0), noise=0.35, band=(3000.0, 7000.0), burst=True),
    "k": Phoneme((0.06, 0.10), (0.3, 0.1, 0.0, 0.0), noise=0.35, band=(1400.0, 3200.0), burst=True),
    "s": Phoneme((0.08, 0.14), (0.15, 0.4, 0.0, 0.0), noise=0.22, band=(4000.0, 8000.0)),
    "sh": Phoneme((0.08, 0.14), (0.2, 0.0, 0.6, 0.0), noise=0.28, band=(1800.0, 5000.0)),
    "f": Phoneme((0.07, 0.12), (0.1, 0.0, 0.0, 0.5), noise=0.08, band=(1000.0, 7500.0)),
}

_VOWELS = ("a", "e", "i", "o", "u")
_ONSETS = ("m", "n", "b", "p", "d", "t", "k", "s", "sh", "f", "w")
_CODAS = ("m", "n", "p", "t", "k", "s", "sh", "f")
_EDGE_SILENCE = (0.15, 0.35)  # seconds of silence opening and closing an utterance, at rate 1
_SYLLABLES_PER_WORD = np.array([0.45, 0.40, 0.15])  # probabilities of 1, 2, 3 syllables
_ONSET_CHANCE = 0.85
_CODA_CHANCE = 0.3

_RAMP_S = 0.010  # cross-fade between neighbouring segments: no clicks
_PREROLL_S = 0.020  # resonators run this long before a segment so it starts in steady state
_BURST_S = 0.025  # a stop's release burst ends its segment ...
_BURST_DECAY_S = 0.006  # ... and dies away this fast
_CLOSED_JAW_LEVEL = 0.35  # voiced loudness with the jaw closed, relative to fully open
_DECLINATION = 0.2  # the pitch falls from +10 % to -10 % of the voice's mean over an utterance
_WOBBLE = 0.02  # slow random pitch drift
_JITTER = 0.01  # period-to-period jitter, a fraction of the period
_SHIMMER = 0.05  # pulse-to-pulse amplitude variation
_GLOTTAL_CORNER_HZ = 150.0  # the glottal pulse spectrum falls off above this
_PEAK = 10.0 ** (-3.0 / 20.0)  # peak level: -3 dBFS
_FLOOR = 10.0 ** (-60.0 / 20.0)  # a faint noise floor, as in any recording, relative to the peak

_HOLD = 0.25  # a viseme holds its target except in this fraction at each end of its segment
_SMOOTH_S = 0.010  # Gaussian smoothing of the viseme curves (standard deviation)


@dataclass(frozen=True)
class Utterance:
    """Phonemes with their timing: (symbol, start s, end s), contiguous from 0."""

    segments: tuple[tuple[str, float, float], ...]

    def __post_init__(self) -> None:
        if not self.segments:
            raise InputError("utterance: no segments")
        previous_end = 0.0
        for symbol, start, end in self.segments:
            if symbol not in PHONEMES:
                raise InputError(f"utterance: unknown phoneme {symbol!r}; known: {sorted(PHONEMES)}")
            if start != previous_end or not end > start or not math.isfinite(end):
                raise InputError(
                    f"utterance: segment ({symbol!r}, {start}, {end}) does not continue the previous "
                    f"one ending at {previous_end} with a positive length"
                )
            previous_end = end

    @property
    def duration(self) -> float:
        """Seconds from the first segment's start to the last one's end."""
        return self.segments[-1][2]


@dataclass(frozen=True)
class Voice:
    """A speaker: mean pitch, vocal-tract size (formant scale) and breathiness."""

    name: str
    pitch_hz: float
    formant_scale: float
    breathiness: float = 0.05  # aspiration noise mixed into the glottal source, relative level

    def __post_init__(self) -> None:
        if not (self.pitch_hz > 0 and self.formant_scale > 0 and self.breathiness >= 0):
            raise InputError(f"voice {self.name!r}: pitch and formant scale must be > 0, breathiness >= 0")


VOICES: tuple[Voice, ...] = (
    Voice("deep", 95.0, 0.90, 0.03),
    Voice("baritone", 120.0, 0.97, 0.05),
    Voice("tenor", 150.0, 1.03, 0.05),
    Voice("alto", 195.0, 1.10, 0.08),
    Voice("soprano", 240.0, 1.15, 0.10),
)


def random_utterance(rng: np.random.Generator, seconds: float, rate: float = 1.0) -> Utterance:
    """Random words of CV(C) syllables between short pauses, lasting exactly `seconds`.

    `rate` speeds speech up (> 1) or slows it down; the closing silence absorbs the rest of
    the time, so it is at least as long as the shortest opening silence.
    """
    if not (math.isfinite(seconds) and seconds > 0):
        raise InputError(f"random utterance: duration {seconds} s is not a positive number")
    if not (math.isfinite(rate) and rate > 0):
        raise InputError(f"random utterance: rate {rate} is not a positive number")
    lead = min(seconds, rng.uniform(*_EDGE_SILENCE) / rate)
    closing = _EDGE_SILENCE[0] / rate
    segments = [(SILENCE, 0.0, lead)]
    while True:
        word = _random_word(rng, rate)
        if len(segments) > 1:
            word.insert(0, (SILENCE, rng.uniform(*PHONEMES[SILENCE].duration) / rate))
        if segments[-1][2] + sum(length for _, length in word) + closing > seconds:
            break
        for symbol, length in word:
            end = segments[-1][2]
            segments.append((symbol, end, end + length))
    if len(segments) == 1:
        return Utterance(((SILENCE, 0.0, seconds),))
    segments.append((SILENCE, segments[-1][2], seconds))
    return Utterance(tuple(segments))


def _random_word(rng: np.random.Generator, rate: float) -> list[tuple[str, float]]:
    """(symbol, seconds) of one word."""
    symbols: list[str] = []
    for _ in range(1 + rng.choice(len(_SYLLABLES_PER_WORD), p=_SYLLABLES_PER_WORD)):
        if rng.random() < _ONSET_CHANCE:
            symbols.append(str(rng.choice(_ONSETS)))
        symbols.append(str(rng.choice(_VOWELS)))
        if rng.random() < _CODA_CHANCE:
            symbols.append(str(rng.choice(_CODAS)))
    return [(symbol, rng.uniform(*PHONEMES[symbol].duration) / rate) for symbol in symbols]


def synthesize(utterance: Utterance, voice: Voice, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """float32 [round(duration · sample_rate)] samples of the utterance spoken by `voice`, peak -3 dBFS.

    Each segment's sound is made on its own stretch (plus a pre-roll for the filters) and
    cross-faded into its neighbours; `seed` fixes the pulse jitter and every noise.
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise InputError(f"synthesize: sample rate {sample_rate!r} is not a positive integer")
    n = round(utterance.duration * sample_rate)
    rng = np.random.default_rng(seed)
    source = _glottal_source(n, voice, sample_rate, rng)
    hiss = rng.standard_normal(n)
    ramp = max(1.0, _RAMP_S * sample_rate)
    preroll = round(_PREROLL_S * sample_rate)
    out = np.zeros(n)
    for symbol, start, end in utterance.segments:
        phoneme = PHONEMES[symbol]
        s0, s1 = round(start * sample_rate), round(end * sample_rate)
        e0, e1 = max(0, math.floor(s0 - ramp / 2)), min(n, math.ceil(s1 + ramp / 2))
        if s1 <= s0 or (phoneme.voicing == 0 and phoneme.noise == 0):
            continue
        p0 = max(0, e0 - preroll)
        sound = np.zeros(e1 - e0)
        if phoneme.voicing > 0:
            voiced = _resonate(source[p0:e1], phoneme, voice.formant_scale, sample_rate)
            level = phoneme.voicing * (_CLOSED_JAW_LEVEL + (1 - _CLOSED_JAW_LEVEL) * phoneme.viseme[0])
            sound += level * _unit_rms(voiced)[e0 - p0:]
        if phoneme.noise > 0:
            b, a = _band_pass(phoneme.band, sample_rate)
            noise = _unit_rms(lfilter(b, a, hiss[p0:e1]))[e0 - p0:]
            if phoneme.burst:
                noise *= _burst_envelope(np.arange(e0, e1), s0, s1, sample_rate)
            sound += phoneme.noise * noise
        i = np.arange(e0, e1) + 0.5
        window = np.clip(np.minimum(i - (s0 - ramp / 2), (s1 + ramp / 2) - i) / ramp, 0.0, 1.0)
        out[e0:e1] += sound * window
    edge = min(n, round(ramp))
    fade = np.linspace(0.0, 1.0, edge, endpoint=False)
    out[:edge] *= fade
    out[n - edge:] *= fade[::-1]
    peak = np.abs(out).max(initial=0.0)
    if peak > 0:
        out += _FLOOR * peak * rng.standard_normal(n)
        out *= _PEAK / np.abs(out).max()
    return out.astype(np.float32)


def _glottal_source(n: int, voice: Voice, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS voiced excitation over the whole utterance: pulses at a falling, jittered pitch."""
    t = np.arange(n) / sample_rate
    fraction = t / max(t[-1], 1.0 / sample_rate) if n else t
    rates, phases = rng.uniform(0.5, 1.5, 2), rng.uniform(0.0, 2 * np.pi, 2)
    wobble = _WOBBLE / 2 * np.sin(2 * np.pi * rates[:, None] * t + phases[:, None]).sum(axis=0)
    f0 = voice.pitch_hz * (1 + _DECLINATION * (0.5 - fraction)) * (1 + wobble)
    cycles = np.floor(np.cumsum(f0 / sample_rate))
    onsets = np.flatnonzero(np.diff(cycles, prepend=0.0) > 0)
    periods = sample_rate / f0[onsets]
    onsets = np.clip(onsets + np.round(rng.normal(0.0, _JITTER, onsets.size) * periods).astype(int), 0, n - 1)
    pulses = np.zeros(n)
    np.add.at(pulses, onsets, 1 + _SHIMMER * rng.standard_normal(onsets.size))
    pole = math.exp(-2 * math.pi * _GLOTTAL_CORNER_HZ / sample_rate)
    # two poles shape the glottal pulse (-12 dB/octave), one zero the lip radiation (+6 dB/octave)
    glottal = _unit_rms(lfilter([1.0, -1.0], [1.0, -2 * pole, pole * pole], pulses))
    return glottal + voice.breathiness * rng.standard_normal(n)


def _resonate(x: np.ndarray, phoneme: Phoneme, formant_scale: float, sample_rate: int) -> np.ndarray:
    """The vocal tract: x through one 2nd-order resonator per formant below Nyquist."""
    for frequency, bandwidth in zip(phoneme.formants, phoneme.bandwidths):
        frequency *= formant_scale
        if frequency >= 0.45 * sample_rate:
            continue
        r = math.exp(-math.pi * bandwidth / sample_rate)
        c = 2 * r * math.cos(2 * math.pi * frequency / sample_rate)
        x = lfilter([1 - c + r * r], [1.0, -c, r * r], x)
    return x


def _band_pass(band: tuple[float, float], sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Butterworth band pass, its upper edge kept below Nyquist at low sample rates."""
    high = min(band[1], 0.45 * sample_rate)
    low = min(band[0], high / 2)
    return butter(2, [low, high], btype="bandpass", fs=sample_rate)


def _burst_envelope(index: np.ndarray, s0: int, s1: int, sample_rate: int) -> np.ndarray:
    """0 during a stop's closure, then a quickly decaying release burst over its last part."""
    onset = s1 - min(round(_BURST_S * sample_rate), (s1 - s0) // 2)
    since = (index - onset) / sample_rate
    return np.where(since >= 0, np.exp(-np.maximum(since, 0.0) / _BURST_DECAY_S), 0.0)


def _unit_rms(x: np.ndarray) -> np.ndarray:
    """x scaled to RMS 1 (zeros stay zeros), so table levels set loudness, not filter gains."""
    rms = math.sqrt(float(np.mean(x * x))) if x.size else 0.0
    return x / rms if rms > 0 else x


def viseme_weights(utterance: Utterance, fps: float, frames: int) -> np.ndarray:
    """float32 [frames, 4] weights over SPEECH_NAMES at t = i / fps, zeros past the end
    (the utterance's phonemes through `viseme_curves`)."""
    return viseme_curves([(PHONEMES[symbol].viseme, start, end) for symbol, start, end in utterance.segments],
                         fps, frames)


def viseme_curves(segments: Sequence[tuple[Sequence[float], float, float]], fps: float, frames: int) -> np.ndarray:
    """float32 [frames, 4] weights over SPEECH_NAMES at t = i / fps from (viseme target, start s,
    end s) segments, contiguous and ascending; zeros past the last end.

    Coarticulation: each segment holds its viseme target in its middle, neighbouring targets
    blend linearly across each boundary, and a short Gaussian smooths the corners. Any timed
    phonemes use it: the built-in synthesizer's and espeak-ng's (`models.learning.espeak_corpus`).
    """
    if not (math.isfinite(fps) and fps > 0):
        raise InputError(f"viseme weights: fps {fps} is not a positive number")
    if frames < 0:
        raise InputError(f"viseme weights: frame count {frames} is negative")
    if not segments:
        raise InputError("viseme weights: no segments")
    times, targets = [], []
    for viseme, start, end in segments:
        hold = _HOLD * (end - start)
        times += [start + hold, end - hold]
        targets += [tuple(viseme)] * 2
    key_times, key_targets = np.array(times), np.array(targets, dtype=np.float64)
    offsets = np.linspace(-3 * _SMOOTH_S, 3 * _SMOOTH_S, 13)
    kernel = np.exp(-0.5 * (offsets / _SMOOTH_S) ** 2)
    kernel /= kernel.sum()
    t = np.arange(frames) / fps
    probes = t[:, None] + offsets
    out = np.stack([np.interp(probes, key_times, column) @ kernel for column in key_targets.T], axis=1)
    out[t >= segments[-1][2]] = 0.0
    return np.clip(out, 0.0, 1.0).astype(np.float32)
