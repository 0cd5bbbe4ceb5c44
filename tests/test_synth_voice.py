"""The built-in speech synthesizer: exact timing, deterministic audio with the expected acoustic
cues (formants, pitch, closures), and viseme weights that follow the phoneme table."""

import time

import numpy as np
import pytest
from scipy.signal import welch

from common.errors import InputError
from models.audio.synth_voice import (
    PHONEMES,
    SILENCE,
    SPEECH_NAMES,
    VOICES,
    Utterance,
    Voice,
    random_utterance,
    synthesize,
    viseme_weights,
)

SR = 16000


def sustained(symbol: str, seconds: float = 1.0) -> Utterance:
    """One phoneme held for the whole utterance."""
    return Utterance(((symbol, 0.0, seconds),))


def spaced(symbols: str, seconds: float) -> Utterance:
    """The given one-letter phonemes, each `seconds` long, between 0.2 s silences."""
    names = [SILENCE, *symbols, SILENCE]
    lengths = [0.2] + [seconds] * len(symbols) + [0.2]
    ends = np.cumsum(lengths).tolist()
    return Utterance(tuple(zip(names, [0.0, *ends[:-1]], ends)))


def middle(x: np.ndarray, start: float, end: float, sample_rate: int = SR, keep: float = 0.4) -> np.ndarray:
    """The central `keep` fraction of the samples between start and end seconds."""
    margin = (1 - keep) / 2 * (end - start)
    return x[round((start + margin) * sample_rate):round((end - margin) * sample_rate)]


def rms(x: np.ndarray) -> float:
    """Root mean square level."""
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def strongest_frequency(x: np.ndarray, low: float, high: float) -> float:
    """Frequency of the strongest spectral line between low and high Hz."""
    f, p = welch(x, SR, nperseg=4096)
    band = (f >= low) & (f <= high)
    return float(f[band][np.argmax(p[band])])


def autocorrelation_pitch(x: np.ndarray, sample_rate: int = SR) -> float:
    """Pitch in Hz from the highest autocorrelation peak with a lag between 1/400 s and 1/60 s."""
    x = x.astype(np.float64) - x.mean()
    ac = np.correlate(x, x, "full")[len(x) - 1:]
    low, high = sample_rate // 400, sample_rate // 60
    return sample_rate / (low + int(np.argmax(ac[low:high])))


def test_same_seed_gives_identical_samples_and_another_seed_differs():
    u = random_utterance(np.random.default_rng(1), 2.0)
    a = synthesize(u, VOICES[0], SR, seed=5)
    assert np.array_equal(a, synthesize(u, VOICES[0], SR, seed=5))
    assert not np.array_equal(a, synthesize(u, VOICES[0], SR, seed=6))
    assert random_utterance(np.random.default_rng(1), 2.0) == u


@pytest.mark.parametrize("sample_rate", [16000, 22050, 44100])
@pytest.mark.parametrize("seconds", [0.731, 1.0, 2.3337])
def test_length_is_duration_times_rate_and_peak_is_minus_3_dbfs(sample_rate, seconds):
    u = random_utterance(np.random.default_rng(2), seconds)
    x = synthesize(u, VOICES[2], sample_rate)
    assert x.dtype == np.float32 and x.shape == (round(seconds * sample_rate),)
    assert np.abs(x).max() == pytest.approx(10 ** (-3 / 20), abs=1e-4)


def test_an_utterance_of_silence_is_silent():
    x = synthesize(sustained(SILENCE, 0.5), VOICES[0], SR)
    assert x.shape == (SR // 2,) and not x.any()


@pytest.mark.parametrize("scale", [0.9, 1.15])
def test_formant_peaks_sit_at_the_table_values_scaled_by_the_voice(scale):
    voice = Voice("test", 95.0, scale, 0.03)
    tolerance = 0.6 * voice.pitch_hz  # the strongest line is a harmonic next to the formant
    a = middle(synthesize(sustained("a"), voice, SR), 0.0, 1.0, keep=0.5)
    i = middle(synthesize(sustained("i"), voice, SR), 0.0, 1.0, keep=0.5)
    u = middle(synthesize(sustained("u"), voice, SR), 0.0, 1.0, keep=0.5)
    assert strongest_frequency(a, 400, 1000) == pytest.approx(730 * scale, abs=tolerance)
    assert strongest_frequency(i, 1500, 3000) == pytest.approx(2290 * scale, abs=tolerance)
    assert strongest_frequency(u, 600, 1200) == pytest.approx(870 * scale, abs=tolerance)


def test_f2_region_centroid_orders_rounded_open_and_spread_vowels():
    def centroid(symbol: str, low: float, high: float) -> float:
        f, p = welch(synthesize(sustained(symbol), VOICES[1], SR), SR, nperseg=1024)
        band = (f >= low) & (f <= high)
        return float((f[band] * p[band]).sum() / p[band].sum())

    assert centroid("u", 600, 3000) < centroid("a", 600, 3000) < centroid("i", 600, 3000)
    assert centroid("sh", 1000, 7500) < centroid("s", 1000, 7500)


def test_bilabial_closures_are_much_quieter_than_vowels():
    u = Utterance((
        (SILENCE, 0.0, 0.2), ("a", 0.2, 0.35), ("m", 0.35, 0.45), ("a", 0.45, 0.6), ("p", 0.6, 0.7),
        ("a", 0.7, 0.85), ("b", 0.85, 0.95), ("a", 0.95, 1.1), (SILENCE, 1.1, 1.3),
    ))
    x = synthesize(u, VOICES[1], SR)
    level = {(symbol, start): rms(middle(x, start, end)) for symbol, start, end in u.segments}
    vowel = min(value for (symbol, _), value in level.items() if symbol == "a")
    assert level[("m", 0.35)] < 0.25 * vowel  # nasal murmur
    assert level[("b", 0.85)] < 0.1 * vowel  # voice bar
    assert level[("p", 0.6)] < 0.02 * vowel  # silent closure
    assert level[(SILENCE, 0.0)] < 0.01 * vowel


def test_open_vowels_are_louder_than_close_ones():
    x = synthesize(spaced("aiu", 0.2), VOICES[2], SR)
    a, i, u = (rms(middle(x, 0.2 + 0.2 * k, 0.4 + 0.2 * k)) for k in range(3))
    assert a > 1.3 * i and a > 1.3 * u


def test_each_voice_speaks_at_its_pitch():
    measured = []
    for voice in VOICES:
        x = middle(synthesize(sustained("a"), voice, SR), 0.0, 1.0, keep=0.25)
        measured.append(autocorrelation_pitch(x))
        assert measured[-1] == pytest.approx(voice.pitch_hz, rel=0.1), voice.name
    assert len(VOICES) >= 4 and np.all(np.diff(sorted(measured)) > 10)
    assert {v.formant_scale for v in VOICES} >= {0.9, 1.15}


def test_pitch_declines_over_the_utterance():
    x = synthesize(sustained("a", 2.0), VOICES[1], SR)
    assert autocorrelation_pitch(x[: SR // 4]) > 1.1 * autocorrelation_pitch(x[-SR // 4:])


def test_ten_seconds_synthesize_in_under_half_a_second():
    u = random_utterance(np.random.default_rng(0), 10.0)
    synthesize(u, VOICES[0], SR)
    start = time.perf_counter()
    synthesize(u, VOICES[3], SR)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("rate", [0.7, 1.0, 1.8])
def test_random_utterance_is_contiguous_exact_and_well_formed(rate):
    rng = np.random.default_rng(7)
    for seconds in (0.05, 1.3, 4.0, 9.99):
        u = random_utterance(rng, seconds, rate)
        assert u.duration == seconds
        assert u.segments[0][1] == 0.0
        assert all(a[2] == b[1] for a, b in zip(u.segments, u.segments[1:]))
        assert u.segments[0][0] == SILENCE and u.segments[-1][0] == SILENCE
        symbols = [s for s, _, _ in u.segments]
        assert all((a, b) != (SILENCE, SILENCE) for a, b in zip(symbols, symbols[1:]))
        for symbol, start, end in u.segments[1:-1]:
            low, high = PHONEMES[symbol].duration
            assert low / rate - 1e-9 <= end - start <= high / rate + 1e-9, symbol


def test_faster_speech_packs_more_phonemes_into_the_same_time():
    count = {r: len(random_utterance(np.random.default_rng(3), 20.0, r).segments) for r in (1.0, 2.0)}
    assert 1.6 * count[1.0] < count[2.0] < 2.4 * count[1.0]


def test_phoneme_table_covers_the_inventory():
    assert len(PHONEMES) >= 15
    inventory = {"a", "i", "e", "o", "u", "p", "b", "m", "t", "d", "k", "s", "f", "sh", "w", SILENCE}
    assert inventory <= set(PHONEMES)
    for phoneme in PHONEMES.values():
        assert len(phoneme.viseme) == len(SPEECH_NAMES) and all(0 <= v <= 1 for v in phoneme.viseme)


def test_viseme_weights_follow_the_segment_targets():
    u = random_utterance(np.random.default_rng(11), 6.0)
    fps = 100.0
    extra = 20
    frames = round(u.duration * fps) + extra
    w = viseme_weights(u, fps, frames)
    assert w.shape == (frames, 4) and w.dtype == np.float32
    assert w.min() >= 0 and w.max() <= 1
    assert not w[-extra:].any()
    column = {name: k for k, name in enumerate(SPEECH_NAMES)}
    checked = set()
    for symbol, start, end in u.segments:
        mid = w[round((start + end) / 2 * fps)]
        if symbol == "a":
            assert mid[column["jaw_open"]] > 0.75
        elif symbol in ("m", "p", "b"):
            assert mid[column["lips_closed"]] > 0.85
        elif symbol == SILENCE and end - start >= 0.15:
            assert mid.max() < 0.02
        else:
            continue
        checked.add(symbol)
    assert {"a", SILENCE} <= checked and checked & {"m", "p", "b"}


def test_viseme_plateaus_and_boundaries_have_known_values():
    u = spaced("ai", 0.3)  # sil 0–0.2, a 0.2–0.5, i 0.5–0.8, sil 0.8–1.0
    t = np.array([0.35, 0.5, 0.65, 0.9])
    w = viseme_weights(u, 100.0, 101)[np.round(t * 100).astype(int)]
    expected = np.array([PHONEMES["a"].viseme, np.add(PHONEMES["a"].viseme, PHONEMES["i"].viseme) / 2,
                         PHONEMES["i"].viseme, PHONEMES[SILENCE].viseme])
    np.testing.assert_allclose(w, expected, atol=1e-5)


@pytest.mark.parametrize("segments", [
    (),
    (("a", 0.1, 0.5),),
    (("a", 0.0, 0.5), ("i", 0.6, 0.9)),
    (("a", 0.0, 0.5), ("zz", 0.5, 0.9)),
    (("a", 0.0, 0.0),),
])
def test_malformed_utterances_are_refused(segments):
    with pytest.raises(InputError):
        Utterance(segments)


def test_bad_arguments_are_refused():
    u = sustained("a")
    with pytest.raises(InputError):
        synthesize(u, VOICES[0], 0)
    with pytest.raises(InputError):
        viseme_weights(u, 0.0, 10)
    with pytest.raises(InputError):
        random_utterance(np.random.default_rng(0), 1.0, rate=0.0)
    with pytest.raises(InputError):
        Voice("bad", -100.0, 1.0)
