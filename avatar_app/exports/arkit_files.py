"""ARKit's 52 blendshape curves as files animators' tools read: the CSV of Epic's Live Link Face
app (Unreal/MetaHuman, Blender, Maya and MotionBuilder importers read it), and a plain CSV and
JSON with Apple's camelCase names (docs/architecture.md §Formats).

Live Link Face CSV, as the app records it (a real take, with 10 decimals per value, e.g.
github.com/alexdjulin/LiveLinkFace-CSV-Retarget-For-Motionbuilder anim/S07-001.csv):
`Timecode,BlendShapeCount,` then the 52 curves in PascalCase in the app's order
(`models.rig.arkit.LIVELINK_NAMES`: JawRight before JawLeft, MouthRight before MouthLeft, unlike
Apple's order), then `HeadYaw,HeadPitch,HeadRoll,LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,
RightEyePitch,RightEyeRoll`; each row is `HH:MM:SS:FF.fff,61,` and the 61 values. Epic publishes
no specification of the file; what follows is what real takes and the importers that read them show.

- Timecode. The app writes its clock's time of day, `FF` the frame within the second at the
  timecode rate and `.fff` the sub-frame in thousandths of a frame (in the take above `FF` steps
  by 2 at 60 fps timecode and the fraction drifts by 0.0005 a row: not milliseconds). Importers
  read HH:MM:SS:FF as SMPTE timecode at the take's rate and drop the fraction (alexdjulin's
  MotionBuilder script above, `FBTimeCode(FRAMES_5994)`), or t = 3600·HH + 60·MM + SS +
  FF.fff/fps, or just the row order. We start at 00:00:00:00 and count the clip's frames:
  frame i is i frames of the timecode rate, so every row sits on a frame and `.fff` is .000. The
  timecode rate is the clip's rate, except at the NTSC rates N·1000/1001 (23.976, 29.97, 59.94),
  where it is SMPTE's non-drop-frame N labels per timecode second (the timecode runs 0.1 %
  behind the clock, as NDF timecode does; drop-frame's `;` is not this layout). At a rate with no
  SMPTE timecode (e.g. 12.5) FF.fff is the exact position within the second, 00:00:01:00.500
  for frame 13.
- BlendShapeCount is 61 (52 curves + 9 angles) on every row. The takes above spell the column
  `BlendShapeCount`, as the importers do; one public test quotes a take with `BlendshapeCount`
  (another app version?); importers read these two columns by position or skip them.
- Angles are radians (the take's eye angles are 0.1-0.2 at gaze coefficients of 0.1-0.5, and
  importers drive bones with them in -1..1, e.g. the Blender LiveLinkFace add-on,
  github.com/nmfisher/blender_livelinkface). Signs as in that take: pitch > 0 looks down
  (EyeLookDown rows), yaw > 0 turns toward the subject's right (both eyes' yaw < 0 on rows
  where EyeLookOutLeft and EyeLookInRight, Apple's "leftward gaze", are up), and roll > 0 tilts
  the top of the head toward the subject's left shoulder; i.e. rotations about the axes
  (x: subject's left, y: down, z: into the head), composed yaw first, then pitch about the
  turned x axis, then roll about the turned z axis. With that composition the take's eye roll
  ≈ yaw·pitch (e.g. yaw −0.148, pitch −0.205, roll +0.031) is what a gaze turned by yaw and then
  by pitch about the head's x axis gives. `pose_angles` makes these angles from the FLAME pose.
  The app writes zeros when its head rotation is off; so do we where no angles are given.

Plain files, in `ARKIT_NAMES` order (Apple's documentation): CSV `time,eyeBlinkLeft,…,tongueOut`
(time in seconds, as our weights CSV); JSON `{"format": "arkit-52", "fps", "names", "frames":
[{"time", "blendShapes": {name: weight}}]}`, the per-frame dictionary named as ARKit's
`ARFaceAnchor.blendShapes`.

Left and right are the subject's own, as in Apple's documentation (eyeBlinkLeft closes the
left eye), mouthLeft/jawLeft included (lips/jaw toward the subject's left). Live Link Face takes
are reported to carry MouthLeft and MouthRight the other way round (the Blender LiveLinkFace
add-on has an "invert MouthLeft and MouthRight" option for it, its pull request 1); our files follow Apple, so leave such an option off for them.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable
from fractions import Fraction
from typing import TextIO

import numpy as np
from scipy.spatial.transform import Rotation

from common.atomic import atomic_write
from models.rig.arkit import ARKIT_NAMES, LIVELINK_FROM_ARKIT, LIVELINK_NAMES
from models.rig.flame import FlameParams, _to_numpy

LIVELINK_ANGLES: tuple[str, ...] = (
    "HeadYaw", "HeadPitch", "HeadRoll",
    "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)
LIVELINK_HEADER: tuple[str, ...] = ("Timecode", "BlendShapeCount", *LIVELINK_NAMES, *LIVELINK_ANGLES)
BLENDSHAPE_COUNT = len(LIVELINK_NAMES) + len(LIVELINK_ANGLES)  # 61, written on every row
JSON_FORMAT = "arkit-52"  # what the export command recognises as ours
_WEIGHT_SLACK = 1e-6  # rounding a bounded solve may leave outside 0..1


def livelink_timecode(frame: int, fps: float) -> str:
    """`HH:MM:SS:FF.fff` of frame `frame` of a clip at `fps` that starts at 00:00:00:00.000
    (module docstring: NTSC rates count non-drop-frame at their whole rate)."""
    rate = Fraction(fps).limit_denominator(1001)  # 29.97 → 2997/100, 30000/1001 stays exact
    if abs(rate * Fraction(1001, 1000) - round(rate)) < Fraction(1, 100):  # N·1000/1001
        rate = Fraction(round(rate))
    seconds = math.floor(frame / rate)
    thousandths = round((frame - seconds * rate) * 1000)  # frames into the second, ×1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    whole, fraction = divmod(thousandths, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}:{whole:02d}.{fraction:03d}"


def pose_angles(params: FlameParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(head, left eye, right eye) yaw/pitch/roll, each (T, 3) radians in Live Link Face's
    convention (module docstring). The head is FLAME's global rotation composed with the neck
    (the head joint's world orientation, the root first as in FLAME's chain); each eye is its
    `eyes_pose` rotation, relative to the head as ARKit's eye transforms are to the face. FLAME's
    axes are x to the subject's left, y up, z out of the face."""
    head = _rotations(_to_numpy(params.rotation)) * _rotations(_to_numpy(params.neck_pose))
    eyes = _to_numpy(params.eyes_pose).astype(np.float64)
    return _yaw_pitch_roll(head), _yaw_pitch_roll(_rotations(eyes[:, :3])), _yaw_pitch_roll(_rotations(eyes[:, 3:]))


def write_livelink_csv(path: str | os.PathLike, weights: np.ndarray, fps: float,
                       head_ypr: np.ndarray | None = None, left_eye_ypr: np.ndarray | None = None,
                       right_eye_ypr: np.ndarray | None = None) -> None:
    """Live Link Face's CSV of `weights` (T, 52) in ARKIT_NAMES order at `fps`, with the head
    and eye angles (T, 3) radians from `pose_angles` (zeros where None), atomically."""
    weights = _checked_weights(weights, fps)
    angles = [_checked_angles(value, len(weights), name) for value, name in
              ((head_ypr, "head_ypr"), (left_eye_ypr, "left_eye_ypr"), (right_eye_ypr, "right_eye_ypr"))]
    table = np.column_stack([weights[:, LIVELINK_FROM_ARKIT], *angles]) + 0.0  # + 0.0: no "-0.0"

    def rows(text: TextIO) -> None:
        text.write(",".join(LIVELINK_HEADER) + "\n")
        for frame, values in enumerate(table):
            cells = ",".join(f"{value:.10f}" for value in values)
            text.write(f"{livelink_timecode(frame, fps)},{BLENDSHAPE_COUNT},{cells}\n")

    _write_text(path, rows)


def write_arkit_csv(path: str | os.PathLike, weights: np.ndarray, fps: float) -> None:
    """`time` in seconds and the 52 weights under Apple's names, one row per frame, atomically."""
    weights = _checked_weights(weights, fps)

    def rows(text: TextIO) -> None:
        table = csv.writer(text, lineterminator="\n")
        table.writerow(("time", *ARKIT_NAMES))
        table.writerows([f"{frame / fps:.9g}", *(f"{value:.9g}" for value in values)]
                        for frame, values in enumerate(weights))

    _write_text(path, rows)


def write_arkit_json(path: str | os.PathLike, weights: np.ndarray, fps: float,
                     residual_mm: np.ndarray | None = None) -> None:
    """`{"format": "arkit-52", "fps", "names", "frames": [{"time", "blendShapes": {name: weight}}]}`,
    atomically; with `residual_mm` (T,), each frame also holds the solve's RMS fit residual in mm."""
    weights = _checked_weights(weights, fps)
    frames = [{"time": float(f"{frame / fps:.9g}"),
               "blendShapes": {name: float(f"{value:.9g}") for name, value in zip(ARKIT_NAMES, values)}}
              for frame, values in enumerate(weights)]
    if residual_mm is not None:
        residual_mm = np.asarray(residual_mm, dtype=np.float64)
        if residual_mm.shape != (len(weights),) or not np.isfinite(residual_mm).all():
            raise ValueError(f"residual_mm must be {len(weights)} finite values, not {residual_mm.shape}")
        for frame, value in zip(frames, residual_mm):
            frame["residual_mm"] = float(f"{value:.6g}")
    document = {"format": JSON_FORMAT, "fps": float(fps), "names": list(ARKIT_NAMES), "frames": frames}
    _write_text(path, lambda text: json.dump(document, text, separators=(",", ":")))


def _checked_weights(weights: np.ndarray, fps: float) -> np.ndarray:
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive frame rate, not {fps}")
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2 or weights.shape[1] != len(ARKIT_NAMES):
        raise ValueError(f"weights must be (frames, {len(ARKIT_NAMES)}), not {weights.shape}")
    if not np.isfinite(weights).all():
        raise ValueError("weights must be finite")
    if weights.size and (weights.min() < -_WEIGHT_SLACK or weights.max() > 1 + _WEIGHT_SLACK):
        raise ValueError("ARKit weights must lie in 0..1")
    return np.clip(weights, 0.0, 1.0)


def _checked_angles(angles: np.ndarray | None, frames: int, name: str) -> np.ndarray:
    if angles is None:
        return np.zeros((frames, 3))
    angles = np.asarray(angles, dtype=np.float64)
    if angles.shape != (frames, 3) or not np.isfinite(angles).all():
        raise ValueError(f"{name} must be finite ({frames}, 3) radians, not {angles.shape}")
    return angles


def _rotations(axis_angles) -> Rotation:
    return Rotation.from_rotvec(np.asarray(axis_angles, dtype=np.float64).reshape(-1, 3))


def _yaw_pitch_roll(rotation: Rotation) -> np.ndarray:
    """Intrinsic y, x, z angles (rotation = R_y(a)·R_x(b)·R_z(c) in FLAME's axes), turned into the
    app's axes (x left, y down, z into the head): yaw = −a, pitch = b, roll = −c."""
    about_y, about_x, about_z = rotation.as_euler("YXZ").T
    return np.stack([-about_y, about_x, -about_z], axis=1)


def _write_text(path: str | os.PathLike, write: Callable[[TextIO], None]) -> None:
    def encode(handle) -> None:
        with io.TextIOWrapper(handle, encoding="utf-8", newline="") as text:
            write(text)

    atomic_write(path, encode)
