"""Audio in any format ffmpeg decodes, wherever a WAV is accepted: files made here by the ffmpeg
the project ships (imageio-ffmpeg), decoded samples checked against the WAV they were made from
(exactly for lossless codecs, by correlation and lag for lossy ones), through `avatar render`
for real, and the one-line error for what is not audio."""

import subprocess
import sys
import tracemalloc
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from scipy.io import wavfile

from avatar_app.cli import main
from avatar_app.clip import ClipSource
from common.errors import InputError
from models.audio.decode import AUDIO_SUFFIXES, DecodedAudio, open_audio
from models.audio.sources import WavFile, open_wav, read_all

RATE = 44100
SECONDS = 1.5
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
ROOT = Path(__file__).resolve().parents[1]


def speechlike(seconds: float = SECONDS, rate: int = RATE) -> np.ndarray:
    """Stereo [n, 2]: a gliding harmonic voice in syllable-rate bursts left, another right."""
    t = np.arange(int(seconds * rate)) / rate
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None) ** 0.5
    left = sum(np.sin(2 * np.pi * k * (140 * t + 15 * t**2)) / k for k in range(1, 12)) * envelope
    right = 0.6 * np.sin(2 * np.pi * 330 * t) * np.clip(np.cos(2 * np.pi * 2.0 * t), 0, None)
    return np.stack([0.4 * left / np.abs(left).max(), right], 1)


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-nostdin", "-y", *args], check=True, timeout=60)


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """The source WAV (16-bit stereo) and what the shipped ffmpeg makes of it."""
    folder = tmp_path_factory.mktemp("audio")
    wav = folder / "source.wav"
    wavfile.write(wav, RATE, np.round(speechlike() * 32767).astype(np.int16))
    files = {"wav": wav}
    for name, codec in (("mp3", ["-c:a", "libmp3lame", "-b:a", "192k"]), ("m4a", ["-c:a", "aac", "-b:a", "192k"]),
                        ("flac", ["-c:a", "flac"]), ("ogg", ["-c:a", "libvorbis", "-q:a", "6"]),
                        ("opus", ["-c:a", "libopus", "-b:a", "128k"]), ("mulaw.wav", ["-c:a", "pcm_mulaw"])):
        files[name] = folder / f"speech.{name}"
        ffmpeg("-i", str(wav), *codec, str(files[name]))
    files["mp4"] = folder / "talk.mp4"  # a video with a sound track
    ffmpeg("-f", "lavfi", "-i", f"testsrc=size=64x64:rate=25:duration={SECONDS}", "-i", str(wav), "-c:v", "libx264",
           "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "192k", "-shortest", str(files["mp4"]))
    files["silent.mp4"] = folder / "silent.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=25:duration=1", "-pix_fmt", "yuv420p", str(files["silent.mp4"]))
    files["garbage"] = folder / "garbage.mp3"
    files["garbage"].write_bytes(b"ID3\x04" + bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8)))
    return files


def lag_and_correlation(x: np.ndarray, reference: np.ndarray, reach: int = 4000) -> tuple[int, float]:
    """The shift of `x` against `reference` (positive: x late) and their correlation there."""
    n = min(len(x), len(reference))
    x, reference = x[:n] - x[:n].mean(), reference[:n] - reference[:n].mean()
    size = 1 << int(np.ceil(np.log2(2 * n)))
    cross = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(reference, size)), size)
    lags = np.r_[np.arange(0, reach + 1), np.arange(-reach, 0)]
    lag = int(lags[np.argmax(cross[lags])])
    a, b = (x[lag:], reference[:n - lag]) if lag >= 0 else (x[:n + lag], reference[-lag:])
    return lag, float(np.corrcoef(a, b)[0, 1])


def test_a_wav_keeps_its_in_process_path(made):
    source = open_audio(made["wav"])
    assert isinstance(source, WavFile)  # no ffmpeg: read a window at a time from the file
    assert np.array_equal(read_all(source), read_all(open_wav(made["wav"])))


def test_lossless_flac_decodes_to_the_wav_samples_exactly(made):
    flac = open_audio(made["flac"])
    assert isinstance(flac, DecodedAudio) and flac.sample_rate == RATE
    assert np.array_equal(read_all(flac), read_all(open_wav(made["wav"])))  # channels averaged alike
    assert np.array_equal(flac.read(-10, 30), np.r_[np.zeros(10, np.float32), read_all(flac)[:20]])  # silence before


@pytest.mark.parametrize("name, rate", [("mp3", RATE), ("m4a", RATE), ("ogg", RATE), ("opus", 48000),
                                        ("mp4", RATE), ("mulaw.wav", RATE)])
def test_lossy_formats_decode_in_step_with_the_wav(made, name, rate):
    decoded = open_audio(made[name])
    assert isinstance(decoded, DecodedAudio) and decoded.sample_rate == rate
    samples = read_all(decoded)
    if rate != RATE:  # Opus decodes at 48 kHz: compare at the source's rate
        from scipy.signal import resample_poly
        samples = resample_poly(samples, RATE, rate)
    reference = read_all(open_wav(made["wav"]))
    assert abs(len(samples) - len(reference)) <= 0.01 * RATE  # ffmpeg trims the encoders' padding
    lag, correlation = lag_and_correlation(samples, reference)
    assert abs(lag) <= 1 and correlation > 0.99, (lag, correlation)


def test_a_file_is_decoded_once_until_it_changes(made, tmp_path):
    copy = tmp_path / "again.mp3"
    copy.write_bytes(made["mp3"].read_bytes())
    first = open_audio(copy)
    assert open_audio(copy) is first
    ffmpeg("-i", str(made["wav"]), "-t", "0.5", str(copy))  # rewritten: shorter
    assert open_audio(copy).duration < 0.6 < first.duration


@pytest.fixture(scope="module")
def long_mp3(tmp_path_factory) -> Path:
    """Two minutes of a 300 Hz tone at 48 kHz."""
    path = tmp_path_factory.mktemp("long") / "long.mp3"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000:duration=120", "-c:a", "libmp3lame", str(path))
    return path


def test_a_long_file_is_not_decoded_into_memory(long_mp3):
    """Two minutes of 48 kHz audio are 23 MB of float32 samples: they go to a temporary file,
    and the Python heap holds no more than a few pipe reads at a time."""
    tracemalloc.start()
    try:
        source = open_audio(long_mp3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert abs(source.duration - 120) < 0.1
    assert peak < 8e6, f"{peak / 1e6:.1f} MB held while decoding"
    window = source.read(source.num_samples // 2, 4800)
    assert 0.1 < np.abs(window).max() < 0.15  # lavfi's sine: amplitude 1/8


def test_a_damaged_file_decodes_what_it_can_without_blocking(long_mp3, tmp_path, no_hang):
    """3000 damaged spots: ffmpeg skips the broken frames, complaining of each (over 64 kB of
    messages, more than a pipe holds: reading them only at the end would block both sides)."""
    damaged = bytearray(long_mp3.read_bytes())
    rng = np.random.default_rng(1)
    for spot in rng.integers(1000, len(damaged) - 100, 3000):
        damaged[spot:spot + 20] = rng.integers(0, 256, 20, np.uint8).tobytes()
    (tmp_path / "damaged.mp3").write_bytes(damaged)
    complaints = subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-i", str(tmp_path / "damaged.mp3"), "-f", "null",
                                 "-"], capture_output=True, timeout=60).stderr
    assert len(complaints) > 65536
    assert 60 < open_audio(tmp_path / "damaged.mp3").duration <= 120


def test_what_is_not_audio_is_one_line_saying_what_was_tried(made):
    with pytest.raises(InputError) as err:
        open_audio(made["garbage"])
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(made["garbage"]))
    assert "not a WAV file" in message and "ffmpeg" in message and "could not decode" in message
    with pytest.raises(InputError, match="has no audio stream"):
        open_audio(made["silent.mp4"])
    with pytest.raises(InputError, match="no such audio file"):
        open_audio(made["wav"].with_name("missing.flac"))


def test_the_clip_source_takes_any_audio(made):
    source = ClipSource(audio=made["m4a"], start=0.5, duration=0.5)
    source.check_trim()
    audio, _ = source.soundtrack()
    assert audio.num_samples == RATE // 2
    reference = open_wav(made["wav"]).read(RATE // 2, RATE // 2)
    lag, correlation = lag_and_correlation(read_all(audio), reference, 200)
    assert abs(lag) <= 1 and correlation > 0.97
    assert {".mp3", ".m4a", ".flac", ".ogg", ".wav", ".mp4"} <= set(AUDIO_SUFFIXES)


def test_avatar_render_drives_the_face_from_an_mp3_and_keeps_its_sound(made, tmp_path, capsys):
    out = tmp_path / "clip.mp4"
    done = subprocess.run([sys.executable, "-m", "avatar_app.cli", "render", "--demo", "--driver", "signal",
                           "--audio", str(made["mp3"]), "--size", "64x64", "-q", "-o", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{round(SECONDS * 30)} frames at 30 fps" in done.stdout
    soundtrack = read_all(open_audio(out))  # the MP4's AAC track, decoded the same way
    lag, correlation = lag_and_correlation(soundtrack, read_all(open_wav(made["wav"])))
    assert abs(lag) <= 1 and correlation > 0.95, (lag, correlation)

    assert main(["render", "--demo", "--audio", str(made["garbage"]), "-q", "-o", str(tmp_path / "no.mp4")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(made["garbage"]) in err and "ffmpeg" in err
    assert not (tmp_path / "no.mp4").exists()
