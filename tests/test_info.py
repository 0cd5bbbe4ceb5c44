"""`avatar info`: every folder and file the studio reads or writes is described, from files
these tests make with the project's own writers and published layouts (a stimulus batch, a
generator checkpoint, GaussianAvatars transforms, a preset, a design), through the real
command; anything else gets one line listing what it can describe."""
import json
import math
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from assets import DEMO_BLENDSHAPES, DEMO_DIR, MODEL_DIR
from avatar_app.cli import main
from avatar_app.player import Performance
from avatar_app.preset import save_preset
from models.drivers.checkpoint import save_checkpoint
from models.drivers.generator import GeneratorConfig, SpeechGenerator
from models.learning.datasets import MeshSequence, write_florence, write_vocaset
from models.rig.blendshapes import BlendshapeModel
from models.rig.emotion import EmotionTrack, Keyframe
from tests.stimuli_runs import broken_avatar

REPO = Path(__file__).resolve().parent.parent


def avatar(*args: object) -> subprocess.CompletedProcess:
    """The real `avatar` command in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "avatar_app.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def info(capsys, path: Path) -> str:
    assert main(["info", str(path)]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def refused(capsys, path: Path) -> str:
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"avatar: error: {path}"), err
    return err


def test_demo_and_shipped_generator_through_the_real_command():
    demo = avatar("info", DEMO_DIR)
    assert demo.returncode == 0, demo.stderr
    lines = demo.stdout.splitlines()
    assert lines[0] == f"{DEMO_DIR}: demo folder (`avatar build-demo` writes it; the one `--demo` uses)"
    for name, what in (("flame_demo.npz", "FLAME model"), ("avatar/point_cloud.ply", "Gaussian avatar"),
                       ("blendshapes.npz", "blendshape model"), ("speech.wav", "audio, 16000 Hz")):
        assert any(line.startswith(f"  {DEMO_DIR / name}: {what}") for line in lines), (name, demo.stdout)

    config = json.loads((MODEL_DIR / "config.json").read_text())["config"]
    model = avatar("info", MODEL_DIR)
    assert model.returncode == 0, model.stderr
    text = model.stdout
    assert text.startswith(f"{MODEL_DIR}: speech generator")
    generator = config["generator"]
    for key, label in (("speech_names", "speech blendshapes"), ("expression_names", "expression blendshapes"),
                       ("emotion_names", "emotions")):
        names = generator[key]
        assert f"  {label} ({len(names)}): {', '.join(names)}\n" in text
    assert f"front-end: {'log-mel' if generator['front_end'] == 'mel' else 'frozen wav2vec2'}" in text
    assert f"{generator['layers']} dilated TCN layers of width {generator['width']}" in text


def demo_names() -> dict[str, tuple[str, ...]]:
    model = BlendshapeModel.load(DEMO_BLENDSHAPES)
    return {key: getattr(model, key) for key in ("speech_names", "expression_names", "emotion_names")}


def write_generator(folder: Path, state: dict | None = None, **settings: object) -> GeneratorConfig:
    """A small generator checkpoint as `avatar train-speech` writes it, driving the demo's model."""
    config = GeneratorConfig(**{**demo_names(), "width": 8, "layers": 2, **settings})
    save_checkpoint(folder, "speech-generator", {"generator": asdict(config), "training": {"batch": 4, "lr": 0.01}},
                    SpeechGenerator(config), state)
    shutil.copyfile(DEMO_BLENDSHAPES, folder / "blendshapes.npz")
    return config


def test_generator_folder_is_told_from_its_config(tmp_path, capsys):
    folder = tmp_path / "generator"
    write_generator(folder, {"step": 7, "optimizer": {}, "shown": {"loss": 0.5}})
    text = info(capsys, folder)
    names = demo_names()
    assert f"  emotions ({len(names['emotion_names'])}): {', '.join(names['emotion_names'])}\n" in text
    assert "network: 2 dilated TCN layers of width 8" in text and "trained with: batch 4, lr 0.01" in text
    assert "drives: blendshapes.npz (9106 vertices), the same names in the same order" in text
    assert "training_state.pt: stopped after step 7; the same command with --resume continues it" in text
    assert info(capsys, folder / "config.json") == text  # its config.json names the folder

    (folder / "model.safetensors").write_bytes(b"not weights")  # never loaded to describe the folder
    assert "weights: model.safetensors, 0.0 MiB (not loaded" in info(capsys, folder)
    (folder / "model.safetensors").unlink()
    assert "model.safetensors missing: an incomplete checkpoint" in info(capsys, folder)

    other = tmp_path / "other"
    write_generator(other, expression_names=names["expression_names"][:3])
    config = json.loads((other / "config.json").read_text())
    config["config"]["generator"].update(front_end="wav2vec2", wav2vec2_dir=str(tmp_path / "absent"))  # moved away
    (other / "config.json").write_text(json.dumps(config))
    text = info(capsys, other)
    assert f"front-end: frozen wav2vec2 from {tmp_path / 'absent'} (missing here" in text
    assert "drives: blendshapes.npz, which does not fit: the speech generator's expression names" in text
    assert "training_state.pt" not in text

    config["config"]["generator"]["width"] = 10**6  # checked as loading checks it
    (other / "config.json").write_text(json.dumps(config))
    assert "config.json: generator config: width 1000000 is not an integer in 1..2048" in refused(capsys, other)

    wav2vec2 = tmp_path / "wav2vec2"  # what a generator's wav2vec2 front-end loads (Hugging Face layout)
    wav2vec2.mkdir()
    (wav2vec2 / "config.json").write_text(json.dumps({"model_type": "wav2vec2", "hidden_size": 768}))
    assert info(capsys, wav2vec2 / "config.json") == (
        f"{wav2vec2}: a Hugging Face wav2vec2 model folder (save_pretrained layout); `avatar train-speech "
        "--front-end wav2vec2 --wav2vec2 DIR` takes it\n  hidden_size 768\n")


DESIGN = "# size: 32x32\n# fps: 10\nid,avatar,emotion,end\nhappy,demo,happy,0.3\nsad,demo,sad,0.3\nbad,{broken},,0.3\n"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A stimuli folder made by `avatar stimuli`: two rows made, one failed."""
    folder = tmp_path_factory.mktemp("study")
    broken = broken_avatar(folder)
    (folder / "design.csv").write_text(DESIGN.format(broken=broken))
    assert main(["stimuli", str(folder / "design.csv"), "-o", str(folder / "out"), "-q", "--backend", "cpu"]) == 1
    return folder


def test_stimuli_folder_and_manifest_through_the_real_command(study, tmp_path, capsys):
    out = study / "out"
    done = avatar("info", out)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith(f"{out}: stimuli folder (`avatar stimuli`)\n{out / 'manifest.json'}: stimulus manifest "
                           "(version 1), 3 row(s): 2 done, 1 failed\n")
    assert f"  design: {study / 'design.csv'} (sha256 " in text and "made with: backend cpu;" in text
    assert "  every row: width 32, height 32, fps 10.0, background #ffffff, loudness_target -23 LUFS," in text
    assert "  factors that vary: avatar (demo, " in text and "emotion (happy, sad, (none))" in text
    assert "  made: 6 frames, 0.6 s of video; files: mp4 2" in text
    assert "  failed: bad: " in text and "point_cloud.ply" in text
    assert "not made yet" not in text

    csv_text = info(capsys, out / "manifest.csv")
    assert csv_text.startswith(f"{out / 'manifest.csv'}: stimulus manifest (CSV, one flat row per stimulus), "
                               "3 row(s): 2 done, 1 failed\n  failed: bad\n")

    document = json.loads((out / "manifest.json").read_text())
    document["stimuli"][1] = {key: document["stimuli"][1][key] for key in ("id", "levels", "parameters")}
    document["stimuli"][1].update(status="pending", error=None)  # as a running batch writes it
    (tmp_path / "manifest.json").write_text(json.dumps(document))
    text = info(capsys, tmp_path / "manifest.json")
    assert "3 row(s): 1 done, 1 not made yet, 1 failed" in text or "3 row(s): 1 done, 1 failed, 1 not made yet" in text
    assert "  not made yet: sad (the batch is running, or was stopped: run it again to finish)" in text
    assert "  made: 3 frames," in text

    document["stimuli"] = [r for r in json.loads((out / "manifest.json").read_text())["stimuli"] if r["status"] == "ok"]
    (tmp_path / "made.json").write_text(json.dumps(document))
    assert main(["trials", str(tmp_path / "made.json"), "--participants", "3", "--seed", "1",
                 "-o", str(tmp_path / "trials")]) == 0
    capsys.readouterr()
    text = info(capsys, tmp_path / "trials")
    assert text.startswith(f"{tmp_path / 'trials'}: trial lists (`avatar trials`), 3 file(s) "
                           "(participant_001.csv..participant_003.csv)\n")
    assert "settings: participants 3, seed 1, latin_square None, repeats 1" in text
    assert "trial list of participant 1: 2 trial(s), 2 distinct stimuli" in text

    design = info(capsys, study / "design.csv")
    assert design.startswith(f"{study / 'design.csv'}: stimulus design, 3 row(s)\n  columns: id, avatar, emotion, end\n"
                             "  defaults: size=32x32, fps=10\n")


def transform(yaw_deg: float, distance: float) -> list[list[float]]:
    """Camera-to-world in OpenGL axes of a camera `distance` m from the origin looking at it."""
    yaw = math.radians(yaw_deg)
    c, s = math.cos(yaw), math.sin(yaw)
    return [[c, 0, s, s * distance], [0, 1, 0, 0], [-s, 0, c, c * distance], [0, 0, 0, 1]]


def test_camera_files_and_a_dataset_folder(tmp_path, capsys):
    camera = {"width": 640, "height": 480, "K": [[500, 0, 320], [0, 500, 240], [0, 0, 1]],
              "world_to_camera": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 2], [0, 0, 0, 1]]}
    (tmp_path / "camera.json").write_text(json.dumps(camera))
    text = info(capsys, tmp_path / "camera.json")
    fov = math.degrees(2 * math.atan(240 / 500))
    assert f"image: 640x480, fx 500.0 fy 500.0 px (vertical field of view {fov:.1f}°), principal point (320.0, 240.0)" in text
    assert "centre (0.000, 0.000, -2.000) m, 2.000 m from the origin" in text

    data = tmp_path / "dataset"
    data.mkdir()
    for split, timesteps in (("train", range(3)), ("test", range(3, 4))):  # GaussianAvatars / VHAP layout
        frames = [{"file_path": f"images/{t:05d}_{cam:02d}.png", "transform_matrix": transform(40 * cam, 1 + 0.2 * cam),
                   "camera_index": cam, "timestep_index": t, "fl_x": 600, "fl_y": 600, "cx": 256, "cy": 256,
                   "w": 512, "h": 512, "flame_param_path": f"flame_param/{t:05d}.npz"}
                  for t in timesteps for cam in range(2)]
        (data / f"transforms_{split}.json").write_text(json.dumps({"frames": frames}))
    text = info(capsys, data / "transforms_train.json")
    assert text.startswith(f"{data / 'transforms_train.json'}: dataset split (transforms file), 6 frame(s)\n"
                           "  cameras: 2 (camera_index 0..1)\n  timesteps: 3 (timestep_index 0..2)\n"
                           "  image size: 512x512\n")
    assert "camera distance from the origin: 1.000..1.200 m" in text and "(flame_param_path): 6 of 6" in text
    text = info(capsys, data)
    assert text.startswith(f"{data}: dataset folder, 2 split(s)\n")
    assert f"  {data / 'transforms_test.json'}: dataset split (transforms file), 2 frame(s)" in text


def test_presets_designs_and_what_it_cannot_describe(tmp_path, capsys):
    track = EmotionTrack((Keyframe(0.0, {"happy": 1.0}), Keyframe(2.5, {"sad": 0.5})))
    save_preset(Performance(emotions={"happy": 0.25}, speech_gain=1.5, keyframes=track), tmp_path / "preset.json")
    text = info(capsys, tmp_path / "preset.json")
    assert "  emotions: happy=0.25\n  speech gain 1.5, expression gain 1\n" in text
    assert "  keyframes: 2 from 0 s to 2.5 s" in text

    (tmp_path / "design.yaml").write_text("defaults:\n  fps: 25\nstimuli:\n  - id: one\n    emotion: sad\n    colour: red\n")
    text = info(capsys, tmp_path / "design.yaml")
    assert "stimulus design, 1 row(s)" in text and "1 problem(s), the first: " in text and "colour" in text

    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("hello")
    for path in (tmp_path / "notes.txt", tmp_path / "other.json", tmp_path / "folder"):
        assert "does not recognise; it describes an avatar folder or .ply, the demo folder, a generator, checkpoint" \
            in refused(capsys, path)
    result = avatar("info", tmp_path / "folder")  # the same line from the real command
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "the demo folder" in result.stderr


def test_rendered_png_frames_and_video(tmp_path, capsys):
    out = tmp_path / "frames"
    assert main(["render", "--demo", "--driver", "signal", "--duration", "0.2", "--fps", "10", "--size", "32x32",
                 "--backend", "cpu", "-q", "-o", str(out)]) == 0
    assert main(["render", "--demo", "--driver", "signal", "--duration", "0.2", "--fps", "10", "--size", "32x32",
                 "--backend", "cpu", "-q", "-o", str(tmp_path / "clip.mp4")]) == 0
    capsys.readouterr()
    assert info(capsys, out) == f"{out}: PNG frames (`avatar render -o FOLDER`), 2 frame(s) with audio.wav\n"
    text = info(capsys, tmp_path / "clip.mp4")
    assert text.startswith(f"{tmp_path / 'clip.mp4'}: video, 32x32, 10 fps, 0.") and "h264, audio aac; made by `avatar`" in text


def test_a_training_checkpoint_of_another_kind(tmp_path, capsys):
    module = torch.nn.Linear(2, 3)
    save_checkpoint(tmp_path / "bs.checkpoint", "blendshape-learner", {"corpus_seed": None}, module,
                    {"step": 40, "optimizer": {}})
    text = info(capsys, tmp_path / "bs.checkpoint")
    assert text == (f"{tmp_path / 'bs.checkpoint'}: blendshape-learner training checkpoint\n  settings: corpus_seed none\n"
                    f"  weights: model.safetensors, {(tmp_path / 'bs.checkpoint' / 'model.safetensors').stat().st_size / 2**20:.1f}"
                    " MiB (not loaded to describe them)\n"
                    "  training_state.pt: stopped after step 40; the same command with --resume continues it\n")


def test_training_data_folders(tmp_path, capsys):
    """VOCASET and Florence 4D folders written in their published layouts, and a synthetic corpus
    as `avatar make-corpus` lays it out: told from their indexes, meshes unread."""
    rng = np.random.default_rng(0)
    template = rng.normal(size=(20, 3)).astype(np.float32)

    def clip(name: str, frames: int, emotion: str | None = None) -> MeshSequence:
        return MeshSequence(name, template + 0.01 * rng.normal(size=(frames, 20, 3)), template, 30.0, emotion=emotion)

    corpus = tmp_path / "corpus"
    write_vocaset(corpus / "vocaset", [clip("Speaker0/s0", 4), clip("Speaker0/s1", 3, "happy"), clip("Speaker1/s0", 5)],
                  fps=30.0)
    write_florence(corpus / "florence", [clip("Face0/Smile", 6), clip("Face0/Sad", 2), clip("Face1/Angry", 3)], None)
    text = info(capsys, corpus / "vocaset")
    assert text.startswith(f"{corpus / 'vocaset'}: VOCASET folder (--vocaset {corpus / 'vocaset'}), 2 subject(s), "
                           f"3 sequence(s)\n  data_verts.npy: ")
    assert " frames of 20 vertices at 60 fps" in text and "subjects: Speaker0, Speaker1" in text
    assert info(capsys, corpus / "florence") == (f"{corpus / 'florence'}: Florence 4D folder (--florence "
                                                 f"{corpus / 'florence'}), 2 identities, 3 expression clip(s), "
                                                 "11 PLY frame(s)\n")
    shutil.copyfile(DEMO_BLENDSHAPES, corpus / "planted.npz")
    np.savez(corpus / "truth.npz", **{f"{name}|{part}": np.zeros((2, 2)) for name in ("a", "b")
                                      for part in ("speech", "expression")})
    text = info(capsys, corpus)
    assert text.startswith(f"{corpus}: synthetic corpus (`avatar make-corpus`; train with --vocaset ")
    assert "planted truth for 2 clip(s)" in text and f"  {corpus / 'florence'}: Florence 4D folder" in text
    assert f"  {corpus / 'planted.npz'}: blendshape model" in text
