"""What the training data folders hold, told from their indexes and headers without reading
the meshes: a VOCASET folder, a Florence 4D folder, and the synthetic corpus `avatar
make-corpus` writes in those layouts (with its planted model and truth)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from common.errors import InputError
from common.files import read_text_file
from models.rig.npz import npz_keys, read_npy
from models.rig.safe_pickle import load_pickle

from .assets import describe_blendshapes

VOCASET_INDEX, VOCASET_VERTICES = "subj_seq_to_idx.pkl", "data_verts.npy"
CORPUS_FILES = ("planted.npz", "truth.npz")


def is_vocaset_folder(path: Path) -> bool:
    return (path / VOCASET_INDEX).is_file() and (path / VOCASET_VERTICES).is_file()


def is_florence_folder(path: Path) -> bool:
    """<identity>/<Expression>/*.ply: a PLY two levels down in the first identity folder."""
    identities = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    return bool(identities) and any(identities[0].glob("*/*.ply"))


def is_corpus_folder(path: Path) -> bool:
    return all((path / name).is_file() for name in CORPUS_FILES)


def describe_vocaset(path: Path) -> str:
    index = load_pickle(path / VOCASET_INDEX)
    if not isinstance(index, dict) or not all(isinstance(v, dict) for v in index.values()):
        raise InputError(f"{path / VOCASET_INDEX}: expected {{subject: {{sentence: frames}}}}")
    vertices = read_npy(path / VOCASET_VERTICES, "VOCASET vertex file", mmap=True)
    lines = [f"{path}: VOCASET folder (--vocaset {path}), {len(index)} subject(s), "
             f"{sum(len(v) for v in index.values())} sequence(s)",
             f"  {VOCASET_VERTICES}: {vertices.shape[0]:,} frames of {vertices.shape[1] if vertices.ndim > 1 else 0} "
             "vertices at 60 fps (training reads every 2nd)",
             f"  subjects: {', '.join(map(str, list(index)[:8]))}{' …' if len(index) > 8 else ''}",
             f"  audio: {'raw_audio_fixed.pkl' if (path / 'raw_audio_fixed.pkl').is_file() else 'none (no talking clips)'}"]
    if (path / "labels.csv").is_file():
        rows = list(csv.DictReader(io.StringIO(read_text_file(path / "labels.csv", "labels file",
                                                              encoding="utf-8-sig"))))
        emotions = sorted({(r.get("emotion") or "").strip().lower() or "neutral" for r in rows})
        lines.append(f"  labels.csv: {len(rows)} labelled sequence(s): {', '.join(emotions)}")
    return "\n".join(lines)


def describe_florence(path: Path) -> str:
    identities = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    clips = [e for i in identities for e in sorted(i.iterdir()) if e.is_dir() and any(e.glob("*.ply"))]
    frames = sum(1 for clip in clips for _ in clip.glob("*.ply"))
    return (f"{path}: Florence 4D folder (--florence {path}), {len(identities)} identit{'y' if len(identities) == 1 else 'ies'}, "
            f"{len(clips)} expression clip(s), {frames:,} PLY frame(s)")


def describe_corpus(path: Path) -> str:
    clips = len(npz_keys(path / "truth.npz")) // 2  # a speech and an expression array per clip
    lines = [f"{path}: synthetic corpus (`avatar make-corpus`; train with --vocaset {path / 'vocaset'} "
             f"--florence {path / 'florence'}), planted truth for {clips} clip(s)"]
    for name, describer, found in (("vocaset", describe_vocaset, is_vocaset_folder),
                                   ("florence", describe_florence, is_florence_folder)):
        if (path / name).is_dir() and found(path / name):
            lines += ["  " + line for line in describer(path / name).splitlines()]
    lines += ["  " + line for line in describe_blendshapes(path / "planted.npz").splitlines()]
    return "\n".join(lines)
