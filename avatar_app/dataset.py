"""`avatar render --dataset`: every frame of a GaussianAvatars / VHAP split (`transforms_*.json`)
rendered at its own camera and its timestep's FLAME parameters, each image written under the
frame's own `file_path` (as .png), so it lines up with the captured image (`avatar compare`).

A frame's FLAME parameters come from its `flame_param_path` (relative to the JSON's folder; a
one-frame npz with flame_param.npz's keys, as VHAP's nerf-dataset export writes), else from row
`timestep_index` of the avatar's own `flame_param.npz`; `flame="avatar"` takes that row for every
frame, as GaussianAvatars' own evaluation does (its flame_param.npz holds the parameters it
fine-tuned). The avatar's shape and static offset are always its own. Nothing else drives the
face: no speech, emotion or blendshapes. The frames go through the Player one at a time, each
with its camera, so they are made by the same stages as every other render (docs/architecture.md
§Pipeline); the output folder appears complete or not at all.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import imageio.v3 as iio
import numpy as np
from tqdm import tqdm

from common.errors import InputError
from models.rig.flame import FRAME_KEYS, FlameParams, load_flame_params
from renderer.camera import Camera
from renderer.camera_files import read_transforms

from .avatar import Avatar, AvatarSource
from .clip import DEFAULT_FPS, Clip
from .options import FLAME_SOURCES
from .outputs import check_output_folder, staged_folder
from .player import Player
from .threads import usable_cores, use_threads
from .video import is_video_path, write_behind

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")  # what an image's name may end with (any case)
_NAME_BYTES = 255  # one folder or file name, as most file systems allow


@dataclass(frozen=True)
class SplitFrame:
    """One image to render: its name under the output folder, its camera, and its row of the
    split's FLAME parameters."""

    name: str
    camera: Camera
    row: int


@dataclass(frozen=True)
class Split:
    """The frames of a transforms file and the FLAME parameters they use: one row per distinct
    timestep (None for an avatar without a rig)."""

    source: Path
    frames: list[SplitFrame]
    motion: FlameParams | None


def image_key(relative: str) -> str:
    """How an image is named for pairing: its relative path without an image extension."""
    stem, suffix = os.path.splitext(relative)
    return stem if suffix.lower() in IMAGE_SUFFIXES else relative


def frame_key(source: str, index: int, file_path: str) -> str:
    """A frame's image name without extension (`image_key`), checked to stay inside the output
    folder: relative, no `..`, no hidden (dot) names, which are the folder's own."""
    path = PurePosixPath(file_path)
    where = f"{source}: frame {index}: file_path {file_path!r}"
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise InputError(f"{where} leaves the output folder; file paths must be relative, without '..'")
    for part in path.parts:
        if part.startswith("."):
            raise InputError(f"{where}: names starting with '.' are reserved for the output folder's own files")
        try:
            too_long = len(part.encode()) > _NAME_BYTES
        except UnicodeEncodeError:
            raise InputError(f"{where} is not a usable file name") from None
        if too_long:
            raise InputError(f"{where}: a name longer than {_NAME_BYTES} bytes")
    return image_key(path.as_posix())


def read_split(path: str | os.PathLike, avatar: Avatar, flame: str = "split") -> Split:
    """The frames of the transforms file at `path` with their FLAME parameters for `avatar`
    (see the module's docstring); every frame's file is checked and read before anything renders."""
    if flame not in FLAME_SOURCES:
        raise InputError(f"--dataset-flame {flame}: use one of {', '.join(FLAME_SOURCES)}")
    path = Path(path)
    frames = read_transforms(path)
    rows: dict[tuple, int] = {}  # ("file", path) or ("timestep", t) → row
    params: list[FlameParams] = []
    names: dict[str, int] = {}
    split = []
    for i, frame in enumerate(frames):
        key = frame_key(str(path), i, frame.file_path)
        if key in names:
            raise InputError(f"{path}: frames {names[key]} and {i} both have the image {key}; each frame needs "
                             "its own file_path")
        names[key] = i
        row = 0
        if avatar.rig is not None:
            source = _flame_source(path, i, frame.flame_param_path, frame.timestep_index, avatar, flame)
            if source not in rows:
                rows[source] = len(params)
                params.append(_flame_row(path, i, source, avatar))
            row = rows[source]
        split.append(SplitFrame(key + ".png", frame.camera, row))
    folders = {str(folder) for frame in split for folder in PurePosixPath(frame.name).parents}
    clash = next((frame.name for frame in split if frame.name in folders), None)
    if clash is not None:
        raise InputError(f"{path}: {clash} is both an image and a folder of other images")
    motion = None
    if params:
        motion = FlameParams(**{k: np.concatenate([np.asarray(getattr(p, k), np.float32) for p in params])
                                for k in FRAME_KEYS})
    return Split(path, split, motion)


def _flame_source(path: Path, i: int, file: str | None, timestep: int | None, avatar: Avatar, flame: str) -> tuple:
    if file is not None and flame == "split":
        return ("file", path.parent / file)
    if timestep is None:
        needs = "no timestep_index (--dataset-flame avatar)" if flame == "avatar" else \
            "neither a flame_param_path nor a timestep_index"
        raise InputError(f"{path}: frame {i} has {needs}, so its FLAME parameters are unknown")
    frames = avatar.params.num_frames
    if timestep >= frames:
        raise InputError(f"{path}: frame {i}: timestep_index {timestep}, but the flame_param.npz of the avatar "
                         f"{avatar.source} has {frames} timestep{'s' if frames != 1 else ''}")
    return ("timestep", timestep)


def _flame_row(path: Path, i: int, source: tuple, avatar: Avatar) -> FlameParams:
    kind, value = source
    if kind == "timestep":
        return avatar.params.slice(value, value + 1)
    if not value.is_file():
        raise InputError(f"{path}: frame {i}: its FLAME parameters {value} are missing")
    row = load_flame_params(value)
    if row.num_frames != 1:
        raise InputError(f"{value}: {row.num_frames} frames; a frame's flame_param_path holds one timestep")
    return row


def render_split(player: Player, split: Split, out: str | os.PathLike, size: tuple[int, int] | None = None, *,
                 on_frame: Callable[[], None] | None = None, cancel: threading.Event | None = None) -> int:
    """Render every frame of `split` into the folder `out` (which must be missing, empty or
    ours; it appears complete or not at all) at its camera, scaled to `size` = (width, height)
    if given; the player's view keeps only its background. PNGs are encoded on a writer thread."""
    motion = split.motion
    player.clip = Clip(DEFAULT_FPS, 1 if motion is None else motion.num_frames, motion=motion,
                       origin=split.source.name)
    shown = False

    def frames() -> Iterator[np.ndarray]:
        nonlocal shown
        for frame in split.frames:
            width, height = size or (frame.camera.width, frame.camera.height)
            player.set_view(camera=frame.camera, width=width, height=height)
            image = next(player.render_range(frame.row, frame.row + 1, cancel=cancel))
            shown = shown or bool((image != image[0, 0]).any())
            if on_frame is not None:
                on_frame()
            yield image

    with staged_folder(Path(out), "dataset renders") as tmp:
        for folder in sorted({(tmp / frame.name).parent for frame in split.frames}):
            folder.mkdir(parents=True, exist_ok=True)
        names = (tmp / frame.name for frame in split.frames)
        count = write_behind(frames(), lambda image: iio.imwrite(next(names), image, extension=".png"))
        if not shown:
            raise InputError(f"{split.source}: nothing of the avatar is visible at any of its cameras (every image is "
                             "one colour): is this the dataset the avatar was trained on? Nothing was written")
    return count


# Options of `avatar render` that --dataset replaces: the dataset gives the cameras and the FLAME
# parameters of every frame, and nothing else drives the face.
_NOT_WITH_DATASET = ("audio", "weights", "motion", "camera", "camera_index", "yaw", "pitch", "distance", "emotion",
                     "preset", "speech_gain", "expression_gain", "blendshapes", "generator", "duration", "loudness")


def check_dataset_options(args: argparse.Namespace) -> None:
    """One line naming the options that cannot go with --dataset, if any were given."""
    given = [name for name in _NOT_WITH_DATASET if getattr(args, name, None) is not None]
    if getattr(args, "expression_space", "free") != "free":
        given.append("expression_space")
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise InputError(f"--dataset renders each frame at its own camera and FLAME parameters; {flags} cannot be "
                         "combined with it")


def cmd_render_dataset(args: argparse.Namespace, source: AvatarSource) -> int:
    """`avatar render --dataset JSON -o FOLDER`."""
    check_dataset_options(args)
    if is_video_path(args.output) or Path(args.output).suffix:
        raise InputError(f"-o {args.output}: --dataset writes PNG images into a folder; give a folder")
    check_output_folder(args.output, what="dataset renders")
    size, background = args.size, args.background  # parsed by the parser
    use_threads(usable_cores())
    avatar = dataclasses.replace(source, blendshapes=None, generator=None).load()  # nothing but FLAME drives it
    split = read_split(args.dataset, avatar, args.dataset_flame)
    player = Player(avatar, backend=args.backend)
    player.set_view(background=background)
    start = time.perf_counter()
    with tqdm(total=len(split.frames), unit="frame", desc="rendering", disable=args.quiet) as bar:
        count = render_split(player, split, args.output, size, on_frame=bar.update)
    seconds = time.perf_counter() - start
    print(f"wrote {args.output}: {count} images of {split.source.name} | backend {player.backend} | "
          f"{player.num_gaussians:,} Gaussians | {count / max(seconds, 1e-9):.1f} frames/s")
    return 0
