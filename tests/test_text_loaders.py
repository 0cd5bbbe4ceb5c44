"""Hostile emotion presets (JSON) and stimulus designs (CSV, YAML): each is refused with one line
naming the file (a design's problems: one line each, naming the row), quickly, without blocking on
a pipe and without building what a few lines of YAML aliases stand for. Ends with a seeded fuzz."""
import json
import math
import os
import random
import re
import time
import tracemalloc
import wave

import pytest
import yaml

from avatar_app.cli import main
from avatar_app.preset import FORMAT, load_preset
from avatar_app.stimuli.design import merged_defaults, read_design
from avatar_app.stimuli.resolve import DesignError, resolve
from common.errors import InputError
from common.limits import (
    MAX_DESIGN_ROWS,
    MAX_DURATION_S,
    MAX_KEYFRAMES,
    MAX_NESTING,
    MAX_YAML_NODES,
)

PRESET = {"format": FORMAT, "version": 1, "emotions": {"happy": 0.5}, "speech_gain": 1.0, "expression_gain": 1.0,
          "keyframes": [{"time": 0.0, "emotions": {}}, {"time": 0.5, "emotions": {"sad": 1.0}}]}
DESIGN = """\
# size: 32x32
## a valid design the fuzz mutates
id,audio,emotion,intensity,view,size,fps,background,start,end,lead_in,lead_out,speech_gain,expression_gain,seed
a,voice.wav,happy,0.5,front,32x32,10,white,0,0.5,0,0,1,1,0
b,,sad=0.5;angry=0.2,,30/5,,,black,,0.4,0.1,,,,1
c,voice.wav,,,three-quarter left,48x32,25,#336699,0.1,,,0.2,0.5,2,7
"""
HOSTILE = ["1e999", "-1e999", "nan", "inf", "-inf", "-0", "1_000", "0x10", "9" * 5000, "../x", ".hidden", "a/b",
           "/etc/passwd", "0x0", "99999x99999", "16x16", "nan/nan", "0/nan/1", "1/2/3/4", "happy=nan", "happy=2",
           "=0.5", "happy;happy", "#-1-1-1", "nan,0,0", "/dev/zero", "pipe.wav", "folder", ".", "", " ", "\t",
           "x" * 300, "demo", "signal", "😀", "é\u0301", "\u2028", "\x1c", "a\x00b", "'", '"', ",", "#", "&a", "*a",
           "!!binary AA==", "[1, [2]]", "{a: {b: 1}}", "- x", "? x", "~", "yes", "2020-13-45", "0b2", "1:2:3"]


BENIGN = ["", "0", "0.25", "1", "happy", "sad=0.3", "front", "profile left", "20/-5/1.2", "64x64", "black", "0.1",
          "voice.wav", "2", "learned"]


pytestmark = pytest.mark.usefixtures("no_hang")  # a blocking loader fails its test, not the run


@pytest.fixture
def folder(tmp_path):
    """A folder with a 1 s WAV (written by the standard library), a pipe and a subfolder."""
    with wave.open(str(tmp_path / "voice.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(bytes(2 * 16000))
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "folder").mkdir()
    return tmp_path


def assert_reported(err: BaseException, *fragments: str) -> None:
    """A plain InputError is one printable line; a DesignError is its count line, then one
    printable line per problem."""
    text = str(err)
    if type(err) is DesignError:
        first, *lines = text.split("\n")
        assert re.fullmatch(r"the design has \d+ problems?:", first), text
        assert lines and all(line.startswith("  ") and line.isprintable() for line in lines), text
    else:
        assert type(err) is InputError, repr(err)
        assert text.isprintable(), text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


def refusal(function, *args) -> BaseException:
    with pytest.raises(InputError) as caught:
        function(*args)
    return caught.value


def check_design(path):
    design = read_design(path)
    return resolve(design, merged_defaults(design), None)


# ---- presets ---------------------------------------------------------------------------------

def preset_text(**changes) -> str:
    return json.dumps({**PRESET, **changes})


@pytest.mark.parametrize("text, problem", [
    ('{"a": ' * 5000 + "1" + "}" * 5000, f"nested more than {MAX_NESTING} deep"),
    (preset_text()[:-1] + ', "emotions": {"happy": ' + "[" * MAX_NESTING + "]" * MAX_NESTING + "}}",
     f"nested more than {MAX_NESTING} deep"),
    (preset_text()[:-1] + ', "speech_gain": 1' + "0" * 400 + "}", "speech_gain is inf"),
    (preset_text()[:-1] + ', "expression_gain": -1' + "0" * 5000 + "}", "expression_gain is -inf"),
    (preset_text()[:-1] + ', "speech_gain": NaN}', "speech_gain is nan"),
    (preset_text(version=True), "preset version True"),
    (preset_text(version="1"), "preset version '1'"),
    (preset_text(emotions={"a\nb": 0.5}), r"emotions: 'a\nb' is not an emotion name"),
    (preset_text(emotions={"": 0.5}), "is not an emotion name"),
    (preset_text(emotions={"happy": "x" * 10000}), "emotions 'happy' is 'xxx"),
    (preset_text(keyframes=[{"time": 0.0}] * (MAX_KEYFRAMES + 1)), f"{MAX_KEYFRAMES + 1} keyframes; at most"),
    (preset_text(keyframes=[{"time": MAX_DURATION_S * 2}]), "keyframe 0 time is 172800"),
    (preset_text(keyframes=[{"time": 1.0}, {"time": 1.0}]), "two keyframes at 1 s"),
    (preset_text(keyframes={"time": 1.0}), "keyframes must be a list"),
    ("[1, 2]", "not an emotion preset"),
    ('{"format": "', "not valid JSON"),
])
def test_hostile_presets_get_one_line(tmp_path, text, problem):
    path = tmp_path / "preset.json"
    path.write_text(text)
    started = time.perf_counter()
    err = refusal(load_preset, path)
    assert time.perf_counter() - started < 2
    assert_reported(err, f"{path}: ", problem)
    assert str(err).startswith(f"{path}: ")


def test_presets_that_are_not_regular_files(folder):
    for path, problem in [(folder / "pipe.wav", "not a regular file"), (folder / "folder", "is a folder"),
                          ("/dev/zero", "not a regular file"), (folder / "none.json", "no such preset")]:
        assert_reported(refusal(load_preset, path), f"{path}: {problem}")


def test_hand_written_preset_keys_are_sorted_and_big_numbers_stay_in_range(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(preset_text(keyframes=[{"time": 2, "emotions": {"sad": 1}}, {"time": 1e-3, "emotions": {}}],
                                speech_gain=10))
    performance = load_preset(path)
    assert [k.time for k in performance.keyframes.keys] == [1e-3, 2.0] and performance.speech_gain == 10.0


@pytest.mark.parametrize("content", ["pipe", "huge int"])
def test_render_with_a_hostile_preset(folder, capsys, content):
    path = folder / "pipe.wav" if content == "pipe" else folder / "p.json"
    if content == "huge int":
        path.write_text(preset_text()[:-1] + ', "speech_gain": 1' + "0" * 400 + "}")
    code = main(["render", "--demo", "--preset", str(path), "--duration", "0.1", "--size", "32x32", "-q",
                 "-o", str(folder / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"avatar: error: {path}: ") and err.count("\n") == 1, err


# ---- designs: reading ------------------------------------------------------------------------

def alias_bomb(levels: int = 9) -> str:
    """The "billion laughs": each row's anchor holds ten aliases of the row before (10**9 strings)."""
    rows = ["  - {id: r0, emotion: &l0 [" + ", ".join(["lol"] * 10) + "]}"]
    rows += [f"  - {{id: r{i}, emotion: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]}" for i in range(1, levels + 1)]
    return "stimuli:\n" + "\n".join(rows) + "\n"


def peak_bytes(function, *args) -> tuple[float, int]:
    """Seconds and peak bytes allocated (tracemalloc) while `function` runs."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        function(*args)
    except InputError:
        pass
    finally:
        seconds, peak = time.perf_counter() - started, tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return seconds, peak


@pytest.mark.parametrize("text, problem", [
    (alias_bomb(), f"line 7: more than {MAX_YAML_NODES} values once its aliases are expanded"),
    ("- &a [*a]\n", "line 1: alias *a refers to no complete anchor before it"),
    ("- id: &a {x: *a}\n", "line 1: alias *a refers to no complete anchor before it"),
])
def test_yaml_aliases_are_measured_before_anything_is_built(tmp_path, text, problem):
    path, small = tmp_path / "bomb.yaml", tmp_path / "small.yaml"
    path.write_text(text)
    small.write_text("- {id: a}\n")
    seconds, peak = peak_bytes(read_design, path)
    assert seconds < 0.2 and peak < peak_bytes(read_design, small)[1] + 1e6, (seconds, peak)
    assert_reported(refusal(read_design, path), f"{path}: {problem}")


@pytest.mark.parametrize("text", ["[" * 5000 + "]" * 5000, "".join("  " * i + "-\n" for i in range(2000)),
                                  "".join("  " * i + f"k{i}:\n" for i in range(2000)), "[" * 70 + "]" * 70])
def test_deep_yaml_is_refused(tmp_path, text):
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    err = refusal(read_design, path)
    assert_reported(err, f"{path}: ")
    assert f"nested more than {MAX_NESTING} deep" in str(err) or "not valid YAML" in str(err)


def test_yaml_that_is_not_rows_of_text(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text("- id: !!binary aGVsbG8=\n  fps: !local 3\n  size: {width: 32}\n  view: [1, [2]]\n"
                    "- [a, b]\n"
                    "- {? [x]: y}\n"
                    "- <<: 3\n  id: d\n")
    err = refusal(check_design, path)
    assert_reported(err, "row 1 (line 1): id: a value tagged tag:yaml.org,2002:binary",
                    "row 1 (line 1): fps: a value tagged !local", "row 1 (line 1): size: a mapping where a value",
                    "row 1 (line 1): view: a list where a value", "row 2 (line 5): a row must be a mapping",
                    "row 3 (line 6): a list where a value is expected", "row 4 (line 7): `<<` merges a mapping")
    for text, problem in [
            ("- id: [\n", "not valid YAML (while parsing a flow node, did not find expected node content (line 2, "),
            ("just text", "a design is a list of rows"), ("stimuli: {a: 1}", "a design is a list"),
            ("- a\n---\n- b\n", "not valid YAML (expected a single document in the stream, but found another")]:
        path.write_text(text)
        assert_reported(refusal(read_design, path), f"{path}: {problem}")


def test_yaml_values_are_read_as_written_and_merges_work(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text("defaults: {size: 32x32}\nstimuli:\n  - &base {id: 2020-01-01, end: 0.50, fps: 1_0}\n"
                    "  - <<: *base\n    id: b\n    emotion: {happy: 0.5}\n    view: {yaw: 10, pitch: -5}\n")
    one, two = check_design(path)
    assert (one.id, one.fps, one.clip.duration) == ("2020-01-01", 10.0, 0.5)
    assert (two.id, two.fps, two.emotions, two.view.yaw, two.view.pitch) == ("b", 10.0, {"happy": 0.5}, 10.0, -5.0)


def test_bad_csv_is_one_line_with_its_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("id,emotion\na,happy\nb," + "x" * 200_000 + "\n")
    assert_reported(refusal(read_design, path), f"{path}: line 3: not valid CSV (field larger than field limit")
    path.write_bytes(b"id\n\xff\n")
    assert_reported(refusal(read_design, path), f"{path}: not utf-8 text")
    path.write_text("id,emotion\n" + "".join(f"r{i},\n" for i in range(MAX_DESIGN_ROWS + 1)))
    assert_reported(refusal(read_design, path), f"{path}: more than {MAX_DESIGN_ROWS} rows")


@pytest.mark.parametrize("name, problem", [("pipe.yaml", "not a regular file"), ("pipe.csv", "not a regular file"),
                                           ("dir.csv", "is a folder"), ("none.yaml", "no such design")])
def test_designs_that_are_not_regular_files(tmp_path, capsys, name, problem):
    path = tmp_path / name
    if name.startswith("pipe"):
        os.mkfifo(path)
    elif name.startswith("dir"):
        path.mkdir()
    assert main(["stimuli", str(path), "-o", str(tmp_path / "out"), "--check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"avatar: error: {path}: {problem}") and err.count("\n") == 1, err


# ---- designs: values and file references -----------------------------------------------------

def test_file_references_are_checked_for_what_they_are(folder, capsys):
    design = folder / "d.csv"
    design.write_text("id,audio,weights,generator,avatar,motion,flame,blendshapes\n"
                      "a,pipe.wav,/dev/zero,voice.wav,pipe.wav,pipe.wav,,\n"
                      "b,folder,,folder,folder,,pipe.wav,/dev/zero\n"
                      "c,voice.wav,,none,none.ply,,,\n")
    assert main(["stimuli", str(design), "-o", str(folder / "out"), "--check"]) == 2
    err = capsys.readouterr().err
    for line in ["row 1 (line 2): audio: pipe.wav: not a regular file (a pipe or a device cannot be a file)",
                 "row 1 (line 2): weights: /dev/zero: not a regular file",
                 "row 1 (line 2): generator: voice.wav: not a folder",
                 "row 1 (line 2): avatar: pipe.wav: not a regular file",
                 "row 1 (line 2): motion: pipe.wav: not a regular file",
                 "row 2 (line 3): audio: folder: is a folder, not a file",
                 "row 2 (line 3): flame: pipe.wav: not a regular file",
                 "row 2 (line 3): blendshapes: /dev/zero: not a regular file",
                 "row 3 (line 4): generator: none: no such folder",
                 "row 3 (line 4): avatar: none.ply: no such file or folder"]:
        assert f"\n  {line}" in err, line
    assert err.startswith("avatar: error: the design has ") and not (folder / "out").exists()


def test_hostile_values_are_design_problems(folder, capsys):
    design = folder / "d.csv"
    design.write_text("id,end,start,fps,size,view,emotion,seed,lead_in,speech_gain,background\n"
                      "../x,1e999,nan,inf,0x0,nan/0,happy=nan,1e3,-0.1,1_0.5,#zzzzzz\n"
                      ".hidden,0.5,-0,1_0,99999x99999,0/0/nan,😀,9999999999,1,0,white\n"
                      f"{'x' * 201},{MAX_DURATION_S + 1},,,17x16,1/2/3/4,=1,-1,,,\n"
                      "\"a\nb\",0.5,\"a\x00b\",,,,\"happy\x1c\",,,,\n")
    assert main(["stimuli", str(design), "-o", str(folder / "out"), "--check"]) == 2
    err = capsys.readouterr().err
    for line in ["row 1 (line 2): id: '../x': use up to 200 letters", "row 1 (line 2): end: 1e999 is outside",
                 "row 1 (line 2): start: nan is outside", "row 1 (line 2): fps: inf is outside",
                 "row 1 (line 2): size: 0x0: width and height must be 16..8192",
                 "row 1 (line 2): view: nan is outside", "row 1 (line 2): emotion: emotion 'happy=nan'",
                 "row 1 (line 2): seed: '1e3' is not a whole number", "row 1 (line 2): lead_in: -0.1 is outside",
                 "row 1 (line 2): speech_gain: 1_0.5 is outside 0..10",
                 "row 1 (line 2): background: #zzzzzz: use a name",
                 "row 2 (line 3): id: '.hidden'", "row 2 (line 3): size: 99999x99999",
                 "row 2 (line 3): view: nan is outside", "row 2 (line 3): emotion: unknown emotion '😀'",
                 "row 2 (line 3): seed: 9999999999 is outside", f"row 3 (line 4): id: '{'x' * 100}",
                 f"row 3 (line 4): end: {MAX_DURATION_S + 1} is outside 0..86400",
                 "row 3 (line 4): size: size 17x16: MP4 (yuv420p) needs an even width and height",
                 "row 3 (line 4): view: '1/2/3/4' is neither a view", "row 3 (line 4): emotion: emotion '=1'",
                 "row 3 (line 4): seed: -1 is outside", "row 4 (line 6): id: 'a\\nb'",
                 "row 4 (line 6): start: 'a\\x00b' is not a number"]:
        assert f"\n  {line}" in err, line
    assert all(line.isprintable() for line in err.splitlines())


def test_negative_zero_and_underscores_are_plain_numbers(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("id,start,end,fps,intensity,emotion\na,-0,0.5,1_0,-0,happy\n")
    (stimulus,) = check_design(path)
    assert math.copysign(1, stimulus.clip.start) == 1 and stimulus.fps == 10


def test_command_line_values_go_through_the_same_checks(folder, capsys):
    design = folder / "d.csv"
    design.write_text("id,end\na,0.5\n")
    out = str(folder / "out")
    assert main(["stimuli", str(design), "-o", out, "--check", "--set", "audio=" + str(folder / "pipe.wav")]) == 2
    assert "row 1 (line 2): audio: " + str(folder / "pipe.wav") + ": not a regular file" in capsys.readouterr().err
    assert main(["stimuli", "-o", out, "--check", "--factorial", "id=a,b", "fps=0,nan"]) == 2
    err = capsys.readouterr().err
    assert "row 1: fps: 0 is outside 1..240" in err and "row 4: fps: nan is outside" in err
    for args, problem in [(["--set", "emotion=happy\nsad"], "--set 'emotion=happy\\nsad': line breaks"),
                          (["--set", "x" * 10000], "--set 'xxx"),
                          (["--factorial", *(f"{c}=" + ",".join("0123456789") for c in ("fps", "seed", "size", "start",
                                                                                         "end", "intensity"))],
                           f"--factorial: more than {MAX_DESIGN_ROWS} rows")]:
        assert main(["stimuli", str(design), "-o", out, "--check", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"avatar: error: {problem}") and err.count("\n") == 1 and len(err) < 1000, err


def test_many_problems_are_counted_not_all_listed(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("id,end\n" + "../x,1\n" * 1000)
    err = refusal(check_design, path)
    assert str(err).startswith("the design has 1001 problems:") and str(err).endswith("… and 801 more")


def random_text(rng: random.Random, length: int) -> str:
    """Characters CSV and YAML care about, and any other code point (surrogates cannot be UTF-8)."""
    special = ",;=\"'#:/\\-[]{}&*!|>%@`\n\r\t\x00\x1c\x85\u2028 .0123456789xe"
    return "".join(rng.choice(special) if rng.random() < 0.6 else
                   chr(rng.choice([rng.randrange(0x20, 0x7f), rng.randrange(0x80, 0xd800),
                                   rng.randrange(0xe000, 0x110000)]))
                   for _ in range(length))


def test_random_unicode_rows(folder):
    rng = random.Random(7)
    design = folder / "d.csv"
    for _ in range(30):
        rows = "\n".join(random_text(rng, rng.randrange(1, 80)) for _ in range(rng.randrange(1, 6)))
        design.write_text("id,audio,emotion,view,size,end\n" + rows + "\n")
        try:
            check_design(design)
        except InputError as err:
            assert_reported(err)


# ---- fuzz ------------------------------------------------------------------------------------

def mutate(rng: random.Random, text: str) -> str:
    """Now and then one edit of the text itself: a hostile value or random text put in, a span
    cut out, or lines repeated."""
    if rng.random() < 0.7:
        return text
    at, end = sorted(rng.randrange(len(text) + 1) for _ in range(2))
    edit = rng.randrange(4)
    if edit == 0:
        return text[:at] + rng.choice(HOSTILE) + text[end if rng.random() < 0.5 else at:]
    if edit == 1:
        return text[:at] + random_text(rng, rng.randrange(1, 12)) + text[at:]
    if edit == 2:
        return text[:at] + text[end:]
    lines = text.split("\n")
    return "\n".join(lines + lines[rng.randrange(len(lines)):])


def fuzz_csv(rng: random.Random) -> str:
    """The valid design with a cell or two replaced, then maybe a text edit."""
    lines = DESIGN.splitlines()
    for _ in range(rng.randrange(1, 3)):
        row = rng.randrange(3, len(lines))
        cells = lines[row].split(",")
        cells[rng.randrange(len(cells))] = rng.choice(rng.choice([BENIGN, HOSTILE, [random_text(rng, 6)]]))
        lines[row] = ",".join(cells)
    return mutate(rng, "\n".join(lines) + "\n")


def random_value(rng: random.Random, depth: int = 0):
    """A random YAML or JSON value: scalars from the hostile list, numbers, lists and mappings."""
    kind = rng.randrange(7 if depth < 3 else 4)
    if kind == 0:
        return rng.choice(rng.choice([BENIGN, HOSTILE]))
    if kind == 1:
        return rng.choice([0, 1, -1, 10 ** 400, -(10 ** 30), 1e308, 0.5, True, False, None])
    if kind == 2:
        return random_text(rng, rng.randrange(0, 10))
    if kind == 3:
        return rng.uniform(-2, 2)
    if kind == 4:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {str(random_value(rng, depth + 1))[:10]: random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def fuzz_yaml(rng: random.Random) -> str:
    rows = [{"id": "a", "audio": "voice.wav", "emotion": {"happy": 0.5}, "end": 0.5},
            {"id": "b", "view": [10, 5], "end": 0.4, "size": "32x32"}]
    for _ in range(rng.randrange(1, 3)):
        row = rng.choice(rows)
        row[rng.choice(list(row) + ["fps", "seed", "start", "avatar", "generator", "background"])] = random_value(rng)
    return mutate(rng, yaml.safe_dump({"defaults": {"fps": 10}, "stimuli": rows}, allow_unicode=True))


def fuzz_preset(rng: random.Random) -> str:
    preset = json.loads(json.dumps(PRESET))
    for _ in range(rng.randrange(1, 3)):
        target = preset
        for key in rng.choice([(), ("emotions",), ("keyframes", 1), ("keyframes", 1, "emotions")]):
            inside = isinstance(target, dict) and key in target or isinstance(target, list) and key == 1 < len(target)
            target = target[key] if inside else None
        if not isinstance(target, dict):  # replaced by an earlier edit
            continue
        target[rng.choice(list(target) + ["happy", "time", "version", "format"])] = random_value(rng)
    return mutate(rng, json.dumps(preset, ensure_ascii=rng.random() < 0.5))


def test_fuzzed_designs_and_presets_give_only_input_errors(folder):
    rng = random.Random(20240611)
    outcomes = {"ok": 0, "refused": 0}
    for i in range(300):
        kind = i % 3
        if kind == 0:
            path, text, load = folder / "d.csv", fuzz_csv(rng), check_design
        elif kind == 1:
            path, text, load = folder / "d.yaml", fuzz_yaml(rng), check_design
        else:
            path, text, load = folder / "p.json", fuzz_preset(rng), load_preset
        path.write_text(text, encoding="utf-8")
        try:
            load(path)
            outcomes["ok"] += 1
        except InputError as err:
            assert_reported(err)
            outcomes["refused"] += 1
    assert outcomes["ok"] >= 10 and outcomes["refused"] >= 200, outcomes  # both paths are exercised
