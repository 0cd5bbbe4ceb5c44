"""Run fuzz cases through `avatar_app.cli.main` in one process, and say what each one did.

The child (`python -P fuzz_runner.py CASES FOLDER --start I`, run with the tree under test on
PYTHONPATH) runs cases I.. in turn in one process under an address-space limit, so allocation
bombs surface as MemoryError rather than the OOM killer: per case a fresh output folder,
captured stdout/stderr, warnings as a fresh process shows them, a timer that raises inside a
stuck case, then the output checks. It prints one JSON line per case as it goes.

The parent (`run_cases`) starts the child, kills it when a case is stuck where the timer cannot
reach (C code), records a case that killed it by a signal, and starts a new child at the next
case. This module imports nothing from the product, so the parent can judge any tree.

Outcomes: ok, clean_error (exit 2 and one line `avatar: error: ...`, or a design check's listing
of problems), multi_line_error, traceback, signal, hang, blank_video (every frame one flat
colour), bad_output (exit 0 but the promised output is missing, unreadable or short), bad_exit
(another exit code, or SystemExit), leftover_temp (a temporary file left in the output folder).
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

OUTCOMES = ("ok", "clean_error", "multi_line_error", "traceback", "signal", "hang", "blank_video",
            "bad_output", "bad_exit", "leftover_temp")
ACCEPTED = ("ok", "clean_error")
ERROR_PREFIX = "avatar: error: "
_LISTING = re.compile(r"avatar: error: the design has (\d+) problems?:")
_MORE = re.compile(r"  (?:…|\.\.\.) and (\d+) more")  # a long listing may end by counting the rest
FLAT = 6  # a frame whose every channel spans at most this many levels is one flat colour
GRACE_S = 30.0  # beyond a case's own timeout before the parent kills a stuck child
START_S = 180.0  # for the child to import the product


# ---- judging one case (pure: the parent's tests use these too) ------------------------------------

def is_clean_error(stderr: str, listing_allowed: bool) -> bool:
    """One `avatar: error:` line; or, for a design, that line announcing N problems and N
    indented lines (or the first of them and a last line `  … and M more`)."""
    lines = stderr.rstrip("\n").split("\n")
    if len(lines) == 1:
        return lines[0].startswith(ERROR_PREFIX)
    match = _LISTING.fullmatch(lines[0])
    if not (listing_allowed and match and all(line.startswith("  ") and line.strip() for line in lines[1:])):
        return False
    more = _MORE.fullmatch(lines[-1])
    listed = len(lines) - 1 if more is None else len(lines) - 2 + int(more.group(1))
    return listed == int(match.group(1))


def classify(command: str, rc: Any, stderr: str, output_problem: str | None, leftovers: list[str]) -> str:
    """The outcome of a case that returned from main (exceptions are judged before this)."""
    if rc == 0:
        outcome = "ok" if output_problem is None else "blank_video" if output_problem == "blank" else "bad_output"
    elif rc == 2:
        outcome = "clean_error" if is_clean_error(stderr, command in ("check", "stimuli")) else "multi_line_error"
    else:
        return "bad_exit"
    return "leftover_temp" if leftovers and outcome in ACCEPTED else outcome


def temporaries(folder: Path) -> list[str]:
    """Temporary files (ours: hidden `.partial`, or `.tmp`) under an output folder."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if (p.name.startswith(".") and ".partial" in p.name) or p.name.endswith(".tmp"))


# ---- the child ------------------------------------------------------------------------------------

class CaseTimeout(BaseException):
    """Raised by the timer inside a case that ran too long (BaseException: `except Exception`
    in the product must not swallow it)."""


def _alarm(signum: int, frame: Any) -> None:
    raise CaseTimeout("the case ran past its timeout")


def video_problem(path: Path, frames: int | None) -> str | None:
    """None if the MP4 decodes to `frames` frames (when known) not all of one flat colour."""
    import imageio_ffmpeg
    import numpy as np

    if not path.is_file():
        return f"no file {path.name}"
    reader = imageio_ffmpeg.read_frames(str(path))
    count, flat = 0, 0
    try:
        width, height = next(reader)["size"]
        for raw in reader:
            frame = np.frombuffer(raw, np.uint8).reshape(height, width, 3)
            count += 1
            flat += int((frame.max(axis=(0, 1)).astype(int) - frame.min(axis=(0, 1))).max() <= FLAT)
    except Exception as err:  # noqa: BLE001 - whatever ffmpeg says, the file is unreadable
        return f"undecodable ({type(err).__name__}: {err})"
    finally:
        reader.close()
    if count == 0 or (frames is not None and count != frames):
        return f"{count} frames decoded, {frames} promised"
    return "blank" if flat == count else None


def output_problem(case: dict, argv: list[str], stdout: str, work: Path) -> str | None:
    """What is wrong with the output of a case that exited 0 (None: nothing)."""
    command = case["command"]
    if command == "info":
        return None if stdout.strip() else "printed nothing"
    if command == "check":
        return None if "the design has no problems" in stdout else "no 'no problems' line"
    if command == "render":
        found = re.search(r": (\d+) frames at", stdout)
        return video_problem(Path(argv[argv.index("-o") + 1]), int(found.group(1)) if found else None)
    made = re.search(r"(\d+) made, (\d+) skipped, (\d+) failed", stdout)
    videos = sorted((work / "out").glob("*.mp4"))
    if not made or int(made.group(1)) != len(videos) or not videos:
        return f"{len(videos)} MP4s for the summary {made.group(0) if made else '(none)'}"
    problems = [p for p in (video_problem(v, None) for v in videos) if p]
    return None if not problems else "blank" if all(p == "blank" for p in problems) else problems[0]


def _where(exc: BaseException, root: Path) -> str:
    """The innermost frame in the tree under test (and the innermost of all, if elsewhere)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
    if not frames:
        return ""
    ours = [f for f in frames if f.filename.startswith(str(root)) and "/tests/" not in f.filename]

    def text(f: traceback.FrameSummary) -> str:
        name = os.path.relpath(f.filename, root) if f.filename.startswith(str(root)) else \
            "/".join(Path(f.filename).parts[-3:])
        return f"{name}:{f.lineno} {f.name}"

    inner = ours[-1] if ours else frames[-1]
    return text(inner) + ("" if inner is frames[-1] else f" -> {text(frames[-1])}")


def _one_line(text: str, limit: int = 300) -> str:
    line = next((l for l in text.splitlines() if l.strip()), "")
    return line[:limit] + ("..." if len(line) > limit else "")


def run_case(main: Callable, case: dict, folder: Path, root: Path, scale: float) -> dict:
    """Run one case in this process and judge it."""
    work = folder / "work" / case["id"]
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    argv = [a.replace("{work}", str(work)) for a in case["argv"]]
    out, err = io.StringIO(), io.StringIO()
    rc: Any = None
    exc: BaseException | None = None
    started = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, case["timeout"] * scale)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(argv)
    except KeyboardInterrupt:
        raise
    except BaseException as caught:  # noqa: BLE001 - whatever escapes main is what we measure
        exc = caught
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    seconds = time.perf_counter() - started
    stdout, stderr = out.getvalue(), err.getvalue()
    result = {"seconds": round(seconds, 3), "stderr": stderr[-2000:], "stdout": stdout[-500:], "where": ""}
    if isinstance(exc, SystemExit):
        return {**result, "outcome": "bad_exit", "rc": repr(exc.code), "detail": f"SystemExit({exc.code!r})"}
    if exc is not None:
        outcome = "hang" if isinstance(exc, CaseTimeout) else "traceback"
        detail = f"timeout after {case['timeout'] * scale:g} s" if outcome == "hang" else \
            f"{type(exc).__name__}: {_one_line(str(exc), 200)}"
        where = _where(exc, root)
        traceback.clear_frames(exc.__traceback__)  # what the case allocated goes with its frames ...
        exc = None  # ... and with the exception, which this frame would otherwise keep in a cycle
        return {**result, "outcome": outcome, "rc": None, "detail": detail, "where": where}
    problem = output_problem(case, argv, stdout, work) if rc == 0 else None
    leftovers = temporaries(work)
    outcome = classify(case["command"], rc, stderr, problem, leftovers)
    detail = {"bad_output": problem, "blank_video": "every frame is one flat colour",
              "leftover_temp": f"left {', '.join(leftovers[:3])}",
              "bad_exit": f"exit code {rc}: {_one_line(stderr) or _one_line(stdout[stdout.rfind('failed:'):])}"
              }.get(outcome) or _one_line(stderr)
    return {**result, "outcome": outcome, "rc": rc, "detail": detail}


def child(args: argparse.Namespace) -> None:
    """Run the cases from `--start` on, one JSON line per event on the original stdout; anything
    else written to file descriptor 1 (ffmpeg, C code) goes to stderr instead."""
    import faulthandler
    import resource

    limit = int(args.mem_gib * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    faulthandler.enable()

    def emit(event: dict) -> None:
        protocol.write(json.dumps(event) + "\n")
        protocol.flush()

    import avatar_app
    from avatar_app.cli import main

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    gc.collect()
    gc.freeze()  # the imports' objects: each case's collection then looks at its own objects only

    root = Path(avatar_app.__file__).resolve().parents[1]
    emit({"event": "ready", "avatar_app": avatar_app.__file__, "root": str(root)})
    signal.signal(signal.SIGALRM, _alarm)
    cases = json.loads(Path(args.cases).read_text())
    for index in range(args.start, len(cases)):
        gc.collect()  # what earlier cases left in reference cycles must not count against this one
        emit({"event": "start", "index": index})
        emit({"event": "done", "index": index, **run_case(main, cases[index], Path(args.folder), root, args.scale)})


# ---- the parent -----------------------------------------------------------------------------------

def _lines(proc: subprocess.Popen, deadline: Callable[[], float]):
    """The child's stdout lines as they come; None when `deadline()` passes first."""
    buffer = b""
    fd = proc.stdout.fileno()
    while True:
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield line.decode("utf-8", "replace")
        wait = deadline() - time.monotonic()
        if wait <= 0:
            yield None
            continue
        ready, _, _ = select.select([fd], [], [], min(wait, 1.0))
        if ready:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return
            buffer += chunk


def _signal_detail(returncode: int, log: Path, root: str) -> str:
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    text = log.read_text(errors="replace") if log.exists() else ""
    frames = re.findall(r'File "([^"]+)", line (\d+) in (\S+)', text)
    ours = [f"{os.path.relpath(f, root)}:{n} {fn}" for f, n, fn in frames if root and f.startswith(root)]
    return f"killed by {name}" + (f" at {ours[0]}" if ours else "")


def _child_env(tree: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "PYTHONSTARTUP")}
    env.update(PYTHONPATH=str(tree), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONDONTWRITEBYTECODE="1", CUDA_VISIBLE_DEVICES="", QT_QPA_PLATFORM="offscreen")
    return env


def run_cases(cases: list[dict], folder: Path, tree: Path, mem_gib: float = 3.0, scale: float = 1.0,
              progress: Callable[[dict], None] | None = None, grace: float = GRACE_S) -> list[dict]:
    """Every case's result (the case's fields plus outcome, detail, where, seconds, ...),
    running them in a child process on `tree`, restarted after any case that killed it or
    that ran `grace` seconds past its timeout."""
    folder, tree = Path(folder), Path(tree).resolve()
    cases_file = folder / "run-cases.json"
    cases_file.write_text(json.dumps(cases))
    results: list[dict | None] = [None] * len(cases)
    start, restarts = 0, 0
    while start < len(cases):
        log = folder / f"runner-{restarts:03d}.log"
        restarts += 1
        with open(log, "wb") as err:
            proc = subprocess.Popen([sys.executable, "-P", __file__, str(cases_file), str(folder), "--start", str(start),
                                     "--mem-gib", str(mem_gib), "--scale", str(scale)],
                                    cwd=tree, env=_child_env(tree), stdout=subprocess.PIPE, stderr=err)
            try:
                start = _follow(proc, cases, results, start, log, tree, scale, grace, progress)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                proc.stdout.close()
    return results  # type: ignore[return-value]


def _follow(proc: subprocess.Popen, cases: list[dict], results: list, start: int, log: Path, tree: Path,
            scale: float, grace: float, progress: Callable[[dict], None] | None) -> int:
    """Read one child's events until it ends or sticks; the index to start the next child at."""
    deadline, current, root = [time.monotonic() + START_S], None, ""

    def record(index: int, **fields: Any) -> None:
        results[index] = {**cases[index], **fields}
        if progress:
            progress(results[index])

    for line in _lines(proc, lambda: deadline[0]):
        if line is None:  # stuck where the child's own timer cannot reach
            if current is None:
                raise RuntimeError(f"the fuzz runner did not start; see {log}:\n{log.read_text()[-3000:]}")
            proc.kill()
            record(current, outcome="hang", detail="stuck; killed by the parent", where="", seconds=None, rc=None,
                   stderr="", stdout="")
            return current + 1
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "ready":
            root = event["root"]
            if Path(root).resolve() != tree:
                raise RuntimeError(f"the runner imported the product from {root}, not from {tree}")
            deadline[0] = time.monotonic() + 3600
        elif event.get("event") == "start":
            current = event["index"]
            deadline[0] = time.monotonic() + cases[current]["timeout"] * scale + grace
        elif event.get("event") == "done":
            index = event.pop("index")
            event.pop("event")
            record(index, **event)
            current, deadline[0] = None, time.monotonic() + 3600
    returncode = proc.wait()
    if current is None and not root:
        raise RuntimeError(f"the fuzz runner exited ({returncode}) before it started; see {log}:\n"
                           f"{log.read_text()[-3000:]}")
    if current is None:
        return len(cases) if all(r is not None for r in results[start:]) else \
            next(i for i in range(start, len(cases)) if results[i] is None)
    outcome = "signal" if returncode < 0 else "bad_exit"
    detail = _signal_detail(returncode, log, root) if returncode < 0 else f"the process exited ({returncode})"
    record(current, outcome=outcome, detail=detail, where="", seconds=None, rc=returncode, stderr="", stdout="")
    return current + 1


# ---- summaries ------------------------------------------------------------------------------------

def table(results: list[dict], formats: list[str] | None = None) -> str:
    """Outcome counts: one row per format, one column per outcome, and a total row."""
    formats = formats or sorted({r["format"] for r in results})
    counts = {f: {o: 0 for o in OUTCOMES} for f in [*formats, "total"]}
    for r in results:
        counts[r["format"]][r["outcome"]] += 1
        counts["total"][r["outcome"]] += 1
    heads = ["format", *OUTCOMES, "cases"]
    rows = [[f, *(str(counts[f][o]) for o in OUTCOMES), str(sum(counts[f].values()))] for f in counts]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(heads)]
    lines = ["  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(heads, widths)))]
    lines += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in rows]
    return "\n".join(lines)


def describe(result: dict) -> str:
    """One offender on two lines: what ran, and what it did."""
    where = f" [{result['where']}]" if result.get("where") else ""
    return (f"{result['outcome']}: {result['format']}/{result['mutation']} ({result['command']}): "
            f"{result['detail']}{where}\n    avatar {' '.join(result['argv'])}")


def cause(result: dict) -> str:
    """A key that groups offenders with one root cause: where it failed and the kind of failure,
    without the file names and numbers that differ between mutants."""
    detail = re.sub(r"/\S+", "FILE", result.get("detail") or "")
    detail = re.sub(r"\d+(\.\d+)?(e[+-]?\d+)?", "N", detail)
    if result["outcome"] in ("traceback", "hang"):
        kind = detail.split(":", 1)[0] if result["outcome"] == "traceback" else "hang"
        return f"{kind} at {result.get('where') or '?'}"
    return detail[:110]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cases")
    parser.add_argument("folder")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--mem-gib", type=float, default=3.0)
    parser.add_argument("--scale", type=float, default=1.0)
    child(parser.parse_args())


if __name__ == "__main__":
    main()
