"""Cameras from files: the frames of a GaussianAvatars / VHAP / NeRF `transforms*.json`, and a
single-camera JSON (`width`, `height`, `K`, `world_to_camera`), as our OpenCV `Camera`
(docs/architecture.md §Formats, camera files).

A transforms file's `transform_matrix` is camera-to-world in OpenGL/Blender axes (x right, y up,
z back); it becomes our world→camera `viewmat` (x right, y down, z forward) as GaussianAvatars'
`readCamerasFromTransforms` does: negate its y and z columns, then invert. Intrinsics: `fl_x`
`fl_y` `cx` `cy` when present (per frame, else at the top level), otherwise the field of view
`camera_angle_x` (and `camera_angle_y`; without it fy = fx, as GaussianAvatars) with the principal
point at the image centre. The image size is `w`/`h` (per frame, else top level), else the size
in the header of the frame's PNG image, which is what GaussianAvatars reads (from the image).
"""
from __future__ import annotations

import math
import os
import reprlib
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.errors import InputError
from common.files import check_input_file, parse_json, read_text_file
from common.limits import MAX_COORDINATE, MAX_DATASET_JSON_BYTES, MAX_IMAGE_SIDE, MAX_PIXELS, MIN_IMAGE_SIDE

from .camera import Camera

_RIGID_TOLERANCE = 1e-3  # |RᵀR − I| allowed in a file's rotation (values written as float32 are ~1e-7 off)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SINGLE_CAMERA_KEYS = ("width", "height", "K", "world_to_camera")


@dataclass(frozen=True)
class DatasetFrame:
    """One frame of a transforms file. Paths are as written in the file: relative to its folder."""

    camera: Camera
    file_path: str
    camera_index: int | None
    timestep_index: int | None
    flame_param_path: str | None
    fg_mask_path: str | None


def read_transforms(path: str | os.PathLike) -> list[DatasetFrame]:
    """Every frame of a GaussianAvatars / VHAP / NeRF `transforms*.json`, in file order."""
    source, data = _read(path)
    frames = _frames(source, data)
    return [_dataset_frame(source, data, i, frame) for i, frame in enumerate(frames)]


def load_camera(path: str | os.PathLike, index: int | None = None) -> Camera:
    """The camera of a single-camera JSON, or of a transforms file's frame whose `camera_index`
    is `index` (None: the first frame)."""
    source, data = _read(path)
    if "frames" in data:
        frames = _frames(source, data)
        number = 0 if index is None else _frame_with_camera(source, frames, index)
        return _frame_camera(source, data, number, frames[number])
    if index is not None:
        raise InputError(f"{source}: holds one camera, not a transforms file's frames: a camera index does not apply")
    missing = [key for key in SINGLE_CAMERA_KEYS if key not in data]
    if missing:
        raise InputError(f"{source}: not a camera file: no {', '.join(missing)} (a camera JSON has "
                         f"{', '.join(SINGLE_CAMERA_KEYS)}; a transforms file has frames)")
    width, height = (_side(source, key, data[key]) for key in ("width", "height"))
    K = _matrix(source, "K", data["K"], 3, 3)
    if K[0, 1] != 0 or K[1, 0] != 0 or np.any(K[2] != (0, 0, 1)):
        raise InputError(f"{source}: K must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] (no skew)")
    return _camera(source, _rigid(source, "world_to_camera", data["world_to_camera"]), width, height,
                   K[0, 0], K[1, 1], K[0, 2], K[1, 2])


def scaled_camera(camera: Camera, width: int, height: int) -> Camera:
    """The same camera for an image of width × height: each axis's focal length and principal
    point scale with that side (a new aspect ratio stretches, as resizing the captured image does)."""
    if (width, height) == (camera.width, camera.height):
        return camera
    scale = torch.tensor([[width / camera.width], [height / camera.height], [1.0]], dtype=camera.K.dtype)
    return Camera(camera.viewmat.clone(), camera.K * scale, width, height)


def camera_indices(path: str | os.PathLike) -> list[int]:
    """The camera_index values of a transforms file's frames, in order of first appearance;
    none for a single-camera file."""
    source, data = _read(path)
    return list(_camera_positions(source, _frames(source, data))) if "frames" in data else []


def _read(path: str | os.PathLike) -> tuple[str, dict]:
    text = read_text_file(path, "camera file", limit=MAX_DATASET_JSON_BYTES)
    data = parse_json(text, str(path), "camera file")
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a camera file: expected a JSON object")
    return str(path), data


def _frames(source: str, data: dict) -> list:
    frames = data.get("frames")
    if not isinstance(frames, list) or not frames:
        raise InputError(f"{source}: frames must be a non-empty list of camera frames")
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict):
            raise InputError(f"{source}: frame {i} is not a JSON object")
    return frames


def _index(source: str, where: str, frame: dict, key: str) -> int | None:
    value = frame.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise InputError(f"{source}: {where}: {key} is {reprlib.repr(value)}; expected a whole number ≥ 0")
    return value


def _camera_positions(source: str, frames: list) -> dict[int, int]:
    """Each camera_index → the position of the first frame that has it."""
    positions: dict[int, int] = {}
    for i, frame in enumerate(frames):
        camera_index = _index(source, f"frame {i}", frame, "camera_index")
        if camera_index is not None:
            positions.setdefault(camera_index, i)
    return positions


def _frame_with_camera(source: str, frames: list, index: int) -> int:
    """The position of the first frame whose camera_index is `index`."""
    positions = _camera_positions(source, frames)
    if index in positions:
        return positions[index]
    if not positions:
        raise InputError(f"{source}: camera index {index} asked for, but its frames have no camera_index")
    shown = sorted(positions)
    listed = ", ".join(map(str, shown[:12])) + (f", … ({len(shown)} in all)" if len(shown) > 12 else "")
    raise InputError(f"{source}: no frame with camera_index {index} (the file has {listed})")


def _dataset_frame(source: str, data: dict, i: int, frame: dict) -> DatasetFrame:
    where = f"frame {i}"
    paths = {}
    for key in ("file_path", "flame_param_path", "fg_mask_path"):
        value = frame.get(key)
        if value is not None and not (isinstance(value, str) and value and "\0" not in value):
            raise InputError(f"{source}: {where}: {key} must be a file name")
        paths[key] = value
    if paths["file_path"] is None:
        raise InputError(f"{source}: {where} has no file_path")
    return DatasetFrame(_frame_camera(source, data, i, frame), paths["file_path"],
                        _index(source, where, frame, "camera_index"), _index(source, where, frame, "timestep_index"),
                        paths["flame_param_path"], paths["fg_mask_path"])


def _frame_camera(source: str, data: dict, i: int, frame: dict) -> Camera:
    where = f"frame {i}"

    def value(key: str) -> Any:  # a frame's own value, else the file's shared one
        return frame[key] if key in frame else data.get(key)

    if "transform_matrix" not in frame:
        raise InputError(f"{source}: {where} has no transform_matrix")
    c2w = _rigid(source, f"{where} transform_matrix", frame["transform_matrix"])
    c2w[:3, 1:3] *= -1  # OpenGL/Blender camera axes (y up, z back) → OpenCV (y down, z forward)
    rotation, centre = c2w[:3, :3], c2w[:3, 3]
    w2c = np.eye(4)
    w2c[:3, :3], w2c[:3, 3] = rotation.T, -rotation.T @ centre
    if value("w") is not None and value("h") is not None:
        width, height = _side(source, f"{where} w", value("w")), _side(source, f"{where} h", value("h"))
    else:
        width, height = _png_size(source, where, frame.get("file_path"))
    if value("fl_x") is not None:
        fx = _number(source, f"{where} fl_x", value("fl_x"))
        fy = _number(source, f"{where} fl_y", value("fl_y")) if value("fl_y") is not None else fx
        cx = _number(source, f"{where} cx", value("cx")) if value("cx") is not None else width / 2
        cy = _number(source, f"{where} cy", value("cy")) if value("cy") is not None else height / 2
    elif value("camera_angle_x") is not None:
        fx = _focal(source, f"{where} camera_angle_x", value("camera_angle_x"), width)
        fy = fx if value("camera_angle_y") is None else _focal(source, f"{where} camera_angle_y",
                                                                value("camera_angle_y"), height)
        cx, cy = width / 2, height / 2
    else:
        raise InputError(f"{source}: {where} has no intrinsics: neither fl_x (fl_y, cx, cy) nor camera_angle_x, "
                         "in the frame or at the top level")
    return _camera(source, w2c, width, height, fx, fy, cx, cy, where)


def _camera(source: str, w2c: np.ndarray, width: int, height: int, fx: float, fy: float, cx: float, cy: float,
            where: str = "") -> Camera:
    prefix = f"{where} " if where else ""
    for name, focal in (("fx", fx), ("fy", fy)):
        if not 0 < focal <= MAX_PIXELS:
            raise InputError(f"{source}: {prefix}focal length {name} is {focal:g}; expected 0 < {name} ≤ {MAX_PIXELS:g} "
                             "pixels")
    for name, centre in (("cx", cx), ("cy", cy)):
        if not abs(centre) <= MAX_PIXELS:
            raise InputError(f"{source}: {prefix}principal point {name} is {centre:g}; expected at most "
                             f"{MAX_PIXELS:g} pixels from the corner")
    K = torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=torch.float32)
    return Camera(torch.tensor(w2c, dtype=torch.float32), K, width, height)


def _number(source: str, what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{source}: {what} is {reprlib.repr(value)}; expected a finite number")
    return float(value)


def _focal(source: str, what: str, value: Any, side: int) -> float:
    """The focal length in pixels of a field of view in radians across `side` pixels."""
    angle = _number(source, what, value)
    if not 0 < angle < math.pi:
        raise InputError(f"{source}: {what} is {angle:g}; expected a field of view in radians, 0 < angle < π")
    return 0.5 * side / math.tan(0.5 * angle)


def _side(source: str, what: str, value: Any) -> int:
    """An image width or height: a whole number in MIN_IMAGE_SIDE..MAX_IMAGE_SIDE."""
    number = _number(source, what, value)
    if number != int(number) or not MIN_IMAGE_SIDE <= number <= MAX_IMAGE_SIDE:
        raise InputError(f"{source}: {what} is {number:g}; expected a whole number of pixels in "
                         f"{MIN_IMAGE_SIDE}..{MAX_IMAGE_SIDE}")
    return int(number)


def _matrix(source: str, what: str, value: Any, rows: int, cols: int) -> np.ndarray:
    if not (isinstance(value, list) and len(value) == rows
            and all(isinstance(row, list) and len(row) == cols for row in value)):
        raise InputError(f"{source}: {what} must be a {rows}×{cols} matrix (a list of {rows} rows of {cols} numbers)")
    return np.array([[_number(source, what, v) for v in row] for row in value], np.float64)


def _rigid(source: str, what: str, value: Any) -> np.ndarray:
    """A 4×4 rigid transform [R t; 0 0 0 1] (R a rotation), as float64."""
    matrix = _matrix(source, what, value, 4, 4)
    rotation = matrix[:3, :3]
    if np.any(matrix[3] != (0, 0, 0, 1)) or abs(np.linalg.det(rotation)) < 1e-6:
        raise InputError(f"{source}: {what} is not an invertible transform (its last row must be 0 0 0 1 and its "
                         "rotation non-singular)")
    if np.abs(rotation.T @ rotation - np.eye(3)).max() > _RIGID_TOLERANCE or np.linalg.det(rotation) < 0:
        raise InputError(f"{source}: {what} is not a rigid transform: its 3×3 part must be a rotation "
                         "(no scale, shear or mirroring)")
    if np.abs(matrix[:3, 3]).max() > MAX_COORDINATE:
        raise InputError(f"{source}: {what} places the camera more than {MAX_COORDINATE:g} m away")
    return matrix


def _png_size(source: str, where: str, file_path: Any) -> tuple[int, int]:
    """Width and height from the IHDR chunk of the frame's PNG image (its path relative to the
    transforms file, `.png` added when missing, as GaussianAvatars), for frames without w and h."""
    if not isinstance(file_path, str) or not file_path or "\0" in file_path:
        raise InputError(f"{source}: {where} has no image size (w and h) and no file_path to read it from")
    image = Path(source).parent / file_path
    if ".png" not in file_path:
        image = image.with_name(image.name + ".png")
    try:
        with open(check_input_file(image, "image"), "rb") as handle:
            header = handle.read(24)
    except (InputError, OSError) as err:
        raise InputError(f"{source}: {where} has no image size (w and h), and its image cannot be read: "
                         f"{err if isinstance(err, InputError) else err.strerror}") from None
    if len(header) < 24 or header[:8] != _PNG_SIGNATURE or header[12:16] != b"IHDR":
        raise InputError(f"{source}: {where} has no image size (w and h), and its image {image} is not a PNG")
    width, height = struct.unpack(">II", header[16:24])
    return (_side(source, f"{where} image {image} width", width), _side(source, f"{where} image {image} height", height))
