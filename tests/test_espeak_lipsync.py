"""The espeak-ng corpus (phoneme events from libespeak-ng, planted visemes at their timings) and
the held-out lip-sync metrics (jaw–envelope correlation, bilabial closures)."""
from __future__ import annotations

import numpy as np
import pytest

from avatar_app import cli
from avatar_app.learn_commands import heldout_corpus
from models.audio.sources import Audio
from models.audio.synth_voice import SPEECH_NAMES, viseme_curves
from models.learning.espeak_corpus import (
    EspeakSpec,
    Request,
    available,
    espeak_clips,
    is_bilabial,
    phoneme_segments,
    speak,
    viseme_of,
)
from models.learning.evaluation import lipsync_metrics, speech_envelope
from models.learning.metrics import closure_rate, envelope_correlation

needs_espeak = pytest.mark.skipif(not available(), reason="libespeak-ng is not installed")
JAW, CLOSED = SPEECH_NAMES.index("jaw_open"), SPEECH_NAMES.index("lips_closed")


@needs_espeak
def test_phoneme_events_of_a_short_sentence():
    said = speak(Request("a big map", "en-us"))
    times = [ms for ms, _ in said.events]
    length_ms = 1000 * len(said.samples) / said.sample_rate
    assert times == sorted(times) and 0 <= times[0] and times[-1] <= length_ms
    names = [name for _, name in said.events]
    assert {"b", "m", "p"} <= set(names)
    # the timings are the audio's: the lips are shut (quiet) in /p/'s closure, open in /æ/
    segments = phoneme_segments(said.events, length_ms / 1000)
    samples = said.samples.astype(np.float64)

    def rms(start: float, end: float) -> float:
        piece = samples[int(start * said.sample_rate):int(end * said.sample_rate)]
        return float(np.sqrt(np.mean(piece**2)))

    p = next(s for s in segments if s[0] == "p")
    vowel = next(s for s in segments if s[0] == "æ")
    assert rms(p[1], p[1] + 0.6 * (p[2] - p[1])) < 0.2 * rms(*vowel[1:])


@needs_espeak
def test_the_same_request_says_the_same_thing():
    first, second = (speak(Request("Papa bringt Milch und Brot", "de+f3", 150, 60, 40)) for _ in range(2))
    assert np.array_equal(first.samples, second.samples) and first.events == second.events


def test_ipa_names_map_to_visemes():
    for name in ("p", "b", "m", "mʲ", "pʰ"):
        assert is_bilabial(name) and viseme_of(name)[CLOSED] == 1.0
    for name in ("a", "aɪ", "oʊ", "iː", "ɔ̃", "tʃ", "ʃ", "f", ""):
        assert not is_bilabial(name) and viseme_of(name)[CLOSED] < 1.0
    assert viseme_of("tʃ") == viseme_of("ʃ")  # an affricate looks like its fricative
    assert viseme_of("")[JAW] == 0.0  # a pause


def test_phoneme_segments_are_contiguous_and_merge_modifiers():
    events = [(0, ""), (30, "b"), (50, "ʲ"), (90, "a"), (200, "m"), (260, "")]
    segments = phoneme_segments(events, 0.3)
    assert segments == [("", 0.0, 0.03), ("b", 0.03, 0.09), ("a", 0.09, 0.2), ("m", 0.2, 0.26), ("", 0.26, 0.3)]


@needs_espeak
def test_planted_targets_close_the_lips_at_bilabials():
    clips = espeak_clips(EspeakSpec(clips=5, seed=2), seconds=3.0, fps=30.0)
    bilabials = 0
    for clip in clips:
        assert clip.phonemes[0][1] == 0.0 and clip.phonemes[-1][2] == pytest.approx(3.0)
        assert all(a[2] == pytest.approx(b[1]) for a, b in zip(clip.phonemes, clip.phonemes[1:]))
        fine = viseme_curves([(viseme_of(n), s, e) for n, s, e in clip.phonemes], 1000.0, 3000)
        for name, start, end in clip.phonemes:
            middle = fine[int(1000 * (start + end) / 2)]
            if is_bilabial(name):
                bilabials += 1
                assert middle[CLOSED] >= 0.6 and middle[JAW] <= 0.3, (clip.name, name, start, middle)
            elif name and end - start > 0.05:  # labiodentals /f v/ half close (0.5), nothing else more
                assert middle[CLOSED] <= 0.5 + 1e-3, (clip.name, name, start, middle)
        # at 30 fps the planted weights close the lips within a frame of every bilabial
        closed = (clip.visemes[:, CLOSED] >= 0.5) & (clip.visemes[:, CLOSED] > clip.visemes[:, JAW])
        spans = [(s, e) for n, s, e in clip.phonemes if is_bilabial(n)]
        if spans:
            assert closure_rate(closed, spans, 30.0) == 1.0
    assert bilabials >= 10


@needs_espeak
def test_corpus_is_deterministic_for_a_seed():
    a, b = (espeak_clips(EspeakSpec(clips=4, seed=3), 3.0, 30.0) for _ in range(2))
    c = espeak_clips(EspeakSpec(clips=4, seed=4), 3.0, 30.0)
    assert all(np.array_equal(x.audio.samples, y.audio.samples) and x.phonemes == y.phonemes
               and np.array_equal(x.visemes, y.visemes) for x, y in zip(a, b))
    assert [x.name for x in a] == [y.name for y in b]
    assert any(x.phonemes != z.phonemes for x, z in zip(a, c))
    languages = {x.name.split("-")[1] for x in espeak_clips(EspeakSpec(clips=5, seed=3), 3.0, 30.0)}
    assert len(languages) == 5


def test_envelope_correlation_of_hand_made_curves():
    rng = np.random.default_rng(0)
    envelope = rng.random(90)
    assert envelope_correlation(envelope, envelope) == pytest.approx(1.0)
    assert envelope_correlation(0.2 + 3 * envelope, envelope) == pytest.approx(1.0)
    assert envelope_correlation(-envelope, envelope) == pytest.approx(-1.0)
    assert envelope_correlation(np.zeros(90), envelope) == 0.0  # a mouth that never moves


def test_speech_envelope_is_the_rms_of_each_frame():
    rate, fps = 16000, 25.0
    t = np.arange(rate) / rate
    loud = (t >= 0.5).astype(np.float64)  # silence, then a 0.5-amplitude tone
    audio = Audio((0.5 * loud * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
    envelope = speech_envelope(audio, fps, 25)
    assert envelope[:11] == pytest.approx(0.0, abs=1e-6)
    assert envelope[14:24] == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_closure_rate_of_hand_made_lips():
    fps = 30.0
    closures = [(0.5, 0.56), (1.2, 1.25), (2.0, 2.08)]
    closed = np.zeros(90, bool)
    for start, end in closures:
        closed[int(round((start + end) / 2 * fps))] = True
    assert closure_rate(closed, closures, fps) == 1.0
    assert closure_rate(np.zeros(90, bool), closures, fps) == 0.0
    one_early, two_early = np.zeros(90, bool), np.zeros(90, bool)
    one_early[14], two_early[13] = True, True  # /p/ 0.5–0.56 s covers frames 15–16 (0.5 s, 0.533 s)
    assert closure_rate(one_early, closures[:1], fps) == 1.0
    assert closure_rate(two_early, closures[:1], fps) == 0.0


@needs_espeak
def test_heldout_metrics_of_the_truth_and_of_a_still_mouth():
    corpus = heldout_corpus(2)
    assert all(name.split("-")[1] in ("fr", "nl", "pt") for name in corpus.phonemes)
    truth = lipsync_metrics(corpus.planted, corpus.planted, lambda s: corpus.truth[s.name], corpus.speech,
                            corpus.phonemes)
    assert truth["lve_mm2"] == pytest.approx(0.0, abs=1e-6) and truth["bilabial_closed_pct"] >= 90
    assert truth["jaw_f2_envelope_r_median"] > 0.3
    planted = corpus.planted
    still = lipsync_metrics(planted, planted, lambda s: (np.zeros_like(corpus.truth[s.name][0]),
                                                        np.zeros_like(corpus.truth[s.name][1])),
                            corpus.speech, corpus.phonemes)
    assert still["lve_mm2"] > 1.0 and still["bilabial_closed_pct"] == 0.0
    assert still["jaw_envelope_r_median"] == pytest.approx(0.0, abs=1e-6)


def test_espeak_clips_need_the_synthetic_corpus(tmp_path, capsys):
    assert cli.main(["train-speech", "--espeak", "4", "--blendshapes", str(tmp_path / "x.npz"),
                     "-o", str(tmp_path / "gen")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--synthetic" in err and "\n" not in err
