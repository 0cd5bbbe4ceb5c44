"""FLAME motion from one file or from a folder of per-frame files (docs/architecture.md §Formats).

VHAP's `export_as_nerf_dataset` writes one `flame_param/NNNNN.npz` per timestep: that frame's
rows, (1, width) (other exporters write (width,)), beside the per-avatar `shape` and offsets.
The frames play in the order of the number in their names, which need not be zero-padded.
VHAP's tracker output, `tracked_flame_params*.npz`, holds every frame's rows in one file in
timestep order and reads like a flame_param.npz (`load_flame_params`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from common.errors import InputError
from common.limits import MAX_MOTION_FILES
from models.rig.flame import FRAME_KEYS, FlameParams, frame_values, load_flame_params, read_param_arrays

_NUMBER = re.compile(r"\d+")


def frame_files(folder: Path) -> list[Path]:
    """The folder's per-frame .npz files in frame order (the last number in each name). Only
    .npz files, each with its own number, at least one and at most MAX_MOTION_FILES; the folder
    is read an entry at a time, so a huge one is refused before it is listed whole."""
    numbered: list[tuple[int, str]] = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if len(numbered) == MAX_MOTION_FILES:
                    raise InputError(f"{folder}: holds more than {MAX_MOTION_FILES:,} files, the most frames a "
                                     "motion folder may have")
                if not entry.name.lower().endswith(".npz") or not entry.is_file():
                    raise InputError(f"{folder / entry.name}: not an .npz file; a motion folder holds only "
                                     "one .npz file per frame")
                digits = _NUMBER.findall(entry.name[:-4])
                if not digits:
                    raise InputError(f"{folder / entry.name}: no frame number in the name "
                                     "(VHAP names them 00000.npz, 00001.npz, ...)")
                numbered.append((int(digits[-1]), entry.name))
    except OSError as err:
        raise InputError(f"{folder}: cannot read the folder ({err.strerror or err})") from None
    if not numbered:
        raise InputError(f"{folder}: the folder is empty; a motion folder holds one .npz file per frame "
                         "(VHAP's flame_param/)")
    numbered.sort()
    for (number, name), (next_number, next_name) in zip(numbered, numbered[1:]):
        if number == next_number:
            raise InputError(f"{folder}: {name} and {next_name} are both frame {number}")
    return [folder / name for _, name in numbered]


def _single_row(values: dict[str, np.ndarray], path: Path) -> None:
    for key, value in values.items():
        if not (value.ndim == 1 or (value.ndim == 2 and value.shape[0] == 1)):
            shape = "(" + ", ".join(map(str, value.shape)) + ")"
            raise InputError(f"{path}: {key} has shape {shape}; a per-frame file holds one row, "
                             f"(1, {FRAME_KEYS[key]}) or ({FRAME_KEYS[key]},)")


def _difference(values: dict[str, np.ndarray], layout: dict[str, tuple[int, ...]], first: Path) -> str | None:
    """How a frame's keys and shapes differ from the first frame's, or None."""
    for key in sorted(layout.keys() | values.keys()):
        if key not in values:
            return f"has no {key}, which {first.name} has"
        if key not in layout:
            return f"has {key}, which {first.name} has not"
        if values[key].shape != layout[key]:
            return f"{key} has shape {values[key].shape}, but {first.name} has {layout[key]}"
    return None


def load_frame_folder(folder: Path) -> FlameParams:
    """A folder of per-frame parameter files as one motion (frame order: `frame_files`). Every
    file must hold the same keys in the same shapes; `expr` with fewer than 100 columns is
    zero-padded, missing pose keys are zero. Only per-frame keys are read (no shape or offsets)."""
    files = frame_files(folder)
    first = read_param_arrays(files[0], FRAME_KEYS)
    _single_row(first, files[0])
    frame_values({key: value.reshape(1, -1) for key, value in first.items()}, str(files[0]))  # widths
    layout = {key: value.shape for key, value in first.items()}
    rows = {key: np.empty((len(files), value.size), np.float32) for key, value in first.items()}
    for index, path in enumerate(files):
        values = first if index == 0 else read_param_arrays(path, FRAME_KEYS)
        difference = _difference(values, layout, files[0])
        if difference:
            raise InputError(f"{path}: {difference}; every frame file of a motion folder has the same keys and shapes")
        for key, value in values.items():
            rows[key][index] = value.reshape(-1)
    return FlameParams(**frame_values(rows, str(folder)))


def load_motion(path: str | Path) -> FlameParams:
    """FLAME motion from a parameter file (flame_param.npz keys, VHAP's tracked_flame_params*.npz)
    or a folder of per-frame files (VHAP's flame_param/)."""
    path = Path(path)
    return load_frame_folder(path) if path.is_dir() else load_flame_params(path)


def motion_length(path: str | Path) -> int:
    """The number of frames of a motion; a folder's files are counted, not read."""
    path = Path(path)
    return len(frame_files(path)) if path.is_dir() else load_flame_params(path).num_frames
