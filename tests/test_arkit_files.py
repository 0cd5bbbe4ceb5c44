"""ARKit curve files read back by readers written here from the published layouts, not with our
writer's tables: Live Link Face's CSV as the app records it (header copied from a real take,
github.com/alexdjulin/LiveLinkFace-CSV-Retarget-For-Motionbuilder anim/S07-001.csv), Apple's
camelCase names in their documentation order; FLAME pose angles against rotation matrices;
atomic writing under a real write failure."""
import csv
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from avatar_app.exports.arkit_files import (
    livelink_timecode,
    pose_angles,
    write_arkit_csv,
    write_arkit_json,
    write_livelink_csv,
)
from models.rig.arkit import ARKIT_NAMES
from models.rig.flame import FlameParams

REAL_TAKE_HEADER = (
    "Timecode,BlendShapeCount,EyeBlinkLeft,EyeLookDownLeft,EyeLookInLeft,EyeLookOutLeft,EyeLookUpLeft,"
    "EyeSquintLeft,EyeWideLeft,EyeBlinkRight,EyeLookDownRight,EyeLookInRight,EyeLookOutRight,EyeLookUpRight,"
    "EyeSquintRight,EyeWideRight,JawForward,JawRight,JawLeft,JawOpen,MouthClose,MouthFunnel,MouthPucker,"
    "MouthRight,MouthLeft,MouthSmileLeft,MouthSmileRight,MouthFrownLeft,MouthFrownRight,MouthDimpleLeft,"
    "MouthDimpleRight,MouthStretchLeft,MouthStretchRight,MouthRollLower,MouthRollUpper,MouthShrugLower,"
    "MouthShrugUpper,MouthPressLeft,MouthPressRight,MouthLowerDownLeft,MouthLowerDownRight,MouthUpperUpLeft,"
    "MouthUpperUpRight,BrowDownLeft,BrowDownRight,BrowInnerUp,BrowOuterUpLeft,BrowOuterUpRight,CheekPuff,"
    "CheekSquintLeft,CheekSquintRight,NoseSneerLeft,NoseSneerRight,TongueOut,HeadYaw,HeadPitch,HeadRoll,"
    "LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll"
)
# a row of that take, to check our number format against
REAL_TAKE_ROW_START = "12:27:47:47.169,61,0.0000000000,0.0000000000,0.0000000000,0.1421131641,"

# Apple's ARFaceAnchor.BlendShapeLocation documentation, topic by topic
APPLE_NAMES = (
    "eyeBlinkLeft eyeLookDownLeft eyeLookInLeft eyeLookOutLeft eyeLookUpLeft eyeSquintLeft eyeWideLeft "
    "eyeBlinkRight eyeLookDownRight eyeLookInRight eyeLookOutRight eyeLookUpRight eyeSquintRight eyeWideRight "
    "jawForward jawLeft jawRight jawOpen mouthClose mouthFunnel mouthPucker mouthLeft mouthRight "
    "mouthSmileLeft mouthSmileRight mouthFrownLeft mouthFrownRight mouthDimpleLeft mouthDimpleRight "
    "mouthStretchLeft mouthStretchRight mouthRollLower mouthRollUpper mouthShrugLower mouthShrugUpper "
    "mouthPressLeft mouthPressRight mouthLowerDownLeft mouthLowerDownRight mouthUpperUpLeft mouthUpperUpRight "
    "browDownLeft browDownRight browInnerUp browOuterUpLeft browOuterUpRight cheekPuff cheekSquintLeft "
    "cheekSquintRight noseSneerLeft noseSneerRight tongueOut"
).split()
ANGLE_COLUMNS = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                 "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
TIMECODE = re.compile(r"^(\d{2,}):(\d{2}):(\d{2}):(\d{2,})\.(\d{3})$")
VALUE = re.compile(r"^-?\d+\.\d{10}$")


def read_livelink(path: Path) -> tuple[list[str], list[str], dict[str, np.ndarray]]:
    """(header, timecodes, {camelCase or angle name: column}) from Live Link Face's layout."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    assert all(len(row) == len(header) == 63 for row in body)
    assert all(row[1] == "61" for row in body)
    assert all(VALUE.match(cell) for row in body for cell in row[2:])
    columns = {}
    for index, name in enumerate(header[2:], start=2):
        key = name if name in ANGLE_COLUMNS else name[0].lower() + name[1:]
        columns[key] = np.array([float(row[index]) for row in body])
    return header, [row[0] for row in body], columns


def distinct_weights(frames: int) -> np.ndarray:
    """Every curve a different ramp, so a curve under another's name shows."""
    rng = np.random.default_rng(7)
    return rng.uniform(0, 1, (frames, len(ARKIT_NAMES)))


def test_livelink_csv_reads_back_under_the_real_take_layout(tmp_path):
    frames, fps = 37, 30.0
    weights = distinct_weights(frames)
    rng = np.random.default_rng(3)
    head, left, right = (rng.uniform(-0.5, 0.5, (frames, 3)) for _ in range(3))
    write_livelink_csv(tmp_path / "take.csv", weights, fps, head, left, right)
    header, timecodes, columns = read_livelink(tmp_path / "take.csv")

    assert ",".join(header) == REAL_TAKE_HEADER
    first_row = (tmp_path / "take.csv").read_text().splitlines()[1]
    assert len(first_row.split(",")[2]) == len(REAL_TAKE_ROW_START.split(",")[2])  # 10 decimals, as the app
    for name in APPLE_NAMES:
        np.testing.assert_allclose(columns[name], weights[:, ARKIT_NAMES.index(name)], atol=6e-11)
    angles = np.column_stack([head, left, right])
    for index, name in enumerate(ANGLE_COLUMNS):
        np.testing.assert_allclose(columns[name], angles[:, index], atol=6e-11)
    assert timecodes[0] == "00:00:00:00.000" and timecodes[30] == "00:00:01:00.000"


def test_livelink_csv_without_angles_has_zero_columns_as_the_app_with_head_rotation_off(tmp_path):
    write_livelink_csv(tmp_path / "take.csv", distinct_weights(4), 60.0)
    _, _, columns = read_livelink(tmp_path / "take.csv")
    for name in ANGLE_COLUMNS:
        assert (columns[name] == 0).all() and "-" not in (tmp_path / "take.csv").read_text()


def smpte_frame(timecode: str, per_second: int) -> int:
    """The frame an SMPTE non-drop-frame reader places a row on (fraction dropped)."""
    hours, minutes, seconds, frames, _ = map(int, TIMECODE.match(timecode).groups())
    return ((hours * 60 + minutes) * 60 + seconds) * per_second + frames


@pytest.mark.parametrize("fps, per_second", [(24.0, 24), (25.0, 25), (30.0, 30), (29.97, 30),
                                             (30000 / 1001, 30), (60.0, 60), (59.94, 60)])
def test_timecode_is_smpte_at_the_clip_rate(fps, per_second):
    for frame in list(range(0, 3 * per_second)) + list(range(0, 400_000, 997)):
        code = livelink_timecode(frame, fps)
        assert TIMECODE.match(code) and code.endswith(".000"), code
        assert smpte_frame(code, per_second) == frame
        hours, minutes, seconds, frames, _ = map(int, TIMECODE.match(code).groups())
        assert minutes < 60 and seconds < 60 and frames < per_second


@pytest.mark.parametrize("fps, frame, expected", [
    (24.0, 23, "00:00:00:23.000"), (24.0, 24, "00:00:01:00.000"), (24.0, 86_400, "01:00:00:00.000"),
    (25.0, 1_500, "00:01:00:00.000"), (25.0, 1_524, "00:01:00:24.000"),
    (30.0, 29, "00:00:00:29.000"), (30.0, 107_999, "00:59:59:29.000"),
    (29.97, 1_800, "00:01:00:00.000"), (29.97, 1_799, "00:00:59:29.000"),
    (60.0, 59, "00:00:00:59.000"), (60.0, 216_000, "01:00:00:00.000"),
    (12.5, 13, "00:00:01:00.500"), (12.5, 25, "00:00:02:00.000"),
])
def test_timecode_examples(fps, frame, expected):
    assert livelink_timecode(frame, fps) == expected


def test_timecode_reads_back_as_seconds_at_whole_and_other_rates():
    """The other importers' reading, t = 3600 HH + 60 MM + SS + FF.fff / fps, gives frame/fps."""
    for fps in (24.0, 25.0, 30.0, 60.0, 12.5, 7.3):
        for frame in range(0, 5000, 7):
            hours, minutes, seconds, frames, thousandths = map(int, TIMECODE.match(livelink_timecode(frame, fps)).groups())
            t = 3600 * hours + 60 * minutes + seconds + (frames + thousandths / 1000) / fps
            assert abs(t - frame / fps) <= 0.0005 / fps


def matrix(axis: str, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def from_livelink(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The documented convention in FLAME's axes (x left, y up, z out of the face): yaw about
    −y, then pitch about the turned x, then roll about the turned −z."""
    return matrix("y", -yaw) @ matrix("x", pitch) @ matrix("z", -roll)


def flame_params(rotation, neck, eyes) -> FlameParams:
    frames = len(rotation)
    zeros = np.zeros((frames, 3), np.float32)
    return FlameParams(expr=np.zeros((frames, 100), np.float32), jaw_pose=zeros, rotation=rotation,
                       neck_pose=neck, translation=zeros, eyes_pose=eyes)


def test_pose_angles_rebuild_the_flame_rotations():
    rng = np.random.default_rng(11)
    frames = 50
    rotation, neck = (rng.normal(0, 0.4, (frames, 3)).astype(np.float32) for _ in range(2))
    eyes = rng.normal(0, 0.3, (frames, 6)).astype(np.float32)
    head, left, right = pose_angles(flame_params(rotation, neck, eyes))
    for t in range(frames):
        # FLAME's chain: root, then the neck joint below it (the head's world rotation)
        expected = Rotation.from_rotvec(rotation[t]).as_matrix() @ Rotation.from_rotvec(neck[t]).as_matrix()
        np.testing.assert_allclose(from_livelink(*head[t]), expected, atol=1e-6)
        np.testing.assert_allclose(from_livelink(*left[t]), Rotation.from_rotvec(eyes[t, :3]).as_matrix(), atol=1e-6)
        np.testing.assert_allclose(from_livelink(*right[t]), Rotation.from_rotvec(eyes[t, 3:]).as_matrix(), atol=1e-6)
    torch_head, _, _ = pose_angles(flame_params(*(torch.as_tensor(v) for v in (rotation, neck, eyes))))
    np.testing.assert_allclose(torch_head, head, atol=1e-9)


def test_pose_angle_signs_as_the_app_writes_them():
    """FLAME: +x rotation turns the face down, +y toward the subject's left, +z lifts its left side."""
    turns = np.array([[0.2, 0, 0], [0, 0.2, 0], [0, 0, 0.2]], np.float32)
    head, left, _ = pose_angles(flame_params(np.zeros((3, 3), np.float32), turns, np.tile(turns, 2)))
    for angles in (head, left):
        np.testing.assert_allclose(angles, [[0, 0.2, 0], [-0.2, 0, 0], [0, 0, -0.2]], atol=1e-7)
    # the real take's row: both eyes gaze to the subject's left (Apple's eyeLookOutLeft) and up:
    # LeftEyeYaw −0.148, LeftEyePitch −0.205, LeftEyeRoll +0.031 (roll ≈ yaw · pitch)
    gaze = Rotation.from_matrix(matrix("x", -0.2049) @ matrix("y", 0.1476)).as_rotvec()
    _, left, _ = pose_angles(flame_params(np.zeros((1, 3)), np.zeros((1, 3)), np.tile(gaze, 2)[None]))
    yaw, pitch, roll = left[0]
    assert yaw < 0 and pitch < 0 and abs(roll - 0.0305) < 0.001


def test_plain_csv_and_json_carry_apple_names(tmp_path):
    frames, fps = 9, 25.0
    weights = distinct_weights(frames)
    write_arkit_csv(tmp_path / "take.csv", weights, fps)
    with open(tmp_path / "take.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["time", *APPLE_NAMES] and len(rows) == frames
    for frame, row in enumerate(rows):
        assert abs(float(row["time"]) - frame / fps) < 1e-9
        for name in APPLE_NAMES:
            assert abs(float(row[name]) - weights[frame, ARKIT_NAMES.index(name)]) < 1e-8

    write_arkit_json(tmp_path / "take.json", weights, fps)
    document = json.loads((tmp_path / "take.json").read_text())
    assert document["format"] == "arkit-52"
    assert document["fps"] == fps and document["names"] == APPLE_NAMES and len(document["frames"]) == frames
    for frame, entry in enumerate(document["frames"]):
        assert abs(entry["time"] - frame / fps) < 1e-9 and list(entry["blendShapes"]) == APPLE_NAMES
        for name, value in entry["blendShapes"].items():
            assert abs(value - weights[frame, ARKIT_NAMES.index(name)]) < 1e-8


@pytest.mark.parametrize("bad", [
    dict(weights=np.zeros((3, 51))), dict(weights=np.full((3, 52), np.nan)), dict(weights=np.full((3, 52), 1.5)),
    dict(fps=0.0), dict(fps=float("nan")), dict(head_ypr=np.zeros((2, 3))),
])
def test_bad_arguments_are_refused_before_writing(tmp_path, bad):
    arguments = dict(weights=np.zeros((3, 52)), fps=30.0) | bad
    with pytest.raises(ValueError):
        write_livelink_csv(tmp_path / "take.csv", **arguments)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    """A file-size limit (RLIMIT_FSIZE) makes the real write fail half-way, in a child process."""
    target = tmp_path / "take.csv"
    target.write_text("the previous take\n")
    script = textwrap.dedent(f"""
        import resource, signal, numpy as np
        from avatar_app.exports.arkit_files import write_livelink_csv
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
        try:
            write_livelink_csv({str(target)!r}, np.full((400, 52), 0.5), 30.0)
        except OSError as err:
            print("failed:", err.strerror)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[1])
    assert "failed: File too large" in result.stdout, result.stderr
    assert target.read_text() == "the previous take\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["take.csv"]

    write_livelink_csv(target, np.full((400, 52), 0.5), 30.0)  # without the limit: replaced whole
    assert len(target.read_text().splitlines()) == 401
    assert sorted(path.name for path in tmp_path.iterdir()) == ["take.csv"]
    assert os.stat(target).st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
