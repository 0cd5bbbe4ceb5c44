"""WAV loading in every common layout, resampling, length fitting and atomic saving."""

import os
import struct
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from common.errors import InputError
from models.audio.sources import (
    Audio,
    fit_length,
    load_wav,
    read_all,
    resample,
    save_wav,
)

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
    longer, shorter = read_all(fit_length(audio, 1.5004)), read_all(fit_length(audio, 0.25))
    assert len(longer) == 1500 and len(shorter) == 250
    assert (longer[:1000] == 0.5).all() and (longer[1000:] == 0).all()
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


# ---- reading a window at a time ----------------------------------------------------------------
import models.audio.sources as audio_module  # noqa: E402
from models.audio.sources import AudioView, Resampled, open_wav  # noqa: E402


def riff(chunks: list[tuple[bytes, bytes]], magic: bytes = b"RIFF", endian: str = "<") -> bytes:
    body = b"WAVE" + b"".join(cid + struct.pack(endian + "I", len(data)) + data + b"\0" * (len(data) & 1)
                              for cid, data in chunks)
    return magic + struct.pack(endian + "I", len(body)) + body


def fmt(channels: int, rate: int, bits: int, code: int = 1, endian: str = "<") -> bytes:
    block = channels * ((bits + 7) // 8) & 0xFFFF
    return struct.pack(endian + "HHIIHH", code, channels, rate, rate * block & 0xFFFFFFFF, block, bits)


def test_unusual_but_valid_layouts_read_like_scipy(tmp_path: Path) -> None:
    ints = np.round(tone(300, 2, seed=3) * 32767).astype("<i2")
    expected = (ints / 32768.0).mean(axis=1)
    cases = {
        "list_before_fmt": [(b"LIST", b"INFOISFT\x05\x00\x00\x00odd!\x00"), (b"fmt ", fmt(2, 8000, 16)), (b"data", ints.tobytes())],
        "data_before_fmt": [(b"data", ints.tobytes()), (b"fmt ", fmt(2, 8000, 16))],
        "truncated_data": [(b"fmt ", fmt(2, 8000, 16)), (b"data", ints.tobytes() + b"\0" * 400)],
    }
    for name, chunks in cases.items():
        raw = riff(chunks)
        if name == "truncated_data":  # a recording cut short: its header promises 100 more frames
            raw = raw[:-400]
        (tmp_path / f"{name}.wav").write_bytes(raw)
        np.testing.assert_allclose(load_wav(tmp_path / f"{name}.wav").samples, expected, atol=1e-6, err_msg=name)
    big = ints.astype(">i2")  # RIFX: big-endian samples and sizes
    (tmp_path / "rifx.wav").write_bytes(riff([(b"fmt ", fmt(2, 8000, 16, endian=">")), (b"data", big.tobytes())],
                                             b"RIFX", ">"))
    np.testing.assert_allclose(load_wav(tmp_path / "rifx.wav").samples, expected, atol=1e-6)
    ds64 = struct.pack("<QQQI", 0, ints.nbytes, 300, 0)  # RF64: 64-bit sizes in ds64, 0xFFFFFFFF in data
    raw = riff([(b"ds64", ds64), (b"fmt ", fmt(2, 8000, 16)), (b"data", ints.tobytes())], b"RF64")
    raw = raw.replace(b"data" + struct.pack("<I", ints.nbytes), b"data\xff\xff\xff\xff")
    (tmp_path / "rf64.wav").write_bytes(raw)
    np.testing.assert_allclose(load_wav(tmp_path / "rf64.wav").samples, expected, atol=1e-6)


@pytest.mark.parametrize("problem, chunks", [
    ("0 channels", [(b"fmt ", fmt(0, 8000, 16)), (b"data", b"\0" * 8)]),
    ("65535 channels", [(b"fmt ", fmt(65535, 8000, 16)), (b"data", b"\0" * 8)]),
    ("block size 0", [(b"fmt ", fmt(2, 8000, 16)[:12] + struct.pack("<HH", 0, 16)), (b"data", b"\0" * 8)]),
    ("sample rate 0", [(b"fmt ", fmt(1, 0, 16)), (b"data", b"\0" * 8)]),
    ("12 bytes per sample", [(b"fmt ", fmt(1, 8000, 96)), (b"data", b"\0" * 24)]),
    ("format 85", [(b"fmt ", fmt(1, 8000, 16, code=85)), (b"data", b"\0" * 8)]),
    ("short fmt", [(b"fmt ", b"\x01\x00"), (b"data", b"\0" * 8)]),
    ("no data", [(b"fmt ", fmt(1, 8000, 16))]),
    ("no samples", [(b"fmt ", fmt(1, 8000, 16)), (b"data", b"\0")]),
])
def test_broken_headers_are_one_clear_error(tmp_path: Path, problem: str, chunks) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(riff(chunks))
    with pytest.raises(InputError) as caught:
        load_wav(path)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


def test_chunk_sizes_beyond_the_file_and_pipes_are_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "huge.wav"
    path.write_bytes(b"RIFF\xff\xff\xff\xffWAVEJUNK\xff\xff\xff\x7f" + b"\0" * 64)
    with pytest.raises(InputError, match="no format chunk"):
        load_wav(path)
    os.mkfifo(tmp_path / "pipe.wav")
    with pytest.raises(InputError, match="not a regular file"):
        load_wav(tmp_path / "pipe.wav")


def test_reading_windows_equals_reading_it_all(tmp_path: Path) -> None:
    signal_ = tone(5000, 2, seed=4)
    wavfile.write(tmp_path / "x.wav", 11025, np.round(signal_ * 32767).astype(np.int16))
    wav = open_wav(tmp_path / "x.wav")
    whole = read_all(wav)
    assert wav.num_samples == 5000 and np.array_equal(whole, load_wav(tmp_path / "x.wav").samples)
    assert np.array_equal(wav.read(-7, 20), np.r_[np.zeros(7, np.float32), whole[:13]])
    assert np.array_equal(wav.read(4990, 20), np.r_[whole[4990:], np.zeros(10, np.float32)])
    view = AudioView(wav, -100, 5300, gain=3.0)  # padding and a gain that clips
    expected = np.clip(np.r_[np.zeros(100), whole, np.zeros(200)] * np.float32(3.0), -1, 1)
    np.testing.assert_array_equal(read_all(view), expected.astype(np.float32))


@pytest.mark.parametrize("source, target", [(44100, 16000), (22050, 16000), (48000, 16000), (8000, 16000), (16001, 16000)])
def test_resampled_windows_equal_the_whole_resampled(source: int, target: int) -> None:
    audio = Audio(tone(3 * source + 17, 1, seed=source)[:, 0], source)
    whole = resample(audio, target).samples
    lazy = Resampled(audio, target)
    assert lazy.num_samples == len(whole)
    for start, count in ((0, 100), (1234, 3000), (len(whole) - 50, 80), (-30, 60)):
        expected = np.zeros(count, np.float32)
        lo, hi = max(start, 0), min(start + count, len(whole))
        expected[lo - start:hi - start] = whole[lo:hi]
        np.testing.assert_allclose(lazy.read(start, count), expected, atol=1e-6, err_msg=f"{start}+{count}")


def test_streamed_loudness_equals_the_whole_clip_at_once(monkeypatch) -> None:
    from models.audio.loudness import (
        LoudnessTarget,
        integrated_loudness,
        normalise,
        rms_level,
    )

    rng = np.random.default_rng(0)
    audio = Audio(np.clip(rng.normal(0, 0.2, 48000 * 3) * np.repeat(rng.uniform(0, 1, 30), 4800), -1, 1), 48000)
    whole = integrated_loudness(audio), rms_level(audio)
    monkeypatch.setattr(audio_module, "CHUNK_SAMPLES", 777)  # many chunks, none aligned to a block
    assert integrated_loudness(audio) == pytest.approx(whole[0], abs=1e-9)
    assert rms_level(audio) == pytest.approx(whole[1], abs=1e-9)
    out, report = normalise(audio, LoudnessTarget(-6.0, "dBFS"))
    assert report.clipped_samples == int(np.count_nonzero(np.abs(audio.samples * np.float32(out.gain)) > 1.0))
