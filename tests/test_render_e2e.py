"""End to end on the embedded demo: the `avatar` command, the MP4 it writes, bad input."""
import re
import subprocess
import sys

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest
import torch

from assets import DEMO_AUDIO, DEMO_AVATAR, DEMO_BLENDSHAPES, DEMO_FLAME
from avatar_app.avatar import SIGNAL_DEMO_SOURCE
from avatar_app.cli import main
from avatar_app.clip import clip_from_audio
from avatar_app.outputs import MARK
from avatar_app.player import Player
from avatar_app.video import write_mp4
from models.rig.blendshapes import BlendshapeModel, WeightSequence
from models.rig.flame import FlameParams, save_flame_params
from renderer.ply import read_ply, write_ply


def probe(path) -> str:
    """ffmpeg's own description of the file's streams (what ffprobe would list)."""
    out = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                         capture_output=True, text=True)
    return out.stderr


@pytest.fixture(scope="module")
def demo_player():
    player = Player(SIGNAL_DEMO_SOURCE.load(), backend="cpu")  # the signal driver's mouth amplitudes
    player.view.width = player.view.height = 128
    player.clip = clip_from_audio(DEMO_AUDIO, player.driver, 30)
    return player


def test_render_demo_mp4(tmp_path, capsys):
    out = tmp_path / "demo.mp4"
    assert main(["render", "--demo", "--duration", "0.9", "--size", "96x80", "-q",
                 "--emotion", "happy=0.8", "-o", str(out)]) == 0
    info = probe(out)
    video = re.findall(r"Stream #0:\d.*Video: (\w+).*?, (\w+)\(.*?, (\d+)x(\d+)", info)
    audio = re.findall(r"Stream #0:\d.*Audio: (\w+)", info)
    assert video == [("h264", "yuv420p", "96", "80")] and audio == ["aac"]
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert frames == 27                                   # round(0.9 · 30)
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")     # +faststart
    assert not list(tmp_path.glob(".*"))                 # no temporary left behind
    assert re.search(r"backend cpu \| [\d,]+ Gaussians \| [\d.]+ frames/s", capsys.readouterr().out)


def test_png_frames_with_audio(tmp_path):
    out = tmp_path / "frames"
    assert main(["render", "--demo", "--duration", "0.2", "--size", "64x64", "-q", "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [MARK, "audio.wav"] + [f"frame_{i:05d}.png" for i in range(6)]


def test_mouth_moves_with_speech(demo_player):
    frames = np.stack(list(demo_player.render_range(0, 60, batch=16))).astype(np.float32)
    change = frames.std(0).mean(-1)
    h, w = change.shape
    mouth = change[int(0.55 * h):int(0.8 * h), int(0.35 * w):int(0.65 * w)].mean()
    forehead = change[int(0.12 * h):int(0.3 * h), int(0.35 * w):int(0.65 * w)].mean()
    assert mouth > 5.0 and mouth > 10 * forehead


def test_emotions_change_the_face(demo_player):
    demo_player.set_emotions({"happy": 1.0})
    happy = demo_player.render_frame(0).astype(np.float32)
    demo_player.set_emotions({"sad": 1.0})
    sad = demo_player.render_frame(0).astype(np.float32)
    demo_player.set_emotions({})
    assert np.abs(happy - sad).mean(-1).max() > 40


def test_interrupted_video_leaves_nothing(tmp_path):
    def frames():
        yield np.zeros((32, 32, 3), np.uint8)
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        write_mp4(frames(), tmp_path / "clip.mp4", (32, 32), 30, 10)
    assert list(tmp_path.iterdir()) == []


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "avatar_app.cli", *args], capture_output=True, text=True)


def bad_ply(tmp_path, drop=None, binding_offset=0):
    g = read_ply(DEMO_AVATAR / "point_cloud.ply")
    folder = tmp_path / "avatar"
    if binding_offset:
        g.binding = g.binding + binding_offset
    write_ply(g, folder / "point_cloud.ply")
    if drop:
        raw = (folder / "point_cloud.ply").read_bytes()
        (folder / "point_cloud.ply").write_bytes(raw.replace(f"property float {drop}\n".encode(), b"", 1))
    return folder


@pytest.mark.parametrize("case", ["missing", "ply_property", "binding", "flame_layout", "wav",
                                  "nan_weights", "emotion", "gsplat_without_cuda", "odd_size"])
def test_bad_input_gets_one_clear_line(tmp_path, case):
    base = ["render", "-o", str(tmp_path / "out.mp4"), "--size", "64x64", "-q"]
    avatar = ["--avatar", str(DEMO_AVATAR), "--flame", str(DEMO_FLAME), "--blendshapes", str(DEMO_BLENDSHAPES)]
    if case == "missing":
        args, needle = [*base, "--avatar", str(tmp_path / "nope")], "nope"
    elif case == "ply_property":
        folder = bad_ply(tmp_path, drop="scale_1")
        args, needle = [*base, "--avatar", str(folder), "--flame", str(DEMO_FLAME)], "scale_1"
    elif case == "binding":
        folder = bad_ply(tmp_path, binding_offset=100000)
        args, needle = [*base, "--avatar", str(folder), "--flame", str(DEMO_FLAME)], "faces"
    elif case == "flame_layout":
        arrays = dict(np.load(DEMO_FLAME))
        arrays["J_regressor"] = arrays["J_regressor"][:4]
        np.savez(tmp_path / "flame.npz", **arrays)
        args, needle = [*base, "--avatar", str(DEMO_AVATAR), "--flame", str(tmp_path / "flame.npz")], "flame.npz"
    elif case == "wav":
        (tmp_path / "speech.wav").write_text("not audio at all")
        args, needle = [*base, "--demo", "--audio", str(tmp_path / "speech.wav")], "speech.wav"
    elif case == "nan_weights":
        model = BlendshapeModel.load(DEMO_BLENDSHAPES)
        speech = np.zeros((10, len(model.speech_names)), np.float32)
        speech[3, 0] = np.nan
        np.savez(tmp_path / "w.weights.npz", fps=30.0, speech=speech,
                 expression=np.zeros((10, len(model.expression_names)), np.float32),
                 speech_names=np.array(model.speech_names), expression_names=np.array(model.expression_names))
        args, needle = [*base, *avatar, "--weights", str(tmp_path / "w.weights.npz")], "w.weights.npz"
    elif case == "emotion":
        args, needle = [*base, "--demo", "--emotion", "happy=0.5,grumpy=1"], "grumpy"
    elif case == "gsplat_without_cuda":
        if torch.cuda.is_available():
            pytest.skip("CUDA is available here")
        args, needle = [*base, "--demo", "--backend", "gsplat"], "CUDA"
    else:
        args, needle = ["render", "--demo", "--size", "65x64", "-o", str(tmp_path / "out.mp4")], "even"
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("avatar: error:") and needle in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.mp4").exists()


def test_weights_and_motion_drive_the_demo(tmp_path):
    model = BlendshapeModel.load(DEMO_BLENDSHAPES)
    speech = np.zeros((20, len(model.speech_names)), np.float32)
    speech[10:, model.speech_names.index("jaw_open")] = 1.0
    WeightSequence(fps=20.0, speech=speech, expression=np.zeros((20, len(model.expression_names)), np.float32),
                   speech_names=model.speech_names, expression_names=model.expression_names).save(tmp_path / "w.weights.npz")
    assert main(["render", "--demo", "--driver", "signal", "--weights", str(tmp_path / "w.weights.npz"), "--size", "64x64", "-q",
                 "-o", str(tmp_path / "w")]) == 0
    assert len(list((tmp_path / "w").glob("*.png"))) == 30           # 1 s at 30 fps
    frames = [iio.imread(tmp_path / "w" / f"frame_{i:05d}.png").astype(float) for i in (0, 29)]
    assert np.abs(frames[0] - frames[1]).max() > 50                    # the jaw opened

    motion = FlameParams.neutral(12)
    motion.jaw_pose[6:, 0] = 0.3
    save_flame_params(motion, tmp_path / "motion.npz")
    assert main(["render", "--demo", "--motion", str(tmp_path / "motion.npz"), "--size", "64x64", "-q",
                 "-o", str(tmp_path / "m.mp4")]) == 0
    assert imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "m.mp4"))[0] == 12


def test_info_describes_each_kind(capsys):
    for path, needle in [(DEMO_AVATAR, "bound to triangles"), (DEMO_FLAME, "FLAME model"),
                         (DEMO_BLENDSHAPES, "emotions: happy"), (DEMO_AUDIO, "Hz")]:
        assert main(["info", str(path)]) == 0
        assert needle in capsys.readouterr().out


def test_the_player_generates_long_clips_in_chunks_equal_to_the_whole(monkeypatch):
    """The learned generator runs WEIGHT_CHUNK frames at a time (memory does not grow with
    the clip); the weights and the frames equal those of one chunk spanning the clip."""
    import avatar_app.player as player_module
    from avatar_app.avatar import LEARNED_DEMO_SOURCE
    from models.rig.emotion import EmotionTrack

    player = Player(LEARNED_DEMO_SOURCE.load(), backend="cpu")
    player.clip = clip_from_audio(DEMO_AUDIO, player.driver, 30, duration=3.0)
    player.set_keyframes(EmotionTrack().with_key(0.5, {"happy": 1.0}).with_key(2.5, {"sad": 0.8}))
    whole = player.weights(0, 90)
    monkeypatch.setattr(player_module, "WEIGHT_CHUNK", 16)
    player._weights_cache.clear()
    chunked = player.weights(0, 90)
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(chunked, whole))
    assert all(np.allclose(a, b[37:61], atol=1e-5) for a, b in zip(player.weights(37, 61), whole))
