"""Fuzzing every input format `avatar` reads: each mutant must be read fine or refused with exit
code 2 and ONE line `avatar: error: FILE: problem` (issue 11). The mutants are generated here,
seeded (tests/fuzz_inputs.py), and run in one child process on this checkout
(tests/fuzz_runner.py); `python benchmarks/fuzz_report.py` runs all of them and prints a table.
"""
from __future__ import annotations

import collections
import shutil
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzz_inputs import REPO, generate, select  # noqa: E402
from fuzz_runner import (  # noqa: E402
    ACCEPTED,
    cause,
    classify,
    describe,
    run_cases,
    table,
    video_problem,
)

SEED = 0
RENDERS_PER_FORMAT = 2  # besides the base and wrong-type renders of every format


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    folder = tmp_path_factory.mktemp("fuzz") / "mutants"
    try:
        cases = select(generate(folder, SEED, heavy=False), RENDERS_PER_FORMAT, SEED)
        yield run_cases(cases, folder, REPO)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # hundreds of MB; the seed makes them again


def summary(offenders: list[dict], results: list[dict], shown: int = 30) -> str:
    """The table, the offenders grouped by root cause, and the first few of them with their argv."""
    groups = collections.Counter((r["format"], r["outcome"], cause(r)) for r in offenders).most_common()
    lines = [f"{len(offenders)} of {len(results)} fuzz cases neither ran fine nor gave one clean error line:",
             "", table(results), "", f"{len(groups)} root causes (count, format, outcome, where):"]
    lines += [f"{n:4d}  {fmt:12s} {outcome:16s} {key}" for (fmt, outcome, key), n in groups[:shown]]
    lines += [f"      ... and {len(groups) - shown} more"] if len(groups) > shown else []
    lines += ["", f"the first {min(shown, len(offenders))} cases:"] + [describe(r) for r in offenders[:shown]]
    lines += ["", "all of them, with the tree's traces: python benchmarks/fuzz_report.py --subset --list CLASS"]
    return "\n".join(lines)


def test_base_files_run_and_wrong_file_types_are_refused(results):
    """The instrument itself: unmutated inputs render and print, a file of another type is a
    clean error."""
    wrong = []
    for r in results:
        if r["mutation"] == "base":
            expected = "ok"  # `avatar info` describes every format, presets and generator folders too
        elif r["mutation"].startswith("wrong_type"):
            expected = "clean_error"
        else:
            continue
        if r["outcome"] != expected:
            wrong.append(f"expected {expected}, got {describe(r)}")
    assert not wrong, "\n".join(wrong)


def test_every_mutant_runs_or_is_refused_in_one_line(results):
    offenders = [r for r in results if r["outcome"] not in ACCEPTED]
    assert not offenders, summary(offenders, results)


def test_outcome_classes():
    assert classify("info", 2, "avatar: error: x.npz: missing key(s) f\n", None, []) == "clean_error"
    assert classify("info", 2, "avatar: error: x.npz: bad\nsecond line\n", None, []) == "multi_line_error"
    assert classify("render", 2, "warning: overflow\navatar: error: x: bad\n", None, []) == "multi_line_error"
    assert classify("render", 2, "usage: avatar ...\n", None, []) == "multi_line_error"
    listing = "avatar: error: the design has 2 problems:\n  row 1: id: missing\n  row 2: fps: 'x' is not a number\n"
    assert classify("check", 2, listing, None, []) == "clean_error"
    assert classify("info", 2, listing, None, []) == "multi_line_error"
    assert classify("check", 2, listing.replace("2 problems", "3 problems"), None, []) == "multi_line_error"
    shortened = listing.replace("2 problems", "7 problems") + "  … and 5 more\n"
    assert classify("check", 2, shortened, None, []) == "clean_error"
    assert classify("check", 2, shortened.replace("5 more", "4 more"), None, []) == "multi_line_error"
    assert classify("render", 0, "", None, []) == "ok"
    assert classify("render", 0, "", "blank", []) == "blank_video"
    assert classify("render", 0, "", "2 frames decoded, 3 promised", []) == "bad_output"
    assert classify("render", 0, "", None, [".out.abc.partial.mp4"]) == "leftover_temp"
    assert classify("render", 2, "avatar: error: x: bad\n", None, [".x.tmp"]) == "leftover_temp"
    assert classify("render", 1, "", None, []) == "bad_exit"


def test_blank_video_detector(tmp_path):
    """A clip of one flat colour is blank; the same clip with a gradient is not."""
    def clip(path: Path, frame: np.ndarray) -> Path:
        writer = imageio_ffmpeg.write_frames(str(path), (32, 32), fps=10, macro_block_size=1, ffmpeg_log_level="error")
        writer.send(None)
        for _ in range(3):
            writer.send(np.ascontiguousarray(frame))
        writer.close()
        return path

    flat = np.full((32, 32, 3), 200, np.uint8)
    ramp = flat.copy()
    ramp[:, :, 0] = np.arange(32, dtype=np.uint8)[None, :] * 8
    assert video_problem(clip(tmp_path / "flat.mp4", flat), 3) == "blank"
    assert video_problem(clip(tmp_path / "ramp.mp4", ramp), 3) is None
    assert video_problem(tmp_path / "ramp.mp4", 4) == "3 frames decoded, 4 promised"
    assert video_problem(tmp_path / "none.mp4", 3).startswith("no file")


FAKE_CLI = '''
import itertools, os, sys, time

def main(argv):
    what = argv[0]
    if what == "ok":
        print("fine")
        return 0
    if what == "clean":
        print("avatar: error: x.wav: not a WAV file", file=sys.stderr)
        return 2
    if what == "two_lines":
        print("avatar: error: x.wav: bad\\n  more", file=sys.stderr)
        return 2
    if what == "raise":
        raise ValueError("boom")
    if what == "memory":
        return len(bytearray(64 << 30))
    if what == "sleep":
        time.sleep(600)
    if what == "c_loop":
        return sum(itertools.repeat(1, 10**15))
    if what == "segfault":
        import ctypes
        ctypes.string_at(0)
    if what == "exit":
        sys.exit(3)
    if what == "os_exit":
        os._exit(5)
    if what == "temp":
        open(os.path.join(argv[1], ".out.1234.partial.mp4"), "w").close()
        print("made")
        return 0
'''
FAKE_EXPECTED = {"ok": "ok", "clean": "clean_error", "two_lines": "multi_line_error", "raise": "traceback",
                 "memory": "traceback", "sleep": "hang", "c_loop": "hang", "segfault": "signal", "exit": "bad_exit",
                 "os_exit": "bad_exit", "temp": "leftover_temp"}


def test_runner_survives_what_a_case_does(tmp_path):
    """The runner on a stand-in product: a timer stops a stuck case, the parent kills one stuck
    in C and restarts after a crash, and every outcome lands on its own case."""
    tree = tmp_path / "tree"
    (tree / "avatar_app").mkdir(parents=True)
    (tree / "avatar_app" / "__init__.py").write_text("")
    (tree / "avatar_app" / "cli.py").write_text(FAKE_CLI)
    names = [*FAKE_EXPECTED, "ok"]  # the last one runs after a restart
    cases = [{"id": f"{i}-{name}", "format": "fake", "mutation": name, "command": "info", "timeout": 1.0,
              "argv": [name, "{work}"]} for i, name in enumerate(names)]
    results = run_cases(cases, tmp_path, tree, grace=2.0)
    assert [r["outcome"] for r in results] == [FAKE_EXPECTED[n] for n in names], \
        "\n".join(describe(r) for r in results)
    memory = results[names.index("memory")]
    assert memory["detail"].startswith("MemoryError") and memory["where"].startswith("avatar_app/cli.py:")
    assert results[names.index("sleep")]["where"].startswith("avatar_app/cli.py:")  # where it was stuck
    assert "SIGSEGV" in results[names.index("segfault")]["detail"]
