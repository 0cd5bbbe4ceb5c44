"""The loudness meter against BS.1770's published filter and analytic signal levels."""
import math

import numpy as np
import pytest

from common.errors import InputError
from models.audio.loudness import (
    LoudnessTarget,
    integrated_loudness,
    k_weighting,
    normalise,
    rms_level,
)
from models.audio.sources import Audio, read_all


def sine(amplitude, seconds=3.0, rate=48000, frequency=997.0):
    t = np.arange(int(seconds * rate)) / rate
    return Audio((amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32), rate)


def test_k_weighting_at_48k_is_the_standards_table():
    (b1, a1), (b2, a2) = k_weighting(48000)  # ITU-R BS.1770-4, tables 1 and 2
    np.testing.assert_allclose(b1, [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-9)
    np.testing.assert_allclose(a1, [1.0, -1.69065929318241, 0.73248077421585], atol=1e-9)
    np.testing.assert_allclose(b2, [1.0, -2.0, 1.0])
    np.testing.assert_allclose(a2, [1.0, -1.99004745483398, 0.99007225036621], atol=1e-9)


@pytest.mark.parametrize("rate", [48000, 44100, 16000])
@pytest.mark.parametrize("amplitude", [1.0, 0.1])
def test_a_sine_near_1khz_reads_its_mean_square_level(rate, amplitude):
    # near 1 kHz the K-weighting gain is about +0.69 dB, which the −0.691 offset cancels
    expected = 20 * math.log10(amplitude) - 3.0103
    assert integrated_loudness(sine(amplitude, rate=rate)) == pytest.approx(expected, abs=0.05)


def test_gates_ignore_silence_and_much_quieter_parts():
    loud = sine(0.5).samples
    silence = np.zeros(48000 * 5, np.float32)
    reference = integrated_loudness(Audio(loud, 48000))
    padded = integrated_loudness(Audio(np.concatenate([silence, loud, silence]), 48000))
    # the all-silent blocks are gated out; the 3 + 3 blocks straddling an edge hold 1/4, 1/2, 3/4
    # of the tone next to its 27 whole blocks
    assert padded == pytest.approx(reference + 10 * math.log10((27 + 3) / (27 + 6)), abs=0.01)
    short = integrated_loudness(Audio(np.concatenate([silence[:48000], loud, silence[:48000]]), 48000))
    assert short == pytest.approx(padded, abs=1e-9)
    q = 10 ** (-25 / 10)  # 25 dB down: its own blocks fall under the relative gate (−10 LU) ...
    quiet = sine(0.5 * math.sqrt(q)).samples
    # ... only the 3 blocks across the step count, with 3/4, 1/2, 1/4 of the loud tone
    expected = reference + 10 * math.log10((27 + 1.5 + 1.5 * q) / 30)
    assert integrated_loudness(Audio(np.concatenate([loud, quiet]), 48000)) == pytest.approx(expected, abs=0.01)
    near = sine(0.5 * 10 ** (-6 / 20)).samples  # 6 dB down: kept, so the level falls between the two
    assert reference - 6 < integrated_loudness(Audio(np.concatenate([loud, near]), 48000)) < reference - 1
    assert integrated_loudness(Audio(silence, 48000)) == -math.inf


def test_rms_level_of_a_square_and_a_sine():
    square = Audio(np.where(np.arange(16000) % 40 < 20, 0.5, -0.5).astype(np.float32), 16000)
    assert rms_level(square) == pytest.approx(20 * math.log10(0.5), abs=1e-6)
    assert rms_level(sine(1.0, rate=16000)) == pytest.approx(-3.0103, abs=0.01)


@pytest.mark.parametrize("text, level, unit", [("-23LUFS", -23, "LUFS"), ("-23 lufs", -23, "LUFS"),
                                              ("-20dBFS", -20, "dBFS"), ("-16", -16, "LUFS")])
def test_targets_parse(text, level, unit):
    assert LoudnessTarget.parse(text) == LoudnessTarget(level, unit)


@pytest.mark.parametrize("text", ["loud", "-23 LKFS?", "5LUFS", "-80dBFS"])
def test_bad_targets_are_refused(text):
    with pytest.raises(InputError, match="loudness target"):
        LoudnessTarget.parse(text)


@pytest.mark.parametrize("scale", [0.01, 0.3, 0.9])
def test_normalise_reaches_the_target_and_reports_clipping(scale):
    rng = np.random.default_rng(0)
    noise = Audio((scale * np.clip(rng.normal(0, 0.25, 32000), -1, 1)).astype(np.float32), 16000)
    for target in (LoudnessTarget(-23, "LUFS"), LoudnessTarget(-20, "dBFS")):
        out, report = normalise(noise, target)
        assert target.measure(out) == pytest.approx(target.level, abs=0.01)
        assert report.level_out == pytest.approx(target.level, abs=0.01) and report.clipped_samples == 0
        assert report.gain_db == pytest.approx(target.level - report.level_in)
    out, report = normalise(noise, LoudnessTarget(-2, "dBFS"))  # a peak-heavy signal cannot get there
    assert report.clipped_samples == int(np.count_nonzero(np.abs(noise.samples) * 10 ** (report.gain_db / 20) > 1))
    assert report.clipped_samples > 0 and np.abs(read_all(out)).max() <= 1.0
    assert report.level_out < -2 + 1e-6


def test_silence_is_left_alone():
    silence = Audio(np.zeros(1600, np.float32), 16000)
    out, report = normalise(silence, LoudnessTarget(-23, "LUFS"))
    assert report.gain_db == 0 and not read_all(out).any()
