"""The living layers (blinks, gaze, idle head motion): their statistics against published human
figures, determinism, any range equal to the whole clip's rows, defaults, export and options."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from assets import DEMO_AUDIO, DEMO_FLAME
from avatar_app.avatar import SIGNAL_DEMO_SOURCE
from avatar_app.cli import main, make_parser
from avatar_app.clip import ClipSource
from avatar_app.commands import living_layers
from avatar_app.player import Player
from avatar_app.stimuli.design import merged_defaults, read_design
from avatar_app.stimuli.resolve import resolve
from common.errors import InputError
from models.rig.emotion import EmotionTrack
from models.rig.flame import EYELID_KEYS, FlameParams, FlameRig, load_flame, load_flame_params, save_flame_params
from models.rig.living import (
    LivingLayers,
    blink_closure,
    blink_events,
    gaze_angles,
    gaze_events,
    head_motion,
    living_track,
    pose_degrees,
    saccade_duration,
)

FPS = 30.0


def _flame_with(tmp_path, eyelids: bool):
    """The demo FLAME with (a simple pair of) eyelid blendshapes, or without any."""
    arrays = {k: v for k, v in np.load(DEMO_FLAME).items() if k not in EYELID_KEYS}
    if eyelids:
        v = arrays["v_template"]
        band = (np.abs(v[:, 1] - 0.025) < 0.01) & (v[:, 2] > 0)
        for key, side in zip(EYELID_KEYS, (1, -1)):
            shape = np.zeros_like(v)
            shape[band & (np.sign(v[:, 0]) == side) & (np.abs(v[:, 0]) > 0.015), 1] = -0.012
            arrays[key] = shape
    path = tmp_path / ("eyelids.npz" if eyelids else "plain.npz")
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def flame(tmp_path_factory):
    return _flame_with(tmp_path_factory.mktemp("flame"), True)


@pytest.fixture(scope="module")
def player(flame):
    p = Player(dataclasses.replace(SIGNAL_DEMO_SOURCE, flame=flame).load(), backend="cpu")
    p.load_clip(ClipSource(audio=DEMO_AUDIO), FPS)
    return p


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


# --- statistics against published figures -------------------------------------------------

def test_blink_rate_duration_and_shape_match_human_statistics():
    minutes = 30
    frames = int(minutes * 60 * FPS)
    quiet, never = np.zeros(frames), np.zeros(frames, bool)
    onsets, durations = blink_events(frames, FPS, 7, quiet, never)
    assert 14 <= len(onsets) / minutes <= 20  # ~17/min at rest (Bentivoglio et al. 1997)
    talking = blink_events(frames, FPS, 7, np.ones(frames), never)[0]
    assert 22 <= len(talking) / minutes <= 30  # ~26/min in conversation
    assert durations.min() >= 0.1 and durations.max() <= 0.4 and 0.15 <= np.median(durations) <= 0.3
    intervals = np.diff(onsets)
    assert np.mean(intervals) > np.median(intervals)  # right-skewed inter-blink intervals
    # closing faster than opening: sampled finely, the lid peaks within the first half
    fine = np.arange(0, 0.5, 0.001)
    closure = blink_closure(fine, np.array([0.05]), np.array([0.3]))
    peak = fine[np.argmax(closure)] - 0.05
    assert closure.max() == pytest.approx(1, abs=1e-3) and peak < 0.3 / 2
    assert (closure > 0.01).sum() * 0.001 == pytest.approx(0.3, abs=0.02)


def test_no_blink_during_a_surprised_apex(player):
    player.set_keyframes(EmotionTrack().with_key(0, {}).with_key(1.0, {"surprised": 1.0}).with_key(3.0, {"surprised": 1.0})
                         .with_key(4.0, {}))
    try:
        player.set_living(LivingLayers(blink=1, seed=0))
        apex = player._intensities()[:, list(player.avatar.blendshapes.emotion_names).index("surprised")] >= 0.5
        for seed in range(12):
            player.set_living(LivingLayers(blink=1, seed=seed))
            lids = player.flame_params(0, player.clip.num_frames).eyelids
            assert not lids[apex].any()
        frames = 20 * 60 * 30
        onsets, _ = blink_events(frames, FPS, 1, np.zeros(frames), np.arange(frames) % 300 < 150)
        assert len(onsets) > 50 and all(int(t * FPS) % 300 >= 150 for t in onsets)
    finally:
        player.set_keyframes(EmotionTrack())
        player.set_living(LivingLayers())


def test_saccades_follow_the_main_sequence_and_fixations_last_human_lengths():
    rate, seconds = 1000.0, 600.0  # 1 kHz sampling resolves a 20-60 ms saccade
    times = np.arange(0, seconds, 1 / rate)
    onsets, targets = gaze_events(seconds, 3, 1.0)
    angles = gaze_angles(times, onsets, targets)
    speed = np.hypot(*np.diff(angles, axis=0).T) * rate  # deg/s
    moving = _runs(speed > 5.0)
    durations = np.array([(b - a) / rate for a, b in moving])
    amplitudes = np.array([np.hypot(*(angles[b] - angles[a])) for a, b in moving])
    fixations = np.diff([a for a, _ in moving]) / rate
    assert len(moving) == pytest.approx(len(onsets), rel=0.05)
    assert 1.5 <= np.median(amplitudes) <= 6 and np.percentile(amplitudes, 95) < 12  # a few degrees
    big = amplitudes > 0.5
    assert 0.018 <= np.median(durations[big]) <= 0.06 and durations[big].max() <= 0.08
    assert np.corrcoef(amplitudes[big], durations[big])[0, 1] > 0.8  # the main sequence
    assert 0.2 <= np.median(fixations) <= 1.0 and fixations.min() >= 0.15
    assert saccade_duration(10.0) == pytest.approx(0.043)  # Carpenter 1988: 21 + 2.2·A ms


def test_head_motion_follows_speech_energy():
    seconds = 120.0
    times = np.arange(0, seconds, 1 / FPS)
    # speech in bursts: 2 s talking, 2 s pause, with syllable-rate loudness modulation
    energy = ((times % 4) < 2) * (0.6 + 0.4 * np.abs(np.sin(2 * np.pi * 2.5 * times)))
    angles = head_motion(times, FPS, energy, 5, 1.0)
    speed = np.linalg.norm(np.diff(angles, axis=0), axis=1) * FPS
    window = int(FPS)
    smooth = lambda x: np.convolve(x, np.ones(window) / window, mode="same")  # noqa: E731
    assert np.corrcoef(smooth(speed), smooth(energy[1:]))[0, 1] > 0.5
    assert 0.3 < np.abs(angles).std(axis=0).max() and np.abs(angles).max() < 10  # a few degrees
    silent = head_motion(times, FPS, np.zeros_like(times), 5, 1.0)
    assert np.linalg.norm(np.diff(silent, axis=0), axis=1).mean() < 0.5 * speed.mean() / FPS


# --- the Player: determinism, ranges, FLAME, export ----------------------------------------

def test_layers_are_seeded_and_any_range_equals_the_whole_clip(player):
    player.set_living(LivingLayers(1, 1, 1, seed=4))
    frames = player.clip.num_frames
    whole = player.flame_params(0, frames)
    for start, stop in ((0, 7), (13, 41), (frames - 5, frames)):
        part = player.flame_params(start, stop)
        for key in ("eyelids", "eyes_pose", "neck_pose", "expr"):
            np.testing.assert_array_equal(getattr(part, key), getattr(whole, key)[start:stop])
    again = player.snapshot()
    again._living_cache = {}
    np.testing.assert_array_equal(again.flame_params(0, frames).neck_pose, whole.neck_pose)
    player.set_living(LivingLayers(1, 1, 1, seed=5))
    other = player.flame_params(0, frames)
    assert not np.array_equal(other.eyes_pose, whole.eyes_pose)
    player.set_living(LivingLayers(0, 0, 0, seed=4))
    still = player.flame_params(0, frames)
    assert not still.eyelids.any() and not still.eyes_pose.any() and not still.neck_pose.any()


def test_head_motion_of_the_demo_speech_rises_with_its_loudness(player):
    player.set_living(LivingLayers(head_motion=1, seed=2))
    frames = player.clip.num_frames
    degrees = pose_degrees(player.flame_params(0, frames).neck_pose)
    energy = player._living_cache["energy"][1]
    assert energy.max() == pytest.approx(1.0) and energy.min() == 0
    speed = np.linalg.norm(np.diff(degrees, axis=0), axis=1)
    loud = energy[1:] > 0.5
    assert speed[loud].mean() > speed[~loud].mean()
    player.set_living(LivingLayers())


def test_eyelids_move_the_mesh_as_vhap_adds_them_and_the_export_carries_the_layers(player, flame, tmp_path):
    arrays = load_flame(flame)
    rig = FlameRig(arrays)
    assert rig.has_eyelids and arrays.eyelids.shape == (arrays.num_vertices, 3, 2)
    params = FlameParams.neutral(2)
    params.eyelids = np.array([[0.0, 0.0], [0.7, 0.2]], np.float32)
    v = rig(params).numpy()
    expected = v[0] + 0.7 * arrays.eyelids[..., 0] + 0.2 * arrays.eyelids[..., 1]
    np.testing.assert_allclose(v[1], expected, atol=1e-6)
    player.set_living(LivingLayers(1, 1, 1, seed=1))
    frames = player.clip.num_frames
    save_flame_params(player.flame_params(0, frames), tmp_path / "motion.npz")
    back = load_flame_params(tmp_path / "motion.npz")
    assert back.eyelids.max() > 0.9 and np.abs(back.eyes_pose).max() > 0.01 and np.abs(back.neck_pose).max() > 0.01
    with np.load(tmp_path / "motion.npz") as data:
        assert data["eyelids"].shape == (frames, 2)
    # played back as a motion with the layers off, the export moves the lids, eyes and head alike
    player.set_living(LivingLayers())
    try:
        player.load_clip(ClipSource(motion=tmp_path / "motion.npz"), FPS)
        replay = player.flame_params(0, frames)
        for key in ("eyelids", "eyes_pose", "neck_pose"):
            np.testing.assert_array_equal(getattr(replay, key), getattr(back, key))
    finally:
        player.load_clip(ClipSource(audio=DEMO_AUDIO), FPS)


def test_eyelid_blendshapes_from_npy_files_beside_the_model_and_in_pairs(tmp_path):
    plain = _flame_with(tmp_path, False)
    assert load_flame(plain).eyelids is None
    (tmp_path / "pair").mkdir()
    with np.load(_flame_with(tmp_path / "pair", True)) as data:
        left, right = data["l_eyelid"], data["r_eyelid"]
    np.save(tmp_path / "l_eyelid.npy", left)
    np.save(tmp_path / "r_eyelid.npy", right)
    np.testing.assert_array_equal(load_flame(plain, teeth=False).eyelids[..., 1], right)
    arrays = dict(np.load(plain))
    np.savez(tmp_path / "half.npz", **arrays, l_eyelid=left)
    with pytest.raises(InputError, match="come as a pair"):
        load_flame(tmp_path / "half.npz")


# --- defaults and options -------------------------------------------------------------------

def _header(flame) -> str:
    return (f"# avatar: {SIGNAL_DEMO_SOURCE.avatar}\n# blendshapes: {SIGNAL_DEMO_SOURCE.blendshapes}\n"
            f"# driver: signal\n# flame: {flame}\n")


def test_defaults_design_off_render_on(flame, tmp_path):
    design = tmp_path / "design.csv"
    design.write_text(f"{_header(flame)}id,audio\na,{DEMO_AUDIO}\n")
    loaded = read_design(design)
    (stimulus,) = resolve(loaded, merged_defaults(loaded), None)
    assert not stimulus.living.active and stimulus.parameters()["blink"] == 0
    design.write_text(f"{_header(flame)}id,audio,blink,gaze,head_motion,seed\na,{DEMO_AUDIO},1,0.5,2,9\n")
    loaded = read_design(design)
    (stimulus,) = resolve(loaded, merged_defaults(loaded), None)
    assert stimulus.performance.living == LivingLayers(1, 0.5, 2, 9)
    assert {k: stimulus.parameters()[k] for k in ("blink", "gaze", "head_motion")} == \
        {"blink": 1, "gaze": 0.5, "head_motion": 2}
    design.write_text(f"id,audio,blink,gaze\na,{DEMO_AUDIO},1.5,x\n")
    loaded = read_design(design)
    with pytest.raises(InputError) as err:
        resolve(loaded, merged_defaults(loaded), None)
    assert "blink: 1.5 is outside 0..1" in str(err.value) and "gaze: 'x' is not a number" in str(err.value)
    plain = _flame_with(tmp_path, False)
    design.write_text(f"{_header(plain)}id,audio,blink\na,{DEMO_AUDIO},1\n")
    loaded = read_design(design)
    with pytest.raises(InputError, match="no eyelid blendshapes"):
        resolve(loaded, merged_defaults(loaded), None)


def test_render_defaults_on_where_the_avatar_can(player, flame, tmp_path):
    args = make_parser().parse_args(["render", "--demo", "-o", "x.mp4"])
    assert living_layers(args, player) == LivingLayers(1, 1, 1, 0)
    plain = Player(dataclasses.replace(SIGNAL_DEMO_SOURCE, flame=_flame_with(tmp_path, False)).load(), backend="cpu")
    assert living_layers(args, plain) == LivingLayers(0, 1, 1, 0)
    args = make_parser().parse_args(["render", "--demo", "-o", "x.mp4", "--blink", "0", "--gaze", "0.5", "--seed", "3"])
    assert living_layers(args, player) == LivingLayers(0, 0.5, 1, 3)
    # over a FLAME motion, which carries its own lids, eyes and head, they are off unless asked for
    save_flame_params(FlameParams.neutral(5), tmp_path / "motion.npz")
    plain.load_clip(ClipSource(motion=tmp_path / "motion.npz"), FPS)
    args = make_parser().parse_args(["render", "--demo", "-o", "x.mp4", "--gaze", "1"])
    assert living_layers(args, plain) == LivingLayers(0, 1, 0, 0)


@pytest.mark.parametrize("option, needle", [
    (["--blink", "1.5"], "--blink 1.5: a strength in 0..1"),
    (["--gaze", "-1"], "--gaze -1: a strength in 0..2"),
    (["--head-motion", "nan"], "--head-motion nan: a strength"),
    (["--blink", "often"], "--blink often: a strength"),
    (["--seed", "x"], "--seed x: a whole number"),
    (["--blink", "1", "--flame", "PLAIN"], "--blink 1: the FLAME model"),
])
def test_bad_layer_options_are_one_line_and_exit_2(option, needle, tmp_path, capsys):
    plain = str(_flame_with(tmp_path, False))
    option = [plain if o == "PLAIN" else o for o in option]
    base = ["render", "--driver", "signal", "--duration", "0.2", "--size", "32x32", "-o", str(tmp_path / "o.mp4")]
    if "--flame" in option:
        base += ["--avatar", str(SIGNAL_DEMO_SOURCE.avatar), "--blendshapes", str(SIGNAL_DEMO_SOURCE.blendshapes)]
    else:
        base += ["--demo"]
    assert main([*base, *option]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o.mp4").exists()


def test_living_track_is_empty_when_off():
    track = living_track(LivingLayers(), 10, FPS, np.zeros(10), np.zeros(10, bool))
    assert not track.eyelids.any() and not track.eyes_pose.any() and not track.neck_pose.any()
    with pytest.raises(InputError, match="--gaze 3"):
        LivingLayers(gaze=3)
