"""Nothing we did not make is ever deleted or overwritten; our own outputs are replaced
atomically; SIGTERM and Ctrl-C leave no temporaries; CSV cells cannot run as formulas."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import avatar_app.outputs as outputs
from assets import DEMO_AUDIO, DEMO_AVATAR
from avatar_app.cli import main
from avatar_app.outputs import MARK, check_output_folder
from common import atomic
from common.atomic import replace_folder
from common.errors import InputError
from common.files import csv_cell, csv_text
from models.audio.sources import Audio, load_wav, save_wav
from renderer.ply import read_ply, write_ply
from tests.processes import ctrl_c_reaches_it

RENDER = ["render", "--demo", "--duration", "0.1", "--size", "32x32", "-q"]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("avatar: error: "), err
    return err[0]


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_folder_that_is_not_ours_is_never_replaced(tmp_path, capsys):
    mine = tmp_path / "holiday-photos"
    mine.mkdir()
    (mine / "beach.jpg").write_bytes(b"precious")
    (mine / "sub").mkdir()
    (mine / "sub" / "notes.txt").write_text("keep me")
    before = tree(mine)
    for argv in (RENDER + ["-o", str(mine)],
                 ["stimuli", "-o", str(mine), "--factorial", "emotion=happy", "--set", "end=0.1", "-q"],
                 ["make-corpus", str(mine), "--speech-clips", "1"]):
        assert main(argv) == 2
        assert "was not made by avatar" in one_error_line(capsys)
        assert tree(mine) == before


@pytest.mark.parametrize("where", [".", "..", "/", "~"])
def test_the_working_folder_its_parents_root_and_home_are_always_refused(where, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    (work / MARK).touch()  # even a folder that looks like ours
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path))
    target = str(Path(where).expanduser())
    assert main(RENDER + ["-o", target]) == 2
    assert "give a new folder" in one_error_line(capsys)
    assert (work / MARK).exists()


def test_a_foreign_file_is_not_overwritten_but_our_own_video_is(tmp_path, capsys):
    foreign = tmp_path / "talk.mp4"
    foreign.write_bytes(b"someone else's video")
    assert main(RENDER + ["-o", str(foreign)]) == 2
    assert "was not made by avatar" in one_error_line(capsys)
    assert foreign.read_bytes() == b"someone else's video"
    ours = tmp_path / "ours.mp4"
    assert main(RENDER + ["-o", str(ours)]) == 0
    first = ours.read_bytes()
    assert main(RENDER + ["--emotion", "happy", "-o", str(ours)]) == 0
    assert ours.read_bytes() != first and outputs.is_our_mp4(ours)
    assert not outputs.is_our_mp4(foreign)


def test_our_png_folder_is_replaced_whole(tmp_path):
    out = tmp_path / "frames"
    assert main(RENDER + ["--duration", "0.2", "-o", str(out)]) == 0
    assert len(list(out.glob("frame_*.png"))) == 6
    assert main(RENDER + ["--duration", "0.1", "-o", str(out)]) == 0
    assert sorted(p.name for p in out.glob("frame_*.png")) == ["frame_00000.png", "frame_00001.png", "frame_00002.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]  # nothing left aside


@pytest.mark.parametrize("exchange", [True, False])
def test_replacing_a_folder_keeps_the_old_one_until_the_new_one_is_in_place(tmp_path, monkeypatch, exchange):
    old, new = tmp_path / "out", tmp_path / ".out.partial"
    for folder, name in ((old, "old.txt"), (new, "new.txt")):
        folder.mkdir()
        (folder / name).write_text(name)
    if not exchange:  # systems without renameat2: the old folder is moved aside first
        monkeypatch.setattr(atomic, "exchange_paths", lambda a, b: False)
    renames = []
    real_replace = os.replace

    def interrupted_replace(a, b):
        renames.append((Path(a).name, Path(b).name))
        if len(renames) == 2:  # a kill between the two renames of the fallback
            raise KeyboardInterrupt
        real_replace(a, b)

    monkeypatch.setattr(atomic.os, "replace", interrupted_replace)
    if exchange:
        replace_folder(new, old)
        assert tree(old) == {"new.txt": b"new.txt"} and not new.exists()
    else:
        with pytest.raises(KeyboardInterrupt):
            replace_folder(new, old)
        survivors = [p for p in tmp_path.rglob("old.txt")]
        assert len(survivors) == 1 and survivors[0].read_text() == "old.txt"  # moved aside, not lost


def test_check_output_folder_accepts_new_empty_and_marked_folders(tmp_path):
    assert check_output_folder(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    check_output_folder(tmp_path / "empty")
    (tmp_path / "marked").mkdir()
    (tmp_path / "marked" / MARK).touch()
    (tmp_path / "marked" / "frame_00000.png").touch()
    check_output_folder(tmp_path / "marked")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        check_output_folder(tmp_path / "file")


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if ".partial" in p.name or p.name.endswith(".tmp")]


def wait_for(predicate, process, seconds=120.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None and not predicate():
        time.sleep(0.02)
    assert process.poll() is None, "the command ended before it could be stopped"


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stopped_render_leaves_no_temporary_and_keeps_the_old_video(tmp_path, signum, code):
    out = tmp_path / "clip.mp4"
    assert main(RENDER + ["-o", str(out)]) == 0
    old = out.read_bytes()
    process = subprocess.Popen([sys.executable, "-m", "avatar_app.cli", "render", "--demo", "--size", "64x64",
                                "-q", "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               preexec_fn=ctrl_c_reaches_it)
    try:
        wait_for(lambda: bool(temporaries(tmp_path)), process)
        time.sleep(0.5)  # frames are being encoded
        process.send_signal(signum)
        assert process.wait(timeout=60) == code
    finally:
        process.kill()
    assert "cancelled" in process.stderr.read()
    assert not temporaries(tmp_path) and out.read_bytes() == old


def test_a_terminated_batch_with_workers_leaves_no_temporary_and_resumes(tmp_path):
    speech = load_wav(DEMO_AUDIO)
    save_wav(Audio(speech.samples[: speech.sample_rate], speech.sample_rate), tmp_path / "a.wav")
    design = tmp_path / "design.csv"
    design.write_text("# size: 48x48\n# fps: 15\nid,audio,emotion\n"
                      + "".join(f"s{i},a.wav,happy={i / 4:g}\n" for i in range(4)))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "avatar_app.cli", "stimuli", str(design), "-o", str(out), "-q", "--workers", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: out.exists() and bool(temporaries(out)), process, seconds=180)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 143
    finally:
        process.kill()
    time.sleep(1.0)  # the workers are gone too: nothing appears afterwards
    assert not temporaries(out)
    assert main(["stimuli", str(design), "-o", str(out), "-q"]) == 0
    assert len(list(out.glob("s*.mp4"))) == 4 and not temporaries(out)


@pytest.mark.parametrize("text, safe", [("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
                                        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
                                        ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
                                        ("-0.25", "-0.25"), ("+3", "+3"), ("happy=0.5", "happy=0.5"), ("", "")])
def test_csv_cells_cannot_be_formulas(text, safe):
    assert csv_cell(text) == safe and csv_text(safe) == text
    assert csv_cell(-0.5) == -0.5


def test_manifest_trial_lists_and_weights_csv_escape_formulas(tmp_path, capsys):
    speech = load_wav(DEMO_AUDIO)
    for name in ("=cmd.wav", "@sum.wav"):
        save_wav(Audio(speech.samples[: speech.sample_rate // 2], speech.sample_rate), tmp_path / name)
    design = tmp_path / "design.csv"
    design.write_text("# size: 32x32\n# fps: 10\nid,audio\na,=cmd.wav\nb,@sum.wav\n")
    out = tmp_path / "out"
    assert main(["stimuli", str(design), "-o", str(out), "-q", "--weights-csv"]) == 0
    with open(out / "manifest.csv", newline="") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert "'=cmd.wav" in cells and "'@sum.wav" in cells
    assert not [c for c in cells if c.startswith(("=", "+", "@")) or (c.startswith("-") and not _number(c))]
    assert main(["trials", str(out / "manifest.csv"), "--participants", "2", "--seed", "1"]) == 0
    with open(out / "trials" / "participant_001.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["audio"] for r in rows) == ["'=cmd.wav", "'@sum.wav"]
    assert main(["trials", str(out / "manifest.json"), "--participants", "2", "--seed", "1",
                 "-o", str(out / "from_json")]) == 0  # beside trials/, so the clips' relative paths are the same
    assert (out / "from_json" / "participant_001.csv").read_text() == \
        (out / "trials" / "participant_001.csv").read_text()  # the CSV manifest read back is the same


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_a_render_that_shows_nothing_is_an_error_not_a_blank_video(tmp_path, capsys):
    gaussians = read_ply(DEMO_AVATAR / "point_cloud.ply")
    gaussians.opacities = gaussians.opacities * 0 + 1e-4  # every Gaussian under alpha's 1/255 floor
    folder = tmp_path / "avatar"
    write_ply(gaussians, folder / "point_cloud.ply")
    (folder / "flame_param.npz").write_bytes((DEMO_AVATAR / "flame_param.npz").read_bytes())
    out = tmp_path / "blank.mp4"
    assert main(["render", "--avatar", str(folder), "--flame", str(DEMO_AVATAR.parent / "flame_demo.npz"),
                 "--duration", "0.1", "--size", "32x32", "-q", "-o", str(out)]) == 2
    assert "nothing of the avatar is visible" in one_error_line(capsys)
    assert not out.exists() and not temporaries(tmp_path)


def test_posed_gaussians_that_overflow_stop_the_render_naming_the_avatar():
    from avatar_app.avatar import SIGNAL_DEMO_SOURCE
    from avatar_app.clip import Clip
    from avatar_app.player import Player
    from models.rig.flame import FlameParams

    player = Player(SIGNAL_DEMO_SOURCE.load(), backend="cpu")
    player.view.width = player.view.height = 32
    motion = FlameParams.neutral(3)
    motion.jaw_pose[1] = 1e30  # finite, but smplx's Rodrigues squares it (what loaders now refuse)
    player.clip = Clip(30.0, 3, motion=motion, origin="take.npz")
    with pytest.raises(InputError, match=r"point_cloud.ply: frame 1 of take.npz .* infinite or undefined"):
        list(player.render_range(0, 3))


def test_the_app_closes_cleanly_on_sigterm(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TMPDIR": str(scratch), "HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    process = subprocess.Popen([sys.executable, "-m", "avatar_app.cli", "app", "--demo"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(scratch.glob("avatar-app-audio-*")), process)
        time.sleep(3.0)  # the window is up and playing
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 143
    finally:
        process.kill()
    assert not list(scratch.glob("avatar-*"))  # its temporary audio folder went with it


def test_the_demo_refuses_a_flame_model_it_would_ignore(tmp_path, capsys):
    assert main(RENDER + ["--flame", str(DEMO_AVATAR.parent / "flame_demo.npz"), "-o", str(tmp_path / "x.mp4")]) == 2
    assert "the demo head has its own FLAME model" in one_error_line(capsys)
