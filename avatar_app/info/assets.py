"""What the face's own files hold: avatars (folder or PLY), FLAME models, blendshape models,
weight sequences, FLAME motion (file or per-frame folder), audio, and the demo folder that
bundles one of each."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from assets import DEMO_DIR
from common.errors import InputError
from common.files import check_input_file
from models.audio.decode import AUDIO_SUFFIXES, open_audio
from models.audio.sources import duration
from models.rig.blendshapes import BlendshapeModel, WeightSequence
from models.rig.flame import load_flame, load_flame_params
from models.rig.motion_files import load_frame_folder
from models.rig.npz import npz_keys
from models.rig.teeth import FLAME_VERTICES
from renderer.ply import read_ply

from ..avatar import find_point_cloud
from ..outputs import is_our_mp4

FLAME_FACES, FLAME_TEETH_FACES = 9976, 10144
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm")
DEMO_FILES = ("flame_demo.npz", "avatar", "blendshapes.npz", "speech.wav")  # what `avatar build-demo` writes


def _flame_needed(top_face: int) -> str:
    if top_face < FLAME_FACES:
        return f"a mesh with more than {top_face} faces (FLAME has {FLAME_FACES})"
    if top_face < FLAME_TEETH_FACES:
        return f"FLAME with GaussianAvatars teeth ({FLAME_TEETH_FACES} faces), from a {FLAME_VERTICES}-vertex FLAME .pkl"
    return f"a mesh with more than {top_face} faces (more than FLAME with teeth: a head of its own, as the demo's)"


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


def is_point_cloud_folder(path: Path) -> bool:
    return (path / "point_cloud.ply").exists() or (path / "point_cloud").exists()


def is_motion_folder(path: Path, looked_at: int = 16) -> bool:
    """A folder without a point cloud with .npz files among its first entries: per-frame FLAME
    parameters, as VHAP's flame_param/."""
    if is_point_cloud_folder(path):
        return False
    try:
        with os.scandir(path) as entries:
            return any(entry.name.lower().endswith(".npz") for entry, _ in zip(entries, range(looked_at)))
    except OSError:
        return False


def is_demo_folder(path: Path) -> bool:
    """A folder as `avatar build-demo` writes it: the demo FLAME head beside an avatar/ folder."""
    return (path / "flame_demo.npz").is_file() and (path / "avatar").is_dir()


def face_file_kind(path: Path) -> str | None:
    """avatar | audio | flame | blendshapes | weights | motion for a regular file, from its
    suffix and npz keys; None for any other file."""
    suffix = path.suffix.lower()
    if suffix == ".ply":
        return "avatar"
    if suffix in AUDIO_SUFFIXES:
        return "audio"
    keys = npz_keys(path) if suffix == ".npz" else {"v_template"} if suffix == ".pkl" else set()
    for key, kind in (("v_template", "flame"), ("speech_basis", "blendshapes"), ("fps", "weights"),
                      ("expr", "motion")):
        if key in keys:
            return kind
    return None


def file_kind(path: Path) -> str:
    """What the app opens a file or folder as: `face_file_kind`'s kinds (a folder: an avatar,
    or motion if it holds per-frame .npz files)."""
    if path.is_dir():
        return "motion" if is_motion_folder(path) else "avatar"
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    check_input_file(path)  # a pipe or a device would block or never end
    kind = face_file_kind(path)
    if kind is None:
        raise InputError(f"{path}: not an avatar, PLY, FLAME model, blendshape model, weights, motion or audio file")
    return kind


def _listing(names: tuple[str, ...]) -> str:
    return ", ".join(names) or "(none)"


def _video(path: Path) -> str | None:
    """A video's picture stream as the ffmpeg imageio-ffmpeg ships reports it; None when the
    file has none (an audio-only .mp4 or .m4a) or ffmpeg cannot read it."""
    import imageio_ffmpeg  # noqa: PLC0415 - only videos need it

    frames = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(frames)
    except Exception:  # noqa: BLE001 - no video stream (imageio's parser fails) or not a media file
        return None
    finally:
        frames.close()
    width, height = meta["size"]
    sound = f"audio {meta['audio_codec']}" if meta.get("audio_codec") else "no audio"
    ours = "; made by `avatar`" if is_our_mp4(path) else ""
    return (f"{path}: video, {width}x{height}, {meta['fps']:g} fps, {meta['duration']:.2f} s "
            f"(about {round(meta['duration'] * meta['fps'])} frames), {meta['codec']}, {sound}{ours}")


def describe_audio(path: Path) -> str:
    """A video's picture and sound; a WAV from its header; any other audio decoded by ffmpeg,
    as rendering decodes it."""
    video = _video(path) if path.suffix.lower() in VIDEO_SUFFIXES else None
    if video is not None:
        return video
    a = open_audio(path)
    return f"{path}: audio, {a.sample_rate} Hz, {duration(a):.2f} s (mono after downmix)"


def describe_flame(path: Path) -> str:
    f = load_flame(path, teeth=False)
    teeth = " (GaussianAvatars adds teeth: 5143 vertices, 10144 faces)" if f.num_vertices == FLAME_VERTICES else ""
    return (f"{path}: FLAME model\n  vertices: {f.num_vertices}, faces: {f.num_faces}{teeth}\n"
            f"  shape components: {f.n_shape}, expression components: {f.n_expr}, joints: {f.J_regressor.shape[0]}\n"
            f"  eyelid blendshapes: {'yes (blinks)' if f.eyelids is not None else 'none (no blinks)'}")


def describe_blendshapes(path: Path) -> str:
    m = BlendshapeModel.load(path)
    err = np.concatenate([m.speech_mapping_error, m.expression_mapping_error]).max(initial=0.0) * 1000
    fitted = (f"{m.flame_name or 'a FLAME file'} (fingerprint {m.flame_fingerprint})" if m.flame_fingerprint
              else "not recorded (any FLAME of this mesh is accepted)")
    on_speech = [f"{e} {m.speech_names[k]} {row[k]:+.2f}" for e, row in zip(m.emotion_names, m.emotion_speech_profiles)
                 for k in [int(np.abs(row).argmax())] if row[k] != 0]
    return (f"{path}: blendshape model ({m.template.shape[0]} vertices)\n"
            f"  speech: {_listing(m.speech_names)}\n  expression: {_listing(m.expression_names)}\n"
            f"  emotions: {_listing(m.emotion_names)}\n"
            f"  emotions on the speech blendshapes (largest weight at intensity 1): {_listing(tuple(on_speech))}\n"
            f"  worst FLAME mapping error: {err:.3f} mm RMS\n  mapping fitted to: {fitted}")


def describe_weights(path: Path) -> str:
    w = WeightSequence.load(path)
    return (f"{path}: weight sequence, {len(w.speech)} frames at {float(w.fps):g} fps\n"
            f"  speech: {_listing(w.speech_names)}\n  expression: {_listing(w.expression_names)}")


def describe_motion(path: Path) -> str:
    if path.is_dir():
        frames = load_frame_folder(path).num_frames
        return (f"{path}: FLAME motion folder (one .npz per frame, VHAP's flame_param/ layout), {frames} frame(s), "
                "played in the order of the numbers in the file names")
    p = load_flame_params(path)
    kind = "avatar FLAME parameters" if p.shape is not None else "FLAME motion"
    if {"timestep_id", "n_processed_frames"} & npz_keys(path):
        kind = "VHAP tracking result (tracked_flame_params)" + (", with shape and static offset" if p.shape is not None else "")
    return f"{path}: {kind}, {p.num_frames} frame(s)"


DESCRIBERS = {"avatar": describe_avatar, "audio": describe_audio, "flame": describe_flame,
              "blendshapes": describe_blendshapes, "weights": describe_weights, "motion": describe_motion}


def _indented(text: str) -> list[str]:
    """A file's description as lines of its folder's."""
    return ["  " + line for line in text.splitlines()]


def describe_demo(path: Path) -> str:
    """The demo folder: each of its files described in turn, and whether it is the one
    rendering and the app use."""
    own = path.resolve() == DEMO_DIR.resolve()
    lines = [f"{path}: demo folder (`avatar build-demo` writes it; "
             f"{'the one `--demo` uses' if own else 'not the one `--demo` uses: that is ' + str(DEMO_DIR)})"]
    for name, kind in zip(DEMO_FILES, ("flame", "avatar", "blendshapes", "audio")):
        if (path / name).exists():
            lines += _indented(DESCRIBERS[kind](path / name))
        else:
            lines.append(f"  {path / name}: missing" + (" (built with --no-speech?)" if kind == "audio" else ""))
    return "\n".join(lines)
