"""Emotion keyframes (models.rig.emotion.EmotionTrack), presets, and the player following them."""
import json

import numpy as np
import pytest
import torch

from avatar_app.avatar import load_demo
from avatar_app.cli import main
from avatar_app.clip import still_clip
from avatar_app.player import Performance, Player
from avatar_app.preset import load_preset, save_preset
from common.errors import InputError
from models.rig.emotion import EmotionTrack


def smoothstep(u):
    return u * u * (3 - 2 * u)


def test_track_eases_between_keys_and_holds_outside():
    track = EmotionTrack().with_key(2.0, {"sad": 0.4}).with_key(1.0, {"happy": 1.0})
    assert [k.time for k in track.keys] == [1.0, 2.0]
    t = np.array([0.0, 1.0, 1.25, 1.5, 2.0, 3.0])
    values = track.intensities(t, ["happy", "sad", "angry"])
    expected_happy = [1, 1, 1 - smoothstep(0.25), 0.5, 0, 0]
    expected_sad = [0, 0, 0.4 * smoothstep(0.25), 0.2, 0.4, 0.4]
    assert np.allclose(values[:, 0], expected_happy) and np.allclose(values[:, 1], expected_sad)
    assert np.all(values[:, 2] == 0)
    assert np.all(np.diff(track.intensities(np.linspace(1, 2, 200), ["happy"])[:, 0]) <= 1e-7)  # no overshoot


def test_track_edits_replace_and_remove_keys():
    track = EmotionTrack().with_key(1.0, {"happy": 0.5}).with_key(1.01, {"happy": 0.9}, tolerance=0.02)
    assert len(track.keys) == 1 and track.keys[0].emotions == {"happy": 0.9}
    assert track.key_near(1.3, 0.5) is track.keys[0] and track.key_near(1.3, 0.1) is None
    assert not track.without_key(1.01)
    with pytest.raises(InputError, match="outside 0..1"):
        track.with_key(2.0, {"happy": 1.5})
    single = EmotionTrack().with_key(0.5, {"happy": 0.3})
    assert np.allclose(single.intensities(np.array([0.0, 9.0]), ["happy"]), 0.3)


def test_preset_round_trip_and_player_follows_keys(tmp_path):
    player = Player(load_demo(), backend="cpu")
    player.clip = still_clip(2.0)
    perf = Performance(emotions={"happy": 0.2}, speech_gain=0.5, expression_gain=1.5,
                       keyframes=EmotionTrack().with_key(0.0, {}).with_key(1.0, {"angry": 1.0}))
    save_preset(perf, tmp_path / "p.json")
    loaded = load_preset(tmp_path / "p.json")
    assert loaded == perf
    player.set_performance(loaded)
    bs = player.avatar.blendshapes
    _, expression = player.weights(0, 60)
    angry = bs.emotion_profiles[bs.emotion_names.index("angry")]
    assert np.allclose(expression[0], 0) and np.allclose(expression[45], 1.5 * angry, atol=1e-6)
    assert np.allclose(expression[15], 1.5 * 0.5 * angry, atol=1e-6)


@pytest.mark.parametrize("content, problem", [
    ("not json", "not valid JSON"),
    (json.dumps({"format": "something else"}), "not an emotion preset"),
    (json.dumps({"format": "talking-head-studio emotion preset", "version": 9}), "version 9"),
    (json.dumps({"format": "talking-head-studio emotion preset", "version": 1, "emotions": {"happy": 2}}),
     "emotions 'happy' is 2"),
    (json.dumps({"format": "talking-head-studio emotion preset", "version": 1,
                 "keyframes": [{"time": -1, "emotions": {}}]}), "keyframe 0 time"),
])
def test_bad_presets_name_the_file_and_problem(tmp_path, content, problem):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputError, match=problem) as err:
        load_preset(path)
    assert str(path) in str(err.value)


def test_preset_with_unknown_emotion_is_refused_by_the_player(tmp_path):
    perf = Performance(keyframes=EmotionTrack().with_key(0.0, {"bored": 1.0}))
    save_preset(perf, tmp_path / "p.json")
    with pytest.raises(InputError, match="unknown emotion 'bored'"):
        Player(load_demo(), backend="cpu").set_performance(load_preset(tmp_path / "p.json"))


def test_render_preset_equals_render_emotion(tmp_path):
    save_preset(Performance(emotions={"surprised": 0.7}), tmp_path / "p.json")
    common = ["render", "--demo", "--duration", "0.1", "--size", "48x48", "-q"]
    assert main(common + ["--preset", str(tmp_path / "p.json"), "-o", str(tmp_path / "a")]) == 0
    assert main(common + ["--emotion", "surprised=0.7", "-o", str(tmp_path / "b")]) == 0
    for name in ("frame_00000.png", "frame_00002.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_camera_moves_reuse_the_pose_and_performance_changes_do_not():
    player = Player(load_demo(), backend="cpu")
    player.clip = still_clip(1.0)
    player.view.width = player.view.height = 64
    player.render_frame(3)
    posed = player._posed(3, 4)
    twin = player.snapshot()
    twin.view.yaw = 40.0
    assert twin._posed(3, 4) is posed                      # same frame, same performance
    twin.set_emotions({"angry": 1.0})
    changed = twin._posed(3, 4)
    assert changed is not posed and not torch.equal(changed[0], posed[0])
    player.performance.keyframes = EmotionTrack().with_key(0.0, {"angry": 1.0})
    assert player._posed(3, 4) is not changed              # keyframes are part of the key
    assert torch.allclose(player._posed(3, 4)[0], changed[0])
