"""`avatar stimuli` and `avatar trials` end to end on the demo: the files and the manifest,
reruns that skip, a killed batch, reproducible frames, loudness, validation and trial lists."""
import csv
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from assets import DEMO_AUDIO
from avatar_app.avatar import LEARNED_DEMO_SOURCE, SIGNAL_DEMO_SOURCE
from avatar_app.cli import main
from avatar_app.clip import ClipSource, still_clip
from avatar_app.player import Player
from avatar_app.stimuli.design import expand_factorial, merged_defaults, read_design
from avatar_app.stimuli.resolve import resolve
from avatar_app.stimuli.trials import StimulusEntry, trial_lists, williams_square
from common.errors import InputError
from models.audio.loudness import LoudnessTarget, integrated_loudness, rms_level
from models.audio.sources import Audio, load_wav, read_all, save_wav
from models.rig.flame import save_flame_params
from tests.processes import ctrl_c_reaches_it
from tests.stimuli_runs import broken_avatar, manifest, stimuli

RATE = 16000
DESIGN = """\
# size: 48x48
# fps: 10
## three clips: two speaking at very different levels, one still face
id,audio,emotion,intensity,lead_in,lead_out,view,end
quiet_happy,quiet.wav,happy,0.8,0.3,0.2,front,
loud_sad,loud.wav,sad=0.5;angry=0.2,,,,30/5,
still_surprised,,surprised,,0.2,,three-quarter left,0.5
"""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    speech = load_wav(DEMO_AUDIO).samples
    save_wav(Audio(0.1 * speech[:int(0.8 * RATE)], RATE), folder / "quiet.wav")   # ~19 dB apart
    save_wav(Audio(0.9 * speech[RATE:int(1.8 * RATE)], RATE), folder / "loud.wav")
    (folder / "design.csv").write_text(DESIGN)
    return folder


@pytest.fixture(scope="module")
def made(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("made") / "out"
    assert stimuli(inputs / "design.csv", "-o", out, "--png", "--weights-csv") == 0
    return out


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def decoded_frames(path):
    """SHA-256 of each frame as ffmpeg decodes the MP4."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = reader.__next__()
    return [hashlib.sha256(frame).hexdigest() for frame in reader], meta


def decoded_audio(path):
    """The MP4's soundtrack decoded by ffmpeg to 16 kHz mono float."""
    raw = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1",
                          "-ar", str(RATE), "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.float32)


def test_outputs_match_the_manifest(made, inputs):
    document = manifest(made)
    records = {r["id"]: r for r in document["stimuli"]}
    assert list(records) == ["quiet_happy", "loud_sad", "still_surprised"]
    assert document["design"]["sha256"] == sha256(inputs / "design.csv")
    expected_frames = {"quiet_happy": 3 + 8 + 2, "loud_sad": 8, "still_surprised": 2 + 5}
    for name, record in records.items():
        assert record["status"] == "ok" and record["backend"] == "cpu"
        assert record["frames"] == expected_frames[name] and record["duration"] == pytest.approx(record["frames"] / 10)
        for kind, output in record["outputs"].items():
            assert sha256(made / output["file"]) == output["sha256"]
        assert set(record["outputs"]) == {"mp4", "png", "weights_csv"}
        frames, meta = decoded_frames(made / record["outputs"]["mp4"]["file"])
        assert len(frames) == record["frames"] and meta["size"] == (48, 48) and meta["fps"] == 10
        assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
        assert record["inputs"]["point_cloud"]["sha256"] == sha256(record["inputs"]["point_cloud"]["path"])
        assert record["software"]["talking-head-studio"]
    assert records["quiet_happy"]["parameters"]["emotion_mix"] == "happy=0.8"
    assert records["loud_sad"]["parameters"]["yaw"] == 30 and records["loud_sad"]["parameters"]["pitch"] == 5
    assert records["still_surprised"]["parameters"]["yaw"] == 35
    with open(made / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == list(records)
    assert all(r["mp4_sha256"] == records[r["id"]]["outputs"]["mp4"]["sha256"] for r in rows)
    assert rows[0]["emotion"] == "happy" and rows[0]["intensity"] == "0.8" and rows[0]["audio"] == "quiet.wav"
    assert not [p for p in made.iterdir() if p.name.startswith(".") and p.is_file()]  # no temporaries


def test_lead_in_and_out_are_the_still_neutral_face_with_silence(made, inputs):
    with open(made / "quiet_happy.weights.csv", newline="") as handle:
        table = np.array([[float(v) for v in row] for row in list(csv.reader(handle))[1:]])
    assert len(table) == 13 and np.allclose(table[:, 0], np.arange(13) / 10)
    assert not table[:3, 1:].any() and not table[-2:, 1:].any()      # lead-in, lead-out: all weights 0
    assert np.abs(table[3:11, 1:]).sum(1).min() > 0                    # the clip itself is emoting
    # the rendered frames are: the neutral still ×3, the clip as the player renders it, the still ×2
    player = Player(LEARNED_DEMO_SOURCE.load(), backend="cpu")
    player.view.width = player.view.height = 48
    player.clip = still_clip(0.1, 10)
    neutral = player.render_frame(0)
    player.set_emotions({"happy": 0.8})
    source = ClipSource(audio=inputs / "quiet.wav", loudness=LoudnessTarget(-23, "LUFS"))
    player.clip = source.build(player.driver, player.avatar.blendshapes, 10)
    clip = list(player.render_range(0, 8))
    digest = hashlib.sha256(b"".join(f.tobytes() for f in [neutral] * 3 + clip + [neutral] * 2)).hexdigest()
    assert manifest(made)["stimuli"][0]["frames_sha256"] == digest
    assert min(np.abs(frame.astype(int) - neutral).max() for frame in clip) > 5  # the happy face shows
    audio = decoded_audio(made / "quiet_happy.mp4")
    lead, speech = audio[:int(0.25 * RATE)], audio[int(0.35 * RATE):int(1.05 * RATE)]
    assert np.sqrt(np.mean(lead ** 2)) < 1e-3 < np.sqrt(np.mean(speech ** 2))


def test_loudness_brings_different_levels_to_the_target(made):
    records = {r["id"]: r for r in manifest(made)["stimuli"]}
    quiet, loud = records["quiet_happy"], records["loud_sad"]
    assert quiet["loudness_in"] - loud["loudness_in"] < -15            # the inputs differ a lot
    for record, lead in ((quiet, 0.3), (loud, 0.0)):
        audio = decoded_audio(made / record["outputs"]["mp4"]["file"])[int(lead * RATE):int((lead + 0.8) * RATE)]
        assert integrated_loudness(Audio(audio, RATE)) == pytest.approx(-23.0, abs=0.5)
        assert record["clipped_samples"] == 0 and record["parameters"]["loudness_target"] == "-23 LUFS"


def test_rerun_skips_and_redoes_only_what_changed(made, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(made, out)
    before = (out / "manifest.json").read_bytes()
    times = {p.name: p.stat().st_mtime_ns for p in out.glob("[!.]*")}
    capsys.readouterr()
    assert stimuli(inputs / "design.csv", "-o", out, "--png", "--weights-csv") == 0
    assert "0 made, 3 skipped, 0 failed" in capsys.readouterr().out
    assert (out / "manifest.json").read_bytes() == before
    (out / "loud_sad.mp4").unlink()
    assert stimuli(inputs / "design.csv", "-o", out, "--png", "--weights-csv") == 0
    assert "1 made, 2 skipped" in capsys.readouterr().out
    untouched = [p for p in out.glob("[!.]*") if not p.name.startswith(("loud_sad", "manifest"))]
    assert len(untouched) == 6 and all(p.stat().st_mtime_ns == times[p.name] for p in untouched)
    changed = inputs / "changed.csv"  # one row's emotion differs: only that row is made again
    changed.write_text(DESIGN.replace("surprised,,0.2", "fearful,,0.2"))
    assert stimuli(changed, "-o", out, "--png", "--weights-csv") == 0
    assert "1 made, 2 skipped" in capsys.readouterr().out
    assert manifest(out)["stimuli"][2]["parameters"]["emotion_mix"] == "fearful=1"
    fewer = inputs / "fewer.csv"  # a row dropped from the design: its old files are pointed out
    fewer.write_text(DESIGN.rsplit("still_surprised", 1)[0])
    assert stimuli(fewer, "-o", out, "--png", "--weights-csv") == 0
    assert "also holds 1 stimuli made earlier that are not in this design (nor in the manifest): still_surprised" \
        in capsys.readouterr().out
    assert [r["id"] for r in manifest(out)["stimuli"]] == ["quiet_happy", "loud_sad"]


def test_one_batch_at_a_time_per_folder(inputs, tmp_path, capsys):
    fcntl = pytest.importorskip("fcntl")
    out = tmp_path / "out"
    (out / ".avatar-stimuli").mkdir(parents=True)
    with open(out / ".avatar-stimuli" / "lock", "w") as held:  # as a running batch holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        assert stimuli(inputs / "design.csv", "-o", out) == 2
    assert "another `avatar stimuli` is writing there" in capsys.readouterr().err
    assert not list(out.glob("*.mp4"))


def test_same_design_again_with_two_workers_gives_the_same_frames(made, inputs, tmp_path):
    out = tmp_path / "again"
    assert stimuli(inputs / "design.csv", "-o", out, "--png", "--weights-csv", "--workers", "2") == 0
    first, second = manifest(made), manifest(out)
    for a, b in zip(first["stimuli"], second["stimuli"]):
        assert decoded_frames(made / a["outputs"]["mp4"]["file"])[0] == decoded_frames(out / b["outputs"]["mp4"]["file"])[0]
        assert a["frames_sha256"] == b["frames_sha256"]
        a.pop("rendered_at"), b.pop("rendered_at")
    assert first == second  # the same manifest apart from timestamps


def test_a_killed_batch_leaves_no_partial_file_and_a_rerun_completes_it(inputs, tmp_path):
    design = tmp_path / "long.csv"
    rows = [f"clip{i},{inputs / ('loud.wav' if i % 2 else 'quiet.wav')},happy={i / 5:g}" for i in range(5)]
    design.write_text("# size: 64x64\n# fps: 25\nid,audio,emotion\n" + "\n".join(rows) + "\n")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "avatar_app.cli", "stimuli", str(design), "-o", str(out), "-q",
               "--loudness=-20dBFS"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:  # kill it while a clip after the first is being written
        while time.monotonic() < deadline and process.poll() is None:
            done = list((out / ".avatar-stimuli").glob("*.json")) if out.exists() else []
            if done and list(out.glob(".*.partial*")):
                break
            time.sleep(0.02)
        assert process.poll() is None, "the batch ended before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    finished = list(out.glob("[!.]*.mp4"))
    assert 1 <= len(finished) < 5
    for mp4 in finished:  # every file under a final name is complete
        assert len(decoded_frames(mp4)[0]) == 20
    assert stimuli(design, "-o", out, "--loudness=-20dBFS") == 0
    records = manifest(out)["stimuli"]
    assert [r["status"] for r in records] == ["ok"] * 5
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.is_file()]
    for record in records:  # RMS targets work too
        audio = decoded_audio(out / record["outputs"]["mp4"]["file"])[:int(0.8 * RATE)]
        assert rms_level(Audio(audio, RATE)) == pytest.approx(-20.0, abs=0.5)


def bar_counts(text):
    """The frame counts a progress bar showed ("12/95"), in order."""
    return [int(done) for done, total in re.findall(r"\| *(\d+)/(\d+) \[", text)]


def test_the_manifest_grows_as_the_batch_goes_and_trials_use_what_is_made(inputs, tmp_path, capsys):
    design = tmp_path / "growing.csv"  # 5 + 80 + 10 frames; the long one is stopped halfway
    design.write_text(f"# size: 32x32\n# fps: 10\nid,audio,end,lead_in,lead_out\nshort,,0.3,0.2,\nlong,,8,,\n"
                      f"spoken,{inputs / 'quiet.wav'},,,0.2\n")
    out, log = tmp_path / "out", tmp_path / "stderr.txt"
    command = [sys.executable, "-m", "avatar_app.cli", "stimuli", str(design), "-o", str(out), "--workers", "2"]
    finished = {0, 5, 10, 15, 80, 85, 90, 95}  # bar counts made of whole stimuli only
    with open(log, "w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, preexec_fn=ctrl_c_reaches_it)
    deadline, partial = time.monotonic() + 180, None
    try:  # Ctrl-C once the short one is made and a worker has reported frames of one in progress
        while time.monotonic() < deadline and process.poll() is None:
            if (out / "manifest.json").is_file():
                partial = manifest(out)
                if partial["stimuli"][0]["status"] == "ok" and set(bar_counts(log.read_text())) - finished:
                    break
            time.sleep(0.02)
        assert process.poll() is None, "the batch ended before it could be stopped"
        os.kill(process.pid, signal.SIGINT)
        assert process.wait(60) == 130
    finally:
        if process.poll() is None:
            process.kill()
    progress = log.read_text()
    assert bar_counts(progress)[0] == 0 and " 0/95 [" in progress and "frame/s" in progress
    assert "stopped: 1 of 3 stimuli are made" in progress or "stopped: 2 of 3 stimuli are made" in progress
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.is_file()]  # no temporaries
    statuses = [r["status"] for r in partial["stimuli"]]
    assert statuses[:2] == ["ok", "pending"] and statuses[2] in ("ok", "pending")
    assert partial["stimuli"][1]["parameters"]["end"] == 8 and "outputs" not in partial["stimuli"][1]
    assert [r["status"] for r in manifest(out)["stimuli"]][:2] == ["ok", "pending"]
    with open(out / "manifest.csv", newline="") as handle:
        assert [r["status"] for r in csv.DictReader(handle)][:2] == ["ok", "pending"]
    assert main(["trials", str(out / "manifest.json"), "--participants", "2", "--seed", "1"]) == 0
    said = capsys.readouterr().out
    assert "stimuli are not made yet (the batch is running or was stopped): long" in said
    settings = json.loads((out / "trials" / "settings.json").read_text())
    assert "long" in settings["pending"]
    with open(out / "trials" / "participant_001.csv", newline="") as handle:
        assert "long" not in {r["id"] for r in csv.DictReader(handle)}
    # the same command again makes the rest, its bar counting the frames of each as they render
    assert main(["stimuli", str(design), "-o", str(out)]) == 0
    said = capsys.readouterr()
    assert "0 failed" in said.out and "already made and unchanged: skipped" in said.out
    counts = bar_counts(said.err)
    assert counts[-1] in (90, 80) and set(counts) - {0, 10, 80, 90}
    final = manifest(out)
    assert [r["status"] for r in final["stimuli"]] == ["ok"] * 3
    assert final["stimuli"][0] == partial["stimuli"][0]  # the made one, as the partial manifest had it
    assert main(["trials", str(out / "manifest.json"), "--participants", "2", "--seed", "1"]) == 0
    assert "warning" not in capsys.readouterr().out


def test_a_failing_row_is_reported_and_the_others_are_made(inputs, tmp_path, capsys):
    broken = broken_avatar(tmp_path)
    design = tmp_path / "design.csv"
    design.write_text(f"id,avatar,end\nbad,{broken},0.3\ngood,demo,0.3\n")
    assert stimuli(design, "-o", tmp_path / "out", "--set", "size=32x32") == 1
    records = {r["id"]: r for r in manifest(tmp_path / "out")["stimuli"]}
    assert records["good"]["status"] == "ok" and (tmp_path / "out" / "good.mp4").is_file()
    assert records["bad"]["status"] == "failed" and "point_cloud.ply" in records["bad"]["error"]
    assert "failed: bad:" in capsys.readouterr().out
    assert main(["trials", str(tmp_path / "out" / "manifest.json"), "--participants", "2", "--seed", "1"]) == 2
    assert "1 stimuli failed (bad); see each one's error" in capsys.readouterr().err
    assert main(["trials", str(tmp_path / "out" / "manifest.json"), "--participants", "2", "--seed", "1"]) == 2


def test_every_design_problem_is_reported_with_its_row(inputs, tmp_path, capsys):
    design = tmp_path / "bad.csv"
    design.write_text(
        "# size: 48x48\n"
        "# colour: red\n"
        "id,audio,emotion,end,start,view,size,speed\n"
        f"a,{inputs / 'quiet.wav'},happy,,,,,\n"
        f"a,{inputs / 'quiet.wav'},joyful=0.5,,,,,\n"
        "c,missing.wav,,,,,,\n"
        f"d,{inputs / 'quiet.wav'},,0.2,0.5,,,\n"
        f"e,{inputs / 'quiet.wav'},,5,,,,\n"
        f"f,{inputs / 'quiet.wav'},,,2,sideways,47x48,\n"
        ",,sad,1,,,,\n"
    )
    out = tmp_path / "out"
    assert stimuli(design, "-o", out) == 2
    err = capsys.readouterr().err
    expected = [
        "line 2: default for an unknown column 'colour'",
        "line 3: unknown column 'speed'",
        "row 2 (line 5): emotion: unknown emotion 'joyful'",
        "row 3 (line 6): audio: missing.wav: no such file",
        "row 4 (line 7): end 0.2 s: must come after start 0.5 s",
        "row 5 (line 8): audio: the segment 0..5 s does not lie inside the source",
        "row 6 (line 9): audio: the segment 2..",
        "row 6 (line 9): view: 'sideways' is neither a view",
        "row 6 (line 9): size: size 47x48: MP4 (yuv420p) needs an even width and height",
        "row 7 (line 10): id: missing",
        "id 'a' is used by row 1 (line 4), row 2 (line 5)",
    ]
    for message in expected:
        assert message in err, message
    assert f"the design has {len(expected)} problems" in err
    assert not out.exists()  # nothing rendered


def test_yaml_design_defaults_and_command_line(inputs, tmp_path):
    (tmp_path / "design.yaml").write_text(
        "defaults:\n  size: 64x64\n  fps: 25\n  emotion: {happy: 0.5, surprised: 0.25}\n"
        "stimuli:\n"
        f"  - id: one\n    audio: {inputs / 'quiet.wav'}\n"
        "  - id: two\n    end: 0.5\n    view: [20, -10, 1.5]\n    emotion: sad\n"
        "  - id: three\n    end: 0.5\n    fps: 0\n"
    )
    design = read_design(tmp_path / "design.yaml")
    defaults = merged_defaults(design, {"fps": "20"})
    with pytest.raises(Exception, match=r"row 3 \(line 12\): fps: 0 is outside 1..240"):
        resolve(design, defaults, None)
    design.rows.pop()
    one, two = resolve(design, defaults, LoudnessTarget(-23, "LUFS"))
    assert one.emotions == {"happy": 0.5, "surprised": 0.25} and two.emotions == {"sad": 1.0}
    assert (one.fps, one.view.width, two.view.yaw, two.view.pitch, two.view.distance) == (20, 64, 20, -10, 1.5)
    assert one.clip.audio == inputs / "quiet.wav" and two.clip.duration == 0.5


def test_factorial_expands_rows_and_writes_the_design(inputs, tmp_path, monkeypatch):
    monkeypatch.chdir(inputs)  # factor levels that are paths are relative to the working folder
    out = tmp_path / "out"
    assert stimuli("--factorial", "emotion=happy,sad", "intensity=0.5,1", "audio=quiet.wav,loud.wav",
                   "--set", "size=32x32", "end=0.4", "-o", out, "--check") == 0
    design = read_design(out / "design.csv")
    rows = resolve(design, merged_defaults(design), None)
    assert [s.id for s in rows][:3] == ["happy_0.5_quiet", "happy_0.5_loud", "happy_1_quiet"]
    assert len(rows) == 8 and {tuple(s.emotions.items()) for s in rows} == {
        (("happy", 0.5),), (("happy", 1.0),), (("sad", 0.5),), (("sad", 1.0),)}
    assert {s.clip.audio.resolve() for s in rows} == {inputs / "quiet.wav", inputs / "loud.wav"}
    assert all(s.view.width == 32 and s.clip.duration == 0.4 for s in rows)
    crossed = expand_factorial(read_design(inputs / "design.csv"), ["speech_gain=0.5,1.5"])
    assert [r.values["id"] for r in crossed.rows][:2] == ["quiet_happy_0.5", "quiet_happy_1.5"]


@pytest.mark.parametrize("n", range(2, 8))
def test_williams_square_is_a_balanced_latin_square(n):
    square = np.array(williams_square(n))
    assert square.shape == (n if n % 2 == 0 else 2 * n, n)
    for column in square.T:  # every symbol in every position equally often
        assert np.all(np.bincount(column, minlength=n) == len(square) // n)
    pairs = np.zeros((n, n), int)  # every ordered neighbour pair equally often
    for row in square:
        assert sorted(row) == list(range(n))
        for a, b in zip(row, row[1:]):
            pairs[a, b] += 1
    off_diagonal = pairs[~np.eye(n, dtype=bool)]
    assert np.all(off_diagonal == off_diagonal[0]) and not np.diag(pairs).any()


def entries():
    return [StimulusEntry(f"{e}_{a}", f"{e}_{a}.mp4", {"emotion": e, "audio": a})
            for e in ("happy", "sad", "angry") for a in ("a.wav", "b.wav")]


@pytest.mark.parametrize("factor", [None, "emotion", "audio", "id"])
def test_trial_lists_are_balanced_and_reproducible(factor):
    stimuli_list = entries()
    lists = trial_lists(stimuli_list, 12, seed=7, factor=factor, repeats=2)
    for trials in lists:  # each condition equally often for each participant
        counts = {}
        for t in trials:
            counts[t.stimulus.id] = counts.get(t.stimulus.id, 0) + 1
        assert counts == {s.id: 2 for s in stimuli_list}
        assert [t.trial for t in trials] == list(range(1, 13))
    if factor is not None:  # block order: every level in every block position equally often
        levels = {s.id if factor == "id" else s.levels[factor] for s in stimuli_list}
        cycle = len(williams_square(len(levels)))
        orders = [list(dict.fromkeys(t.stimulus.id if factor == "id" else t.stimulus.levels[factor] for t in trials))
                  for trials in lists]
        assert all(len(order) == len(levels) for order in orders)
        for position in range(len(levels)):
            seen = [order[position] for order in orders[:cycle]]
            assert sorted(seen) == sorted(list(levels) * (cycle // len(levels)))
    again = trial_lists(stimuli_list, 12, seed=7, factor=factor, repeats=2)
    assert again == lists
    assert trial_lists(stimuli_list, 12, seed=8, factor=factor, repeats=2) != lists


def test_trials_command_writes_one_list_per_participant(made, tmp_path, capsys):
    args = ["trials", str(made / "manifest.json"), "--participants", "6", "--seed", "3", "--latin-square", "emotion"]
    assert main([*args, "-o", str(tmp_path / "a")]) == 0
    assert main([*args, "-o", str(tmp_path / "b")]) == 0
    files = sorted((tmp_path / "a").glob("participant_*.csv"))
    assert [p.name for p in files] == [f"participant_{i:03d}.csv" for i in range(1, 7)]
    settings = json.loads((tmp_path / "a" / "settings.json").read_text())
    assert settings["manifest_sha256"] == sha256(made / "manifest.json")
    assert (settings["participants"], settings["seed"], settings["latin_square"], settings["repeats"]) == \
        (6, 3, "emotion", 1)
    assert all(p.read_bytes() == (tmp_path / "b" / p.name).read_bytes() for p in files)
    with open(files[0], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["id"] for r in rows) == ["loud_sad", "quiet_happy", "still_surprised"]
    assert {"emotion", "audio", "view"} <= set(rows[0])
    assert all(not Path(r["file"]).is_absolute() and (tmp_path / "a" / r["file"]).samefile(made / f"{r['id']}.mp4")
               for r in rows)  # relative to the list's own folder
    assert "warning" not in capsys.readouterr().out  # 6 participants fill the 3-level square's cycle
    assert main(["trials", str(made / "manifest.csv"), "--participants", "2", "--seed", "3", "-o", str(tmp_path / "c")]) == 0
    assert main(["trials", str(made / "manifest.json"), "--participants", "2", "--seed", "3",
                 "--latin-square", "fps"]) == 2


def test_a_segment_cuts_weights_motion_and_audio_in_step(tmp_path):
    """start/end (and `avatar render --start/--duration`) cut every kind of source at the same
    time, checked against the uncut clip."""
    player = Player(SIGNAL_DEMO_SOURCE.load(), backend="cpu")
    bs = player.avatar.blendshapes
    player.clip = ClipSource(audio=DEMO_AUDIO).build(player.driver, bs, 30)
    player.weight_sequence().save(tmp_path / "w.weights.npz")
    save_flame_params(player.flame_params(0, player.clip.num_frames), tmp_path / "motion.npz")
    for kind in ("weights", "motion"):
        path = tmp_path / ("w.weights.npz" if kind == "weights" else "motion.npz")
        whole = ClipSource(audio=DEMO_AUDIO, **{kind: path}).build(player.driver, bs, 30)
        cut = ClipSource(audio=DEMO_AUDIO, start=1.0, duration=0.5, **{kind: path}).build(player.driver, bs, 30)
        assert cut.num_frames == 15
        if kind == "weights":
            np.testing.assert_allclose(cut.features.speech, whole.features.speech[30:45], atol=1e-6)
        else:
            np.testing.assert_array_equal(cut.motion.jaw_pose, whole.motion.jaw_pose[30:45])
        np.testing.assert_array_equal(read_all(cut.audio), read_all(whole.audio)[RATE:int(1.5 * RATE)])
    with pytest.raises(InputError, match="does not lie inside the source"):
        ClipSource(audio=DEMO_AUDIO, start=6.0, duration=5.0).check_trim()
    out = tmp_path / "cut.mp4"
    assert main(["render", "--demo", "--start", "1", "--duration", "0.5", "--loudness=-20dBFS", "--size", "32x32",
                 "-q", "-o", str(out)]) == 0
    assert len(decoded_frames(out)[0]) == 15
    assert rms_level(Audio(decoded_audio(out), RATE)) == pytest.approx(-20.0, abs=0.5)


def test_expression_space_column_is_checked_applied_and_recorded(tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tracked_avatar import write_tracked_avatar

    tracked = write_tracked_avatar(tmp_path / "avatar")
    design = tmp_path / "design.csv"
    design.write_text("# size: 32x32\n# fps: 10\n# driver: signal\n# end: 0.2\n"
                      "id,avatar,flame,blendshapes,expression_space\n"
                      f"inside,{tracked.avatar},{tracked.flame},{tracked.blendshapes},avatar\n"
                      "demo_inside,demo,,,avatar\n"
                      f"no_model,{tracked.avatar},{tracked.flame},,avatar\n"
                      "odd,demo,,,inside\n")
    assert stimuli(design, "-o", tmp_path / "refused") == 2
    err = capsys.readouterr().err
    assert "row 2 (line 7): expression_space: " in err and "the avatar has no tracked expressions" in err
    assert "row 3 (line 8): expression_space: " in err and "no blendshape model" in err
    assert "row 4 (line 9): expression_space: 'inside': use one of free, avatar" in err
    assert "the design has 3 problems" in err and not (tmp_path / "refused").exists()

    design.write_text("\n".join(design.read_text().splitlines()[:6]) + "\n")
    stimulus, = resolve(read_design(design), merged_defaults(read_design(design)), None)
    assert stimulus.performance.expression_space == "avatar"
    assert stimuli(design, "-o", tmp_path / "out") == 0
    record, = manifest(tmp_path / "out")["stimuli"]
    assert record["status"] == "ok" and record["parameters"]["expression_space"] == "avatar"


def test_camera_columns_set_the_view_size_and_manifest(tmp_path, capsys):
    from tests.test_camera_files import POSES, assert_camera, camera_json, vhap_transforms

    demo = Player(SIGNAL_DEMO_SOURCE.load(), backend="cpu")
    demo.set_view(width=64, height=40)
    front = demo.camera()  # a camera file at the demo's front view
    camera_json(tmp_path / "cam.json", front.viewmat.double().numpy(), front.K.double().numpy().tolist(), 64, 40)
    vhap_transforms(tmp_path / "transforms.json")
    design = tmp_path / "design.csv"
    design.write_text("# fps: 10\n# driver: signal\n# end: 0.2\nid,camera,camera_index,size,view\n"
                      "own_size,cam.json,,,\n"
                      "scaled,transforms.json,8,96x64,front\n"
                      "turned,cam.json,,,profile left\n"
                      "no_camera,,3,,\n"
                      "absent,transforms.json,99,,\n"
                      "missing,missing.json,,,\n")
    assert stimuli(design, "-o", tmp_path / "refused") == 2
    err = capsys.readouterr().err
    assert "row 3 (line 7): view: profile left with a camera: the camera file sets the view" in err
    assert "row 4 (line 8): camera_index: given without a camera" in err
    assert "row 5 (line 9): camera: no frame with camera_index 99 (the file has 0, 3, 8)" in err
    assert "row 6 (line 10): camera: missing.json: no such file" in err
    assert "the design has 4 problems" in err and not (tmp_path / "refused").exists()

    design.write_text("\n".join(design.read_text().splitlines()[:6]) + "\n")
    own, scaled = resolve(read_design(design), merged_defaults(read_design(design)), None)
    assert (own.view.width, own.view.height, own.camera, own.camera_index) == (64, 40, tmp_path / "cam.json", None)
    assert (scaled.view.width, scaled.view.height, scaled.camera_index) == (96, 64, 8)
    assert_camera(scaled.view.camera, POSES[8])
    design.write_text("\n".join(design.read_text().splitlines()[:5]) + "\n")
    assert stimuli(design, "-o", tmp_path / "out") == 0
    record, = manifest(tmp_path / "out")["stimuli"]
    parameters = record["parameters"]
    assert (parameters["camera"], parameters["camera_index"]) == (str(tmp_path / "cam.json"), None)
    assert (parameters["width"], parameters["height"], record["distance"]) == (64, 40, None)
    assert record["inputs"]["camera"]["sha256"] == sha256(tmp_path / "cam.json")
    frames, meta = decoded_frames(tmp_path / "out" / record["outputs"]["mp4"]["file"])
    assert meta["size"] == (64, 40) and len(frames) == 2
