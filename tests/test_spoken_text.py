"""`--text`: a sentence spoken by espeak-ng (the real one; skipped where it is not installed)
drives the face, in render, designs and the clip source; without espeak-ng one line says how to
install it."""

import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from avatar_app.cli import main
from avatar_app.clip import ClipSource
from avatar_app.stimuli.design import merged_defaults, read_design
from avatar_app.stimuli.resolve import DesignError, resolve
from common.errors import InputError
from models.audio.sources import open_wav, read_all
from models.audio.spoken_text import SpokenText, speak

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@needs_espeak
def test_the_same_request_gives_the_same_speech_and_the_settings_change_it():
    sentence = "Maybe the people will bring a map."
    first = speak(SpokenText(sentence))
    speak.cache_clear()  # spoken again, by a new espeak-ng process
    assert np.array_equal(speak(SpokenText(sentence)).samples, first.samples)
    slow = speak(SpokenText(sentence, rate=100))
    assert slow.duration > 1.4 * first.duration
    other = speak(SpokenText(sentence, variant="f2"))
    assert len(other.samples) != len(first.samples) or not np.array_equal(other.samples, first.samples)
    assert abs(speak(SpokenText("Guten Tag", language="de")).duration - speak(SpokenText("Guten Tag")).duration) > 0.01


@needs_espeak
def test_unknown_languages_and_voices_are_one_line_each():
    with pytest.raises(InputError, match=r"text voice m33: espeak-ng has no such voice \(did you mean m3\?\)"):
        speak(SpokenText("hello", variant="m33"))
    with pytest.raises(InputError, match="text language xx: espeak-ng has no such language"):
        speak(SpokenText("hello", language="xx"))
    for bad, message in ((dict(text=" "), "the text to speak is empty"), (dict(rate=20), "text rate 20"),
                         (dict(language="en us"), "not a language name")):
        with pytest.raises(InputError, match=message):
            SpokenText(**{"text": "hello", **bad})


def test_without_espeak_ng_the_message_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # where no espeak-ng is
    speak.cache_clear()  # nothing said before
    assert main(["render", "--demo", "--text", "hello again", "-o", str(tmp_path / "x.mp4")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs espeak-ng, which is not installed" in err
    assert "apt-get install espeak-ng" in err and "brew install espeak-ng" in err
    assert main(["render", "--demo", "--text", "hello", "--audio", "a.wav", "-o", str(tmp_path / "x.mp4")]) == 2
    assert "--text and --audio both give the speech" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()


@needs_espeak
def test_the_face_moves_while_espeak_speaks_and_rests_in_its_pause(tmp_path):
    out = tmp_path / "frames"
    assert main(["render", "--demo", "--text", "Hello there. Maybe we meet tomorrow.", "--text-rate", "160",
                 "--blink", "0", "--gaze", "0", "--head-motion", "0", "--size", "96x96", "-q", "-o", str(out)]) == 0
    audio = open_wav(out / "audio.wav")
    frames = np.stack([iio.imread(path).astype(float) for path in sorted(out.glob("frame_*.png"))])
    assert abs(len(frames) - round(audio.duration * 30)) <= 1
    step = audio.sample_rate // 30
    samples = read_all(audio)
    energy = np.array([np.sqrt(np.mean(samples[i * step:(i + 1) * step] ** 2)) for i in range(len(frames))])
    moving = frames.std(axis=0).mean(axis=-1)  # nothing but the speech moves the face here
    rows = np.nonzero(moving > 0.3 * moving.max())[0]
    assert rows.mean() > 0.6 * frames.shape[1]  # the mouth, in the lower face
    at_rest = frames[np.argmin(energy)]
    change = np.abs(frames - at_rest)[:, moving > 0.1 * moving.max()].mean(axis=1)
    speaking, pausing = change[energy > 0.05], change[energy < 0.002]
    assert len(speaking) > 20 and len(pausing) >= 3  # the sentence's full stop is a pause
    assert np.median(speaking) > 10 and np.median(speaking) > 5 * np.median(pausing), (speaking, pausing)


@needs_espeak
def test_a_design_row_speaks_its_text(tmp_path):
    (tmp_path / "design.csv").write_text(
        "# text_language: en-us\n"
        "id,text,text_voice,text_rate,end\n"
        "hello,Hello there,f2,150,0.5\n"
        "plain,Good morning,,,\n")
    one, two = resolve(read_design(tmp_path / "design.csv"), merged_defaults(read_design(tmp_path / "design.csv")),
                       None)
    assert one.clip.text == SpokenText("Hello there", "en-us", "f2", 150) and one.clip.duration == 0.5
    assert two.clip.text == SpokenText("Good morning") and two.parameters()["text"] == "Good morning"
    assert two.parameters()["text_speaker"].startswith("eSpeak NG text-to-speech: ")  # a study records it
    audio, _ = one.clip.soundtrack()
    assert audio.num_samples == round(0.5 * audio.sample_rate)
    (tmp_path / "bad.csv").write_text("id,text,audio,text_voice,text_rate\n"
                                      f"a,Hello,{tmp_path / 'design.csv'},,\nb,,,m3,\nc,Hi,,m33,\nd,Hi,,,9\n")
    with pytest.raises(DesignError) as err:
        resolve(read_design(tmp_path / "bad.csv"), merged_defaults(read_design(tmp_path / "bad.csv")), None)
    problems = "\n".join(err.value.problems)
    assert "row 1 (line 2): text and audio: the text drives the face by itself" in problems
    assert "row 2 (line 3): text_voice: given without a text" in problems
    assert "row 3 (line 4): text: text voice m33: espeak-ng has no such voice (did you mean m3?)" in problems
    assert "row 4 (line 5): text: text rate 9" in problems


def test_a_clip_source_takes_text_or_audio_not_both():
    with pytest.raises(InputError, match="without audio, weights or motion"):
        ClipSource(audio=Path("a.wav"), text=SpokenText("hello"))
    assert ClipSource(text=SpokenText("hello  there")).describe() == 'text "hello there"'
