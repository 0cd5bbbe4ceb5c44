"""WAV loading in every common layout, resampling, length fitting and atomic saving."""

import struct
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from models.audio import Audio, fit_length, load_wav, resample, save_wav
from models.errors import InputError

_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def write_extensible(path: Path, rate: int, frames: bytes, channels: int, bits: int, code: int) -> None:
    """A WAVE_FORMAT_EXTENSIBLE file (which scipy cannot write) around raw interleaved frames."""
    block = channels * bits // 8
    fmt = struct.pack(
        "<HHIIHHHHI16s", 0xFFFE, channels, rate, rate * block, block, bits, 22, bits,
        (1 << channels) - 1, struct.pack("<H", code) + _GUID_TAIL,
    )
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(frames)) + frames
    body = b"WAVE" + chunks
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def tone(n: int, channels: int, seed: int = 0) -> np.ndarray:
    """Deterministic [n, channels] float64 test signal in (-1, 1)."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(scale=0.3, size=(n, channels)), -0.99, 0.99)


@pytest.mark.parametrize(
    "rate, dtype, scale, channels",
    [
        (8000, np.int16, 32768, 1),
        (44100, np.int16, 32768, 2),
        (16000, np.int32, 2**31, 2),
        (22050, np.float32, 1, 1),
        (48000, np.float64, 1, 2),
        (11025, np.uint8, 128, 1),
    ],
)
def test_load_plain_wav(tmp_path: Path, rate: int, dtype: type, scale: int, channels: int) -> None:
    signal = tone(1234, channels)
    if dtype == np.uint8:
        stored = np.round(signal * 127 + 128).astype(np.uint8)
        expected = (stored.astype(np.float64) - 128) / scale
    elif np.issubdtype(dtype, np.integer):
        stored = np.round(signal * (scale - 1)).astype(dtype)
        expected = stored / scale
    else:
        stored = signal.astype(dtype)
        expected = stored.astype(np.float64)
    path = tmp_path / "x.wav"
    wavfile.write(path, rate, stored[:, 0] if channels == 1 else stored)

    audio = load_wav(path)

    assert audio.sample_rate == rate and audio.samples.dtype == np.float32
    assert audio.duration == pytest.approx(1234 / rate)
    np.testing.assert_allclose(audio.samples, expected.mean(axis=1), atol=1e-6)


@pytest.mark.parametrize("bits, code", [(16, 1), (24, 1), (32, 3)])
def test_load_extensible_wav(tmp_path: Path, bits: int, code: int) -> None:
    signal = tone(500, 2, seed=bits)
    if code == 3:
        frames, expected = signal.astype("<f4").tobytes(), signal.astype(np.float32).astype(np.float64)
    else:
        ints = np.round(signal * (2 ** (bits - 1) - 1)).astype("<i4")
        frames = b"".join(int(v).to_bytes(bits // 8, "little", signed=True) for v in ints.ravel())
        expected = ints / 2 ** (bits - 1)
    path = tmp_path / "ext.wav"
    write_extensible(path, 32000, frames, channels=2, bits=bits, code=code)

    audio = load_wav(path)

    assert audio.sample_rate == 32000
    np.testing.assert_allclose(audio.samples, expected.mean(axis=1), atol=1e-6)


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    empty = tmp_path / "empty.wav"
    wavfile.write(empty, 16000, np.zeros(0, dtype=np.int16))
    for path in (text, empty, tmp_path / "missing.wav"):
        with pytest.raises(InputError, match=path.name):
            load_wav(path)


def test_audio_normalises_any_samples() -> None:
    audio = Audio(np.array([[32767, -32768], [0, 16384]], dtype=np.int16), 8000)
    np.testing.assert_allclose(audio.samples, [-0.5 / 32768, 0.25], atol=1e-7)
    with pytest.raises(InputError):
        Audio(np.zeros(4), 0)
    with pytest.raises(InputError, match="NaN"):
        Audio(np.array([0.0, np.nan]), 8000)


@pytest.mark.parametrize("source, target", [(44100, 16000), (8000, 48000), (22050, 22050)])
def test_resample_keeps_a_tone(source: int, target: int) -> None:
    t = np.arange(source) / source
    audio = Audio(0.5 * np.sin(2 * np.pi * 440 * t), source)

    out = resample(audio, target)

    assert out.sample_rate == target and len(out.samples) == target
    ideal = 0.5 * np.sin(2 * np.pi * 440 * np.arange(target) / target)
    inner = slice(target // 10, -target // 10)
    np.testing.assert_allclose(out.samples[inner], ideal[inner], atol=5e-3)


def test_fit_length_trims_and_pads() -> None:
    audio = Audio(np.full(1000, 0.5), 1000)
    longer, shorter = fit_length(audio, 1.5004), fit_length(audio, 0.25)
    assert len(longer.samples) == 1500 and len(shorter.samples) == 250
    assert (longer.samples[:1000] == 0.5).all() and (longer.samples[1000:] == 0).all()
    with pytest.raises(InputError):
        fit_length(audio, -1.0)


def test_save_wav_is_16_bit_and_atomic(tmp_path: Path) -> None:
    audio = Audio(tone(800, 1)[:, 0], 24000)
    path = tmp_path / "out.wav"
    path.write_bytes(b"old content")

    save_wav(audio, path)

    rate, data = wavfile.read(path)
    assert rate == 24000 and data.dtype == np.int16
    np.testing.assert_allclose(load_wav(path).samples, audio.samples, atol=0.5 / 32768)
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]
    with pytest.raises(InputError, match="missing_folder"):
        save_wav(audio, tmp_path / "missing_folder" / "x.wav")
