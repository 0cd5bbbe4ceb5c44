"""`avatar stimuli --ray` on a local Ray instance of 2 CPUs: the same frames and manifest as a
local run, a killed worker's stimulus made again, a failing row, resume. Tiny clips (32×32, a
few frames) so the whole module stays well under a minute; skipped without Ray (but the
error that says how to install it)."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from avatar_app.cli import main
from common.errors import InputError
from tests.processes import ctrl_c_reaches_it
from tests.stimuli_runs import broken_avatar, manifest, stimuli

DESIGN = """\
# size: 32x32
# fps: 10
id,emotion,end
{rows}
"""
EMOTIONS = ("happy", "sad", "angry", "surprised", "fearful", "disgusted")


@pytest.fixture(scope="module")
def cluster():
    """A local Ray instance of 2 CPUs that `--ray` joins; the test is skipped without Ray."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def design(folder: Path, rows: list[str]) -> Path:
    path = folder / "design.csv"
    path.write_text(DESIGN.format(rows="\n".join(rows)))
    return path


def six(folder: Path) -> Path:
    return design(folder, [f"{e},{e},{0.3 + i / 10:g}" for i, e in enumerate(EMOTIONS)])


def temporaries(folder: Path) -> list[Path]:
    return [p for p in [*folder.iterdir(), *(folder / ".avatar-stimuli").iterdir()]
            if p.name.startswith(".") and p.name != ".avatar-stimuli"]


def test_same_frames_and_manifest_as_a_local_run_and_resume(tmp_path, cluster):
    path = six(tmp_path)
    assert stimuli(path, "-o", tmp_path / "local") == 0
    assert stimuli(path, "-o", tmp_path / "ray", "--ray") == 0
    local, remote = manifest(tmp_path / "local"), manifest(tmp_path / "ray")
    for a, b in zip(local["stimuli"], remote["stimuli"]):
        assert a["frames_sha256"] == b["frames_sha256"] and b["host"]
        for record in (a, b):
            record.pop("rendered_at"), record.pop("host")
    assert local == remote
    (tmp_path / "ray" / "sad.mp4").unlink()  # resume: with Ray, then locally
    assert main(["stimuli", str(path), "-o", str(tmp_path / "ray"), "--ray"]) == 0
    assert [r["status"] for r in manifest(tmp_path / "ray")["stimuli"]] == ["ok"] * 6
    assert (tmp_path / "ray" / "sad.mp4").is_file()
    assert stimuli(path, "-o", tmp_path / "ray") == 0
    assert not temporaries(tmp_path / "ray")


def test_a_failing_row_is_reported_and_the_others_finish(tmp_path, cluster, capsys):
    broken = broken_avatar(tmp_path)
    path = tmp_path / "design.csv"
    path.write_text(f"# size: 32x32\n# fps: 10\nid,avatar,end\ngood,demo,0.3\nbad,{broken},0.3\nfine,demo,0.4\n")
    assert stimuli(path, "-o", tmp_path / "out", "--ray") == 1
    records = {r["id"]: r for r in manifest(tmp_path / "out")["stimuli"]}
    assert records["good"]["status"] == records["fine"]["status"] == "ok"
    assert records["bad"]["status"] == "failed" and "point_cloud.ply" in records["bad"]["error"]
    assert "failed: bad:" in capsys.readouterr().out


def test_an_input_a_node_cannot_see_fails_the_batch_up_front(tmp_path, cluster):
    from avatar_app.stimuli.ray_batch import check_shared

    plan = SimpleNamespace(inputs={"audio": {"path": str(tmp_path / "gone.wav")}})
    (tmp_path / ".avatar-stimuli").mkdir()
    with pytest.raises(InputError, match="gone.wav: Ray node .* cannot see this input file"):
        check_shared(tmp_path, [plan])
    assert not temporaries(tmp_path)


def stimulus_workers() -> list[int]:
    """Ray worker processes now making a stimulus (Ray names them after the task)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(b"ray::_make_stimulus"):
                pids.append(int(entry.name))
        except OSError:
            pass
    return pids


def ray_batch_acting_once(path: Path, out: Path, when: Callable[[], bool], act: Callable[[], None]) -> tuple[int, bool]:
    """`avatar stimuli PATH -o OUT --ray`, with act() called once, from a thread, as soon as when()
    holds; returns the exit code and whether act() ran."""
    acted, finished = [], threading.Event()

    def watch() -> None:
        while not finished.is_set() and not acted:
            if when():
                act()
                acted.append(True)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        return stimuli(path, "-o", out, "--ray"), bool(acted)
    finally:
        finished.set()
        watcher.join()


def writing_long(out: Path) -> bool:
    return out.is_dir() and bool(list(out.glob(".long.mp4.*partial*")))


def test_a_worker_killed_mid_stimulus_is_retried_and_leaves_no_partial_file(tmp_path, cluster):
    path, out = design(tmp_path, ["long,happy,6", "short,sad,0.3"]), tmp_path / "out"
    code, killed = ray_batch_acting_once(path, out, lambda: writing_long(out) and bool(stimulus_workers()),
                                         lambda: os.kill(stimulus_workers()[0], signal.SIGKILL))
    assert code == 0 and killed, "no worker was caught writing"
    assert [r["status"] for r in manifest(out)["stimuli"]] == ["ok", "ok"]
    assert not temporaries(out)


def test_ray_without_the_extra_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "avatar_app.stimuli.ray_batch", raising=False)
    monkeypatch.delattr("avatar_app.stimuli.ray_batch", raising=False)
    assert stimuli(six(tmp_path), "-o", tmp_path / "out", "--ray") == 2
    assert capsys.readouterr().err == 'avatar: error: --ray needs Ray, an optional extra: pip install -e ".[ray]"\n'


def test_bad_ray_options_are_one_line(tmp_path, capsys):
    path = six(tmp_path)
    assert stimuli(path, "-o", tmp_path / "out", "--ray-cpus", "2") == 2
    assert stimuli(path, "-o", tmp_path / "out", "--ray", "--workers", "2") == 2
    assert stimuli(path, "-o", tmp_path / "out", "--ray", "--ray-cpus", "0") == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and "only with --ray" in errors[0]


def test_ctrl_c_cancels_the_tasks_leaves_no_partial_file_and_a_local_rerun_resumes(tmp_path):
    """The real command with a Ray instance of its own, stopped with Ctrl-C once the short clip is
    made and the long one is being written (in-process, a signal into a test process that hosts Ray
    as well is not what a user's Ctrl-C is)."""
    pytest.importorskip("ray")
    path, out = design(tmp_path, ["short,happy,0.3", "long,sad,6"]), tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "avatar_app.cli", "stimuli", str(path), "-o", str(out),
                                "--ray"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               preexec_fn=ctrl_c_reaches_it)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            made = (out / "manifest.json").is_file() and manifest(out)["stimuli"][0]["status"] == "ok"
            if made and writing_long(out):
                break
            time.sleep(0.02)
        assert process.poll() is None, "the batch ended before it could be stopped"
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 130
    finally:
        process.kill()
    assert "cancelled" in process.stderr.read()
    assert [r["status"] for r in manifest(out)["stimuli"]] == ["ok", "pending"]
    assert not temporaries(out) and not stimulus_workers()
    assert stimuli(path, "-o", out) == 0
    assert [r["status"] for r in manifest(out)["stimuli"]] == ["ok", "ok"]


def test_an_address_where_nothing_answers_is_one_line_at_once(tmp_path):
    """Ray alone would wait minutes on it; the real command, in a process of its own (no Ray yet)."""
    pytest.importorskip("ray")
    with socket.socket() as probe:  # a port nothing listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "avatar_app.cli", "stimuli", str(six(tmp_path)), "-o",
                               str(tmp_path / "out"), "--ray", f"127.0.0.1:{port}"], capture_output=True, text=True,
                              timeout=120)
    assert done.returncode == 2 and time.monotonic() - started < 60
    assert done.stderr.count("\n") == 1 and f"--ray 127.0.0.1:{port}: nothing answers there" in done.stderr
