"""The command line answers help and argument errors without loading the heavy libraries, and
every option says what it is and what it defaults to. The start-up tests run the installed
`avatar` script (else `python -m avatar_app.cli`) in a fresh process and read which modules it
imported from Python's own import trace (PYTHONPROFILEIMPORTTIME)."""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from assets import DEMO_AUDIO
from avatar_app.cli import EXAMPLES, main, make_parser
from common.errors import InputError
from models.rig.emotion import EmotionTrack, check_emotions

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "numpy", "scipy", "numba", "smplx", "transformers", "PySide6", "pyqtgraph", "imageio", "tqdm",
         "yaml")
_TRACE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", re.MULTILINE)


def _avatar() -> list[str]:
    script = shutil.which("avatar", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "avatar_app.cli"]


def run_avatar(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """The command's result and the top-level packages of every module it imported."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    done = subprocess.run([*_avatar(), *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    modules = {name.split(".")[0] for name in _TRACE.findall(done.stderr)}
    assert "avatar_app" in modules, done.stderr[-2000:]  # the trace is there: an empty one proves nothing
    return done, modules


def messages(stderr: str) -> str:
    return "\n".join(line for line in stderr.splitlines() if not line.startswith("import time:"))


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["render", "--help"], ["app", "--help"],
                                  ["make-corpus", "--help"], ["stimuli", "--help"], ["compare", "--help"]])
def test_help_imports_nothing_heavy(args: list[str]) -> None:
    done, modules = run_avatar(*args)
    assert done.returncode == 0, messages(done.stderr)
    assert done.stdout.strip()
    assert sorted(modules & set(HEAVY)) == []


@pytest.mark.parametrize("args, culprit", [
    (["render", "--demo"], "-o/--output"),
    (["render", "--demo", "-o", "x.mp4", "--fps", "fast"], "--fps"),
    (["render", "--demo", "-o", "x.mp4", "--backend", "vulkan"], "--backend"),
    (["app", "--no-such-option"], "--no-such-option"),
    (["trials", "manifest.json", "--seed", "1"], "--participants"),
    (["no-such-command"], "no-such-command"),
])
def test_argument_errors_import_nothing_heavy(args: list[str], culprit: str) -> None:
    done, modules = run_avatar(*args)
    assert done.returncode == 2
    text = messages(done.stderr)
    assert "usage: avatar" in text and culprit in text.splitlines()[-1], text
    assert sorted(modules & set(HEAVY)) == []


def test_a_command_that_runs_loads_its_code() -> None:
    """The counterpart: the trace does show the heavy libraries once a command runs."""
    done, modules = run_avatar("info", str(ROOT / "assets" / "demo" / "blendshapes.npz"))
    assert done.returncode == 0, messages(done.stderr)
    assert "numpy" in modules


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_has_help_and_shows_its_default() -> None:
    missing, no_default = [], []
    for name, sub in _subcommands(make_parser()).items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            label = f"{name} {'/'.join(action.option_strings) or action.dest}"
            shown = sub._get_formatter()._format_action(action)  # as --help prints it, %(default)s filled in
            if not (action.help or "").strip():
                missing.append(label)
            elif action.option_strings and action.default not in (None, []) and action.default is not False \
                    and "default" not in shown:
                no_default.append(label)
    assert missing == []
    assert no_default == []


def test_top_level_help_lists_every_command_with_an_example() -> None:
    parser = make_parser()
    text = parser.format_help()
    commands = _subcommands(parser)
    assert set(EXAMPLES) == set(commands)
    for name in commands:
        assert re.search(rf"^  avatar {re.escape(name)} \S", text, re.MULTILINE), name


def test_a_dashed_value_is_taken_as_the_options_value() -> None:
    args = make_parser().parse_args(["render", "--demo", "-o", "x.mp4", "--loudness", "-23LUFS", "--yaw", "-30"])
    assert (args.loudness, args.yaw) == ("-23LUFS", -30.0)
    assert make_parser().parse_args(["stimuli", "-o", "out", "--loudness", "-20dBFS"]).loudness == "-20dBFS"


@pytest.mark.parametrize("option, value, message", [
    ("--duration", "0", "argument --duration: 0: a length must be more than 0 seconds"),
    ("--start", "-1", "argument --start: -1: a start time must be 0.."),
    ("--fps", "0", "argument --fps: 0: frames per second must be 1..1000"),
    ("--size", "10x10", "argument --size: 10x10: width and height must be 16..8192"),
    ("--background", "255,128,0", "argument --background: 255,128,0: r,g,b channels are 0..1, not 0..255 "
                                  "(e.g. 1,0.502,0 or #ff8000)"),
    ("--background", "red", "argument --background: red: use a name (white, black"),
])
def test_values_are_checked_when_parsed(capsys: pytest.CaptureFixture[str], option: str, value: str,
                                        message: str) -> None:
    with pytest.raises(SystemExit) as stop:
        make_parser().parse_args(["render", "--demo", "-o", "x.mp4", option, value])
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"avatar render: error: {message}")


def test_emotion_names_match_in_any_case_and_a_typo_gets_a_suggestion() -> None:
    known = ["happy", "sad", "surprised"]
    assert check_emotions({"HAPPY": 0.5, "Sad": 1.0}, known) == {"happy": 0.5, "sad": 1.0}
    with pytest.raises(InputError, match=r"unknown emotion 'suprised' \(did you mean 'surprised'\?\); known emotions: "
                                         r"happy, sad, surprised$"):
        check_emotions({"suprised": 1.0}, known)
    with pytest.raises(InputError, match=r"unknown emotion 'calm'; known"):
        check_emotions({"calm": 1.0}, known)
    with pytest.raises(InputError, match="'happy' is given twice"):
        check_emotions({"happy": 1.0, "Happy": 0.5}, known)
    track = EmotionTrack().with_key(0.0, {"Happy": 1.0}).with_key(1.0, {"SAD": 0.5})
    assert track.spelled_as(known).intensities([0.0, 1.0], ["happy", "sad"]).tolist() == [[1.0, 0.0], [0.0, 0.5]]


def test_render_messages_name_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "o.mp4")
    base = ["render", "--demo", "--driver", "signal", "--duration", "0.1", "--size", "32x32", "-q", "-o", out]
    assert main([*base, "--emotion", "HAPPY=0.5", "--loudness", "-23LUFS"]) == 0
    assert main([*base, "--emotion", "hapy"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "avatar: error: --emotion hapy: unknown emotion 'hapy' (did you mean 'happy'?); known emotions: happy, sad, "
        "angry, surprised, fearful, disgusted, contempt")
    wav = tmp_path / "some.wav"
    shutil.copyfile(DEMO_AUDIO, wav)
    assert main([*base, "--weights", str(wav)]) == 2
    assert capsys.readouterr().err.strip() == (f"avatar: error: --weights {wav}: this is audio, and --weights takes a "
                                               "weight sequence (*.weights.npz); give audio with --audio")


def test_app_takes_the_view_options(tmp_path: Path) -> None:
    """`avatar app --background` reaches the window: the snapshot's viewport is that colour."""
    out = tmp_path / "window.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    done = subprocess.run([*_avatar(), "app", "--demo", "--driver", "signal", "--duration", "0.5", "--paused",
                           "--background", "0,0,1", "--yaw", "20", "--size", "96x64", "--snapshot", str(out)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    image = iio.imread(out)[..., :3].astype(int)
    blue = (np.abs(image - [0, 0, 255]).max(axis=-1) <= 2).mean()
    assert blue > 0.2, blue
