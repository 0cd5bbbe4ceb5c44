"""The signal-based speech driver on synthetic vowel-consonant speech (and espeak-ng when present)."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import lfilter

from common.errors import InputError
from models.audio.sources import Audio, load_wav
from models.drivers.contract import neutral_speech
from models.drivers.signal import SignalSpeechDriver

NAMES = ("jaw_open", "lips_wide", "lips_round", "lips_closed", "lip_funnel")
FORMANTS = {"a": (730, 1090, 2440), "i": (270, 2290, 3010), "u": (300, 870, 2240), "o": (570, 840, 2410)}


def vowel(name: str, seconds: float, rate: int, f0: float = 120.0) -> np.ndarray:
    """Cascade formant synthesis: a pulse train through three resonators and a glottal tilt."""
    n = int(seconds * rate)
    cycles = np.cumsum(np.full(n, f0 / rate))
    y = (np.diff(np.floor(cycles), prepend=0.0) > 0).astype(float)
    for freq, bandwidth in zip(FORMANTS[name], (60, 90, 120)):
        r, theta = np.exp(-np.pi * bandwidth / rate), 2 * np.pi * freq / rate
        y = lfilter([1 - 2 * r * np.cos(theta) + r * r], [1, -2 * r * np.cos(theta), r * r], y)
    y = lfilter([1.0], [1.0, -0.9], y)
    ramp = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.02 * rate))
    return 0.5 * y / np.abs(y).max() * ramp


def utterance(rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Pauses, vowels, a stop closure and a fricative; returns samples and per-sample labels."""
    rng = np.random.default_rng(0)
    plan = [("-", 0.2), ("a", 0.25), ("|", 0.08), ("i", 0.25), ("s", 0.1), ("u", 0.25), ("-", 0.3),
            ("o", 0.22), ("|", 0.07), ("a", 0.3), ("-", 0.25)]  # fmt: skip
    parts, labels = [], []
    for kind, seconds in plan:
        n = int(seconds * rate)
        if kind in FORMANTS:
            parts.append(vowel(kind, seconds, rate))
        else:
            parts.append({"-": 0.0, "|": 0.003, "s": 0.08}[kind] * rng.standard_normal(n))
        labels += [kind] * n
    samples = np.concatenate(parts) + 5e-4 * rng.standard_normal(len(labels))
    return samples.astype(np.float32), np.array(labels)


def frame_rms(samples: np.ndarray, rate: int, frames: int, fps: float) -> np.ndarray:
    """RMS of the samples within half a frame period of each frame time."""
    half = int(rate / fps / 2)
    centres = np.round(np.arange(frames) * rate / fps).astype(int)
    return np.array([np.sqrt(np.mean(samples[max(0, c - half) : c + half] ** 2)) for c in centres])


@pytest.fixture(scope="module")
def driver() -> SignalSpeechDriver:
    return SignalSpeechDriver(NAMES)


@pytest.mark.parametrize(
    "rate, seconds, fps", [(16000, 1.0, 30), (44100, 2.345, 25), (8000, 0.51, 60), (22050, 0.02, 30)]
)
def test_one_row_per_frame(driver: SignalSpeechDriver, rate: int, seconds: float, fps: float) -> None:
    n = int(seconds * rate)
    samples = 0.1 * np.sin(np.arange(n) * 0.05)
    weights = neutral_speech(driver, Audio(samples, rate), fps)
    assert weights.shape == (round(n / rate * fps), len(NAMES))
    assert weights.dtype == np.float32 and (weights >= 0).all() and (weights <= 1).all()


def test_jaw_follows_the_energy_envelope(driver: SignalSpeechDriver) -> None:
    rate, fps = 22050, 30
    samples, labels = utterance(rate)
    weights = neutral_speech(driver, Audio(samples, rate), fps)
    jaw = weights[:, 0]
    assert np.corrcoef(jaw, frame_rms(samples, rate, len(weights), fps))[0, 1] >= 0.6

    centres = np.round(np.arange(len(weights)) * rate / fps).astype(int)
    label = labels[np.minimum(centres, len(labels) - 1)]
    mean = {kind: weights[label == kind].mean(axis=0) for kind in set(label)}
    assert mean["i"][1] > mean["u"][1] + 0.3  # lips_wide on /i/
    assert mean["u"][2] > mean["i"][2] + 0.3  # lips_round on /u/
    assert mean["|"][3] > 0.5 > mean["a"][3]  # lips_closed in the stop closures
    assert (weights[:, 4] == 0).all()  # a name the driver does not know


def test_any_layout_of_the_same_audio_gives_the_same_weights(driver: SignalSpeechDriver) -> None:
    samples, _ = utterance(16000)
    stereo = np.round(np.repeat(samples[:, None], 2, axis=1) * 32767).astype(np.int16)
    np.testing.assert_allclose(neutral_speech(driver, Audio(stereo, 16000), 30), neutral_speech(driver, Audio(samples, 16000), 30), atol=1e-2)
    np.testing.assert_array_equal(neutral_speech(driver, Audio(samples, 16000), 30), neutral_speech(driver, Audio(samples, 16000), 30))


def test_silence_keeps_the_mouth_still(driver: SignalSpeechDriver) -> None:
    rng = np.random.default_rng(3)
    assert neutral_speech(driver, Audio(np.zeros(16000), 16000), 30).max() == 0
    assert neutral_speech(driver, Audio(1e-5 * rng.standard_normal(48000), 48000), 30).max() < 0.05


def test_bad_arguments(driver: SignalSpeechDriver) -> None:
    with pytest.raises(InputError, match="fps"):
        neutral_speech(driver, Audio(np.zeros(100), 16000), 0)
    with pytest.raises(InputError, match="sample rate"):
        neutral_speech(driver, Audio(np.zeros(100), -1), 30)
    with pytest.raises(InputError, match="duplicate"):
        SignalSpeechDriver(["jaw_open", "jaw_open"])


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_jaw_follows_espeak_speech(driver: SignalSpeechDriver, tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    text = "Please call Stella, ask her to bring these things with her from the store."
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    audio = load_wav(path)
    weights = neutral_speech(driver, audio, 30)
    rms = frame_rms(audio.samples, audio.sample_rate, len(weights), 30)
    assert np.corrcoef(weights[:, 0], rms)[0, 1] >= 0.6


def test_analysis_in_windows_equals_one_window(driver: SignalSpeechDriver, monkeypatch) -> None:
    """Long clips are analysed a few frames of audio at a time; the result does not depend on
    how the clip is cut into windows."""
    import models.audio.sources
    import models.drivers.signal

    samples, _ = utterance(44100)
    audio = Audio(np.tile(samples, 3), 44100)
    whole = neutral_speech(driver, audio, 30)
    monkeypatch.setattr(models.drivers.signal, "_CHUNK_FRAMES", 7)
    monkeypatch.setattr(models.audio.sources, "CHUNK_SAMPLES", 5000)
    np.testing.assert_allclose(neutral_speech(driver, audio, 30), whole, atol=1e-5)
