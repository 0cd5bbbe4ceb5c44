"""A performance's animation as files other tools read, from a Player in the state a render
uses (`Player.export_frames`): ARKit curves solved onto target shapes (Live Link Face CSV, or
Apple's names in CSV/JSON), glTF, FLAME motion, blendshape weights. `avatar export`, the app's
File menu and per-stimulus exports all write through `write_export`; `is_our_export` says which
existing files such a write may replace (avatar_app/outputs.py's rule)."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from common.errors import InputError
from models.rig.flame import FRAME_KEYS, save_flame_params

from ..player import Player

SUFFIXES = {"arkit": (".csv", ".json"), "gltf": (".glb",), "motion": (".npz",), "weights": (".csv", ".npz")}
WHAT = {"arkit": "ARKit curves", "gltf": "glTF file", "motion": "FLAME motion", "weights": "weights"}
_HEAD_BYTES = 1 << 16  # what is read of an existing file to recognise it
GLB_GENERATOR = "talking-head-studio"  # the start of asset.generator in the .glb files we write


def _head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(_HEAD_BYTES)


def _npz_members(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as archive:
        return set(archive.namelist())


def _glb_generator(path: Path) -> str:
    """asset.generator of a glTF binary: header (12 bytes), then the JSON chunk."""
    with open(path, "rb") as handle:
        head = handle.read(20)
        if len(head) < 20 or head[:4] != b"glTF" or head[16:20] != b"JSON":
            return ""
        length = int.from_bytes(head[12:16], "little")
        if length > _HEAD_BYTES * 64:
            return ""
        asset = json.loads(handle.read(length)).get("asset", {})
    return str(asset.get("generator", "")) if isinstance(asset, dict) else ""


def is_our_export(path: Path) -> bool:
    """A file an export writes, recognised by its own layout: a weights CSV (first column
    `time`), an ARKit CSV (Live Link's `Timecode` or Apple's `eyeBlinkLeft` in its header), an
    ARKit JSON (Apple's names in its first 64 KiB), a weights .npz (speech, expression, fps), a motion
    .npz (every FLAME key, `eyelids` included, which tracked files do not have), a .glb whose
    generator is ours. Anything else is not replaced."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".json"):
            head = _head(path)
            first = head.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
            if suffix == ".json":
                return first.startswith("{") and b'"eyeBlinkLeft"' in head
            header = first.split(",")
            return header[0] in ("time", "Timecode") or "eyeBlinkLeft" in header
        if suffix == ".npz":
            members = _npz_members(path)
            return ({"speech.npy", "expression.npy", "fps.npy"} <= members
                    or {f"{key}.npy" for key in FRAME_KEYS} <= members)
        if suffix == ".glb":
            return _glb_generator(path).startswith(GLB_GENERATOR)
    except (OSError, ValueError, zipfile.BadZipFile):
        return False
    return False


def write_export(player: Player, path: Path, kind: str, arkit_format: str = "livelink",
                 arkit_shapes: Path | None = None) -> str:
    """Write the clip of `player` as `kind` (a key of SUFFIXES) to `path`, atomically; for
    "arkit", `arkit_format` (livelink, csv or json: cli.ARKIT_FORMATS) and the target shapes file
    `arkit_shapes`. Returns what was written, in words."""
    if player.rig is None:
        raise InputError(f"{player.avatar.source}: a static 3DGS scene has no animation to export")
    if kind == "arkit":
        return _write_arkit(player, path, arkit_format, arkit_shapes)
    return {"gltf": _write_gltf, "motion": _write_motion, "weights": _write_weights}[kind](player, path)


def _write_weights(player: Player, path: Path) -> str:
    weights = player.weight_sequence()
    if path.suffix.lower() == ".npz":
        weights.save(path)
    else:
        weights.to_csv(path)
    return f"{len(weights.speech_names)} speech + {len(weights.expression_names)} expression weights"


def _write_motion(player: Player, path: Path) -> str:
    save_flame_params(player.export_frames(vertices=False).params, path)
    return "FLAME parameters"


def _write_arkit(player: Player, path: Path, chosen: str, shapes_path: Path) -> str:
    from models.rig.arkit import load_arkit_shapes, solve_arkit

    from . import arkit_files

    shapes = load_arkit_shapes(shapes_path, player.rig.num_vertices)
    frames = player.export_frames()
    solve = solve_arkit(shapes, frames.face)
    if chosen == "livelink":
        arkit_files.write_livelink_csv(path, solve.weights, frames.fps, *arkit_files.pose_angles(frames.params))
    elif chosen == "csv":
        arkit_files.write_arkit_csv(path, solve.weights, frames.fps)
    else:
        arkit_files.write_arkit_json(path, solve.weights, frames.fps, solve.residual_mm)
    residual = np.asarray(solve.residual_mm)
    return (f"52 ARKit curves ({chosen}) | fit residual median {np.median(residual):.2f} mm, "
            f"max {residual.max(initial=0.0):.2f} mm")


def _write_gltf(player: Player, path: Path) -> str:
    from .gltf import write_glb

    frames = player.export_frames(vertices=False)
    bs = player.avatar.blendshapes
    weights = (frames.speech, frames.expression) if bs is not None else None
    summary = write_glb(path, player.rig, frames.params, frames.fps, blendshapes=bs, weights=weights)
    return f"{summary.morph_targets} morph targets, {summary.joints} joints, {summary.bytes:,} bytes"
