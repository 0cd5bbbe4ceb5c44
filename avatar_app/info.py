"""`avatar info PATH`: say what a file or folder is, in the terms a user needs."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from common.errors import InputError
from common.files import check_input_file
from models.audio.sources import load_wav
from models.rig.blendshapes import BlendshapeModel, WeightSequence
from models.rig.flame import load_flame, load_flame_params
from models.rig.motion_files import load_frame_folder
from models.rig.npz import npz_keys
from models.rig.teeth import FLAME_VERTICES
from renderer.ply import read_ply

from .avatar import find_point_cloud

FLAME_FACES, FLAME_TEETH_FACES = 9976, 10144


def _flame_needed(top_face: int) -> str:
    if top_face < FLAME_FACES:
        return f"a mesh with more than {top_face} faces (FLAME has {FLAME_FACES})"
    if top_face < FLAME_TEETH_FACES:
        return f"FLAME with GaussianAvatars teeth ({FLAME_TEETH_FACES} faces), from a {FLAME_VERTICES}-vertex FLAME .pkl"
    return f"a mesh with more than {top_face} faces (more than FLAME with teeth)"


def describe_avatar(path: Path) -> str:
    ply = find_point_cloud(path)
    g = read_ply(ply)
    lines = [f"{ply}: Gaussian {'avatar (GaussianAvatars layout)' if g.is_bound else 'scene (static 3DGS, no bindings)'}",
             f"  Gaussians: {len(g):,}", f"  SH degree: {g.sh_degree}"]
    if g.is_bound and len(g):
        lo, hi = int(g.binding.min()), int(g.binding.max())
        if lo < 0:
            raise InputError(f"{ply}: binding holds a negative triangle index ({lo})")
        lines += [f"  bound to triangles {lo}..{hi} ({len(np.unique(g.binding.numpy())):,} distinct)",
                  f"  needs: {_flame_needed(hi)}"]
        params = ply.parent / "flame_param.npz"
        if params.is_file():
            p = load_flame_params(params)
            shape = "with shape and static offset" if p.shape is not None else "motion only"
            lines.append(f"  {params.name}: {p.num_frames} frame(s), {shape}")
    return "\n".join(lines)


def _is_motion_folder(path: Path, looked_at: int = 16) -> bool:
    """A folder without a point cloud with .npz files among its first entries: per-frame FLAME
    parameters, as VHAP's flame_param/."""
    if (path / "point_cloud.ply").exists() or (path / "point_cloud").exists():
        return False
    try:
        with os.scandir(path) as entries:
            return any(entry.name.lower().endswith(".npz") for entry, _ in zip(entries, range(looked_at)))
    except OSError:
        return False


def file_kind(path: Path) -> str:
    """avatar | audio | flame | blendshapes | weights | motion, from the suffix and npz keys (a
    folder: an avatar, or motion if it holds per-frame .npz files)."""
    if path.is_dir():
        return "motion" if _is_motion_folder(path) else "avatar"
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    check_input_file(path)  # a pipe or a device would block or never end
    suffix = path.suffix.lower()
    if suffix == ".ply":
        return "avatar"
    if suffix == ".wav":
        return "audio"
    keys = npz_keys(path) if suffix == ".npz" else {"v_template"} if suffix == ".pkl" else set()
    for key, kind in (("v_template", "flame"), ("speech_basis", "blendshapes"), ("fps", "weights"),
                      ("expr", "motion")):
        if key in keys:
            return kind
    raise InputError(f"{path}: not an avatar, PLY, FLAME model, blendshape model, weights, motion or WAV file")


def _listing(names: tuple[str, ...]) -> str:
    return ", ".join(names) or "(none)"


def describe(path: Path) -> str:
    kind = file_kind(path)
    if kind == "avatar":
        return describe_avatar(path)
    if kind == "audio":
        a = load_wav(path)
        return f"{path}: audio, {a.sample_rate} Hz, {a.duration:.2f} s (mono after downmix)"
    if kind == "flame":
        f = load_flame(path, teeth=False)
        teeth = " (GaussianAvatars adds teeth: 5143 vertices, 10144 faces)" if f.num_vertices == FLAME_VERTICES else ""
        return (f"{path}: FLAME model\n  vertices: {f.num_vertices}, faces: {f.num_faces}{teeth}\n"
                f"  shape components: {f.n_shape}, expression components: {f.n_expr}, joints: {f.J_regressor.shape[0]}\n"
                f"  eyelid blendshapes: {'yes (blinks)' if f.eyelids is not None else 'none (no blinks)'}")
    if kind == "blendshapes":
        m = BlendshapeModel.load(path)
        err = np.concatenate([m.speech_mapping_error, m.expression_mapping_error]).max(initial=0.0) * 1000
        fitted = (f"{m.flame_name or 'a FLAME file'} (fingerprint {m.flame_fingerprint})" if m.flame_fingerprint
                  else "not recorded (any FLAME of this mesh is accepted)")
        return (f"{path}: blendshape model ({m.template.shape[0]} vertices)\n"
                f"  speech: {_listing(m.speech_names)}\n  expression: {_listing(m.expression_names)}\n"
                f"  emotions: {_listing(m.emotion_names)}\n  worst FLAME mapping error: {err:.3f} mm RMS\n"
                f"  mapping fitted to: {fitted}")
    if kind == "weights":
        w = WeightSequence.load(path)
        return (f"{path}: weight sequence, {len(w.speech)} frames at {float(w.fps):g} fps\n"
                f"  speech: {_listing(w.speech_names)}\n  expression: {_listing(w.expression_names)}")
    if path.is_dir():
        frames = load_frame_folder(path).num_frames
        return (f"{path}: FLAME motion folder (one .npz per frame, VHAP's flame_param/ layout), {frames} frame(s), "
                "played in the order of the numbers in the file names")
    p = load_flame_params(path)
    kind = "avatar FLAME parameters" if p.shape is not None else "FLAME motion"
    if {"timestep_id", "n_processed_frames"} & npz_keys(path):
        kind = "VHAP tracking result (tracked_flame_params)" + (", with shape and static offset" if p.shape is not None else "")
    return f"{path}: {kind}, {p.num_frames} frame(s)"
