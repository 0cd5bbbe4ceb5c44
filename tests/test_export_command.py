"""`avatar export`: run as the real command in a subprocess, its files hold the performance a
render of the same command line records (emotions + keyframes from a preset, gains, living
layers), judged by rendering from the exported files; bad input is one line, exit 2."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from assets import DEMO_AUDIO
from avatar_app.cli import main
from avatar_app.player import Performance
from avatar_app.preset import save_preset
from models.rig.emotion import EmotionTrack, Keyframe

ROOT = Path(__file__).resolve().parents[1]
# emotions without surprise or fear: the living layers then do not depend on the emotions
# (no widened-eye apex), so a render driven by the exported weights has the same layers
LIVING = ["--blink", "1", "--gaze", "1", "--head-motion", "1", "--seed", "5"]
TIMING = ["--audio", str(DEMO_AUDIO), "--fps", "25", "--duration", "0.32"]  # 8 frames


def avatar(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "avatar_app.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def frames(folder: Path) -> np.ndarray:
    return np.stack([iio.imread(path) for path in sorted(folder.glob("*.png"))])


@pytest.fixture(scope="module")
def performance(tmp_path_factory) -> tuple[Path, list[str]]:
    """A preset (mix, keyframes, gains) and the command line options of the performance."""
    folder = tmp_path_factory.mktemp("export")
    track = EmotionTrack((Keyframe(0.0, {"happy": 0.9}), Keyframe(0.3, {"sad": 0.8, "angry": 0.4})))
    save_preset(Performance(emotions={"happy": 0.5}, speech_gain=1.4, expression_gain=0.7, keyframes=track),
                folder / "preset.json")
    return folder, ["--demo", "--preset", str(folder / "preset.json"), *TIMING, *LIVING]


def render(folder: Path, *options: str) -> np.ndarray:
    assert main(["render", *options, "--size", "96x96", "-q", "-o", str(folder)]) == 0
    return frames(folder)


def test_exported_motion_and_weights_render_the_same_frames(performance):
    folder, options = performance
    for kind, name in (("motion", "motion.npz"), ("weights", "clip.weights.npz")):
        done = avatar("export", kind, *options, "-o", name, cwd=folder)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"wrote {name}: 8 frames at 25 fps")
    recorded = render(folder / "recorded", *options)
    assert len(recorded) == 8 and recorded.std() > 0
    # the motion replayed with nothing added (gains 0, no layers): the same FLAME → the same pixels
    from_motion = render(folder / "from_motion", "--demo", "--motion", str(folder / "motion.npz"),
                         "--speech-gain", "0", "--expression-gain", "0", "--blink", "0", "--gaze", "0",
                         "--head-motion", "0")
    np.testing.assert_array_equal(from_motion, recorded)
    # the weights replayed with no emotions, gains 1, the same audio (speech energy) and layers
    from_weights = render(folder / "from_weights", "--demo", "--weights", str(folder / "clip.weights.npz"),
                          "--audio", str(DEMO_AUDIO), "--fps", "25", *LIVING)
    np.testing.assert_array_equal(from_weights, recorded)
    # and the performance matters: without the preset the frames differ
    plain = render(folder / "plain", "--demo", *TIMING, *LIVING)
    assert np.abs(plain.astype(int) - recorded).max() > 20


def test_weights_csv_holds_the_npz_values(performance):
    folder, options = performance
    assert avatar("export", "weights", *options, "-o", "clip.csv", cwd=folder).returncode == 0
    if not (folder / "clip.weights.npz").exists():
        assert avatar("export", "weights", *options, "-o", "clip.weights.npz", cwd=folder).returncode == 0
    table = np.genfromtxt(folder / "clip.csv", delimiter=",", names=True)
    saved = np.load(folder / "clip.weights.npz")
    np.testing.assert_allclose(table["time"], np.arange(8) / 25, atol=1e-9)
    np.testing.assert_allclose(table["jaw_open"], saved["speech"][:, 0], rtol=1e-6, atol=1e-8)
    # a second export replaces its own file
    assert avatar("export", "weights", *options, "-o", "clip.csv", cwd=folder).returncode == 0


def test_arkit_curves_solve_the_exported_motion_in_the_head_frame(performance):
    """The curves are the solve of the face the render poses (the exported motion, shown above to
    render the same frames) with the head's own rotation taken out: posed in the head frame
    minus the neutral head, onto the demo's target shapes."""
    from dataclasses import replace

    import torch

    from assets import DEMO_ARKIT_SHAPES
    from avatar_app.avatar import load_demo
    from models.rig.arkit import ARKIT_NAMES, load_arkit_shapes, solve_arkit
    from models.rig.flame import FlameParams, load_flame_params

    folder, options = performance
    for name in ("take.json", "motion.npz"):
        if not (folder / name).exists():
            done = avatar("export", "arkit" if name.endswith("json") else "motion", *options, "-o", name, cwd=folder)
            assert done.returncode == 0, done.stderr
    take = json.loads((folder / "take.json").read_text())
    assert take["names"] == list(ARKIT_NAMES) and take["fps"] == 25 and len(take["frames"]) == 8
    exported = np.array([[frame["blendShapes"][n] for n in ARKIT_NAMES] for frame in take["frames"]])

    demo = load_demo()
    motion = load_flame_params(folder / "motion.npz")
    assert np.abs(motion.neck_pose).max() > 1e-3  # the head moves: taken out below
    zero = np.zeros((8, 3), np.float32)
    with torch.no_grad():
        face = demo.rig(replace(motion, rotation=zero, neck_pose=zero, translation=zero))
        neutral = demo.rig(FlameParams.neutral(1, demo.params.shape, demo.params.static_offset))
    shapes = load_arkit_shapes(DEMO_ARKIT_SHAPES, demo.rig.num_vertices)
    solve = solve_arkit(shapes, (face - neutral).numpy())
    # the solver iterates to a tolerance: float32 rounding of the mesh (thread counts differ between the
    # command and this test) moves its answer by a few 1e-4
    np.testing.assert_allclose(exported, solve.weights, atol=2e-3)
    assert exported.max() > 0.05
    # each frame's fit residual is reported with it
    np.testing.assert_allclose([frame["residual_mm"] for frame in take["frames"]], solve.residual_mm, atol=0.01)


@pytest.mark.parametrize("args, message", [
    (["weights", "--demo", "-o", "w.txt"], "-o w.txt: the weights file must end in .csv or .npz"),
    (["motion", "--demo", "-o", "user.npz"], "user.npz: the file exists and was not made by avatar"),
    (["arkit", "--avatar", "somewhere", "-o", "t.csv"], "--arkit-shapes FILE is needed"),
    (["arkit", "--demo", "--format", "json", "-o", "t.csv"], "-o t.csv: --format json writes a .json file"),
    (["arkit", "--demo", "--arkit-shapes", "nan.npz", "-o", "t.csv"], "nan.npz"),
    (["motion", "--demo", "--emotion", "joyful=2", "-o", "m.npz"], "intensity 2 is outside 0..1"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    (tmp_path / "user.npz").write_bytes(b"not ours")
    np.savez(tmp_path / "nan.npz", eyeBlinkLeft=np.full((3, 3), np.nan, np.float32))
    done = avatar("export", *args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("avatar: error: ") and message in lines[0], done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.npz", "user.npz"]


def test_glb_generator_marks_our_files(tmp_path):
    """is_our_export reads a glb's asset.generator from the JSON chunk the glTF spec lays out."""
    from avatar_app.exports.player_files import is_our_export

    def glb(generator: str) -> bytes:
        text = json.dumps({"asset": {"version": "2.0", "generator": generator}}).encode()
        text += b" " * (-len(text) % 4)
        return (b"glTF" + (2).to_bytes(4, "little") + (20 + len(text)).to_bytes(4, "little")
                + len(text).to_bytes(4, "little") + b"JSON" + text)

    (tmp_path / "ours.glb").write_bytes(glb("talking-head-studio 0.1"))
    (tmp_path / "theirs.glb").write_bytes(glb("Khronos glTF Blender I/O"))
    assert is_our_export(tmp_path / "ours.glb") and not is_our_export(tmp_path / "theirs.glb")


def test_stimulus_exports_are_recorded_with_their_hashes_and_equal_the_command(tmp_path, capsys):
    import hashlib

    from models.rig.flame import load_flame_params

    design = tmp_path / "design.csv"
    design.write_text("# size: 32x32\n# fps: 10\n# end: 0.5\n# head_motion: 1\n"
                      "id,audio,emotion,exports\n"
                      f"talk,{DEMO_AUDIO},happy=0.6,livelink;motion;weights\n"
                      f"plain,{DEMO_AUDIO},,\n")
    assert main(["stimuli", str(design), "-o", str(tmp_path / "study"), "--loudness", "off", "-q"]) == 0
    talk, plain = json.loads((tmp_path / "study" / "manifest.json").read_text())["stimuli"]
    assert set(plain["outputs"]) == {"mp4"} and "exports" not in plain["parameters"]
    assert set(talk["outputs"]) == {"mp4", "export_livelink", "export_motion", "export_weights"}
    assert talk["parameters"]["exports"] == "livelink;motion;weights"
    assert "arkit_shapes" in talk["inputs"]
    for output in talk["outputs"].values():
        data = (tmp_path / "study" / output["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == output["sha256"]
    assert talk["outputs"]["export_livelink"]["file"] == "talk.livelink.csv"
    with open(tmp_path / "study" / "manifest.csv", newline="") as handle:
        rows = {row["id"]: row for row in csv.DictReader(handle)}
    assert rows["talk"]["exports_sha256"].split(";")[0] == f"talk.livelink.csv={talk['outputs']['export_livelink']['sha256']}"
    assert rows["talk"]["exports"] == "livelink;motion;weights" and rows["plain"]["exports_sha256"] == ""
    # the same performance from `avatar export`: the same FLAME motion
    done = avatar("export", "motion", "--demo", "--audio", str(DEMO_AUDIO), "--duration", "0.5", "--fps", "10",
                  "--emotion", "happy=0.6", "--head-motion", "1", "--blink", "0", "--gaze", "0", "-o", "m.npz",
                  cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ours, theirs = (load_flame_params(path) for path in (tmp_path / "m.npz", tmp_path / "study" / "talk.motion.npz"))
    for key in ("expr", "jaw_pose", "neck_pose", "eyes_pose", "eyelids"):
        np.testing.assert_array_equal(getattr(theirs, key), getattr(ours, key))
    # a rerun keeps them; an unknown kind is a design problem naming its row
    assert main(["stimuli", str(design), "-o", str(tmp_path / "study"), "--loudness", "off", "-q"]) == 0
    assert "0 made, 2 skipped" in capsys.readouterr().out
    design.write_text(design.read_text().replace("livelink;motion;weights", "livelink;fbx"))
    assert main(["stimuli", str(design), "-o", str(tmp_path / "refused"), "-q"]) == 2
    assert "exports: 'fbx': use livelink, arkit, gltf, motion, weights" in capsys.readouterr().err
