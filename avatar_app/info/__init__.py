"""`avatar info PATH`: say what a file or folder is, in the terms a user needs. Every folder
and file the studio reads or writes is recognised by its name or content and described by the
project's own reader of it (docs/architecture.md §Formats); anything else gets one line saying
what `info` can describe."""
from __future__ import annotations

from pathlib import Path

from common.errors import InputError
from common.files import check_input_file, parse_json, read_text_file
from common.limits import MAX_DATASET_JSON_BYTES

from .assets import (
    DESCRIBERS,
    describe_demo,
    face_file_kind,
    file_kind,
    is_demo_folder,
    is_motion_folder,
    is_point_cloud_folder,
)

__all__ = ["describe", "file_kind"]

KNOWN = ("an avatar folder or .ply, the demo folder, a generator, checkpoint or wav2vec2 folder, a stimuli folder or its "
         "manifest (.json/.csv), trial lists (folder or .csv), a design (.csv/.yaml), an emotion preset, a camera "
         "file or dataset transforms*.json (or their folder), a FLAME model (.pkl/.npz), a blendshape model, "
         "weights or motion (.npz, or a folder of per-frame .npz), an audio or video file, a folder of PNG frames, a synthetic corpus, a VOCASET or Florence 4D folder")


def unrecognised(path: Path, what: str) -> InputError:
    return InputError(f"{path}: {what} `avatar info` does not recognise; it describes {KNOWN}")


def _describe_folder(path: Path) -> str:
    from .checkpoints import describe_checkpoint, is_checkpoint_folder
    from .study import describe_stimuli_folder, describe_trials_folder, is_stimuli_folder, is_trials_folder

    if is_point_cloud_folder(path):
        return DESCRIBERS["avatar"](path)
    if is_demo_folder(path):
        return describe_demo(path)
    for recognised, describer in ((is_checkpoint_folder, describe_checkpoint), (is_stimuli_folder,
                                  describe_stimuli_folder), (is_trials_folder, describe_trials_folder)):
        if recognised(path):
            return describer(path)
    from .training import (
        describe_corpus,
        describe_florence,
        describe_vocaset,
        is_corpus_folder,
        is_florence_folder,
        is_vocaset_folder,
    )

    for recognised, describer in ((is_corpus_folder, describe_corpus), (is_vocaset_folder, describe_vocaset)):
        if recognised(path):
            return describer(path)
    splits = sorted(path.glob("transforms*.json"))
    if splits:
        from .cameras import describe_transforms

        return f"{path}: dataset folder, {len(splits)} split(s)\n" + "\n".join(
            "  " + line for split in splits for line in describe_transforms(split).splitlines())
    if is_motion_folder(path):
        return DESCRIBERS["motion"](path)
    if is_florence_folder(path):
        return describe_florence(path)
    frames = sorted(path.glob("frame_*.png"))
    if frames:
        sound = " with audio.wav" if (path / "audio.wav").is_file() else ""
        return f"{path}: PNG frames (`avatar render -o FOLDER`), {len(frames)} frame(s){sound}"
    raise unrecognised(path, "a folder")


def _describe_json(path: Path) -> str:
    """A JSON file by what it holds: a manifest, preset, checkpoint config, trial settings or a camera."""
    from models.drivers.checkpoint import FORMAT as CHECKPOINT_FORMAT
    from renderer.camera_files import SINGLE_CAMERA_KEYS

    from ..preset import FORMAT as PRESET_FORMAT
    from ..stimuli.batch import MANIFEST_FORMAT
    from .cameras import describe_camera_file, describe_transforms
    from .checkpoints import describe_checkpoint
    from .study import describe_manifest, describe_preset, describe_trials_folder

    data = parse_json(read_text_file(path, "JSON file", limit=MAX_DATASET_JSON_BYTES), str(path))
    if not isinstance(data, dict):
        raise unrecognised(path, "a JSON file")
    by_format = {MANIFEST_FORMAT: describe_manifest, PRESET_FORMAT: describe_preset,
                 CHECKPOINT_FORMAT: lambda p: describe_checkpoint(p.parent)}
    if data.get("format") in by_format:
        return by_format[data["format"]](path)
    if path.name == "config.json" and "model_type" in data:  # a Hugging Face model folder's
        return describe_checkpoint(path.parent)
    if "frames" in data:
        return describe_transforms(path)
    if any(key in data for key in SINGLE_CAMERA_KEYS):
        return describe_camera_file(path)
    if {"manifest", "participants", "seed"} <= data.keys():
        return describe_trials_folder(path.parent)
    raise unrecognised(path, "a JSON file")


def describe(path: Path) -> str:
    """A description of what `path` holds, or one InputError line."""
    if path.is_dir():
        return _describe_folder(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    check_input_file(path)  # a pipe or a device would block or never end
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _describe_json(path)
    if suffix in (".csv", ".yaml", ".yml"):
        from .study import describe_csv, describe_design

        return describe_csv(path) if suffix == ".csv" else describe_design(path)
    kind = face_file_kind(path)
    if kind is None:
        raise unrecognised(path, "a file")
    return DESCRIBERS[kind](path)
