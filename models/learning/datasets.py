"""Mesh-sequence data sets users bring for training and evaluation (docs/architecture.md §Formats).

VOCASET (neutral talking, with audio) and Florence 4D (expressions, no audio) are read into one
type, `MeshSequence`, so the learner and the metrics never see a file layout. The writers produce
the same layouts, so synthetic corpora and test fixtures go through the very code real data does.
"""

from __future__ import annotations

import csv
import io
import math
import operator
import os
import pickle
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.recfunctions import unstructured_to_structured

from common import ply
from common.atomic import atomic_write
from common.errors import InputError
from common.files import check_input_file, read_text_file
from common.limits import (
    MAX_ARRAY_BYTES,
    MAX_CHANNELS,
    MAX_COORDINATE,
    MAX_DURATION_S,
    MAX_NAME_CHARS,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
)
from models.audio.sources import Audio
from models.rig.npz import check_array_bytes, checked_float32, plain_array, read_npy
from models.rig.safe_pickle import load_pickle

VOCASET_FPS = 60.0
VOCASET_SPLITS: dict[str, tuple[str, ...]] = {
    "train": (
        "FaceTalk_170728_03272_TA",
        "FaceTalk_170904_00128_TA",
        "FaceTalk_170725_00137_TA",
        "FaceTalk_170915_00223_TA",
        "FaceTalk_170811_03274_TA",
        "FaceTalk_170913_03279_TA",
        "FaceTalk_170904_03276_TA",
        "FaceTalk_170912_03278_TA",
    ),
    "val": ("FaceTalk_170811_03275_TA", "FaceTalk_170908_03277_TA"),
    "test": ("FaceTalk_170809_00138_TA", "FaceTalk_170731_00024_TA"),
}
_LABEL_COLUMNS = ("subject", "sentence", "emotion", "intensity")

# Florence 4D expression names (folder names, trailing take numbers removed) whose meaning is one
# of our seven emotions; anything else keeps its own lower-cased name.
_FLORENCE_EMOTIONS = {
    "happy": ("happy", "happiness", "smile", "pleased", "joy", "joyful", "laugh", "laughing",
              "grin", "cheerful", "delighted", "amused"),
    "sad": ("sad", "sadness", "unhappy", "cry", "crying", "sorrow", "grief", "depressed", "miserable"),
    "angry": ("angry", "anger", "mad", "furious", "rage", "irritated", "annoyed"),
    "surprised": ("surprise", "surprised", "shocked", "astonished", "amazed"),
    "fearful": ("afraid", "fear", "fearful", "scared", "frightened", "terrified"),
    "disgusted": ("disgust", "disgusted", "repulsed"),
    "contempt": ("contempt", "scorn", "disdain", "sneer"),
}
_FLORENCE_TABLE = {alias: emotion for emotion, aliases in _FLORENCE_EMOTIONS.items() for alias in aliases}
_TAKE_SUFFIX = re.compile(r"[\s_-]*\d+$")
_FRAME_NUMBER = re.compile(r"(\d+)$")

# How the PLY reader words a mesh frame's problems (the wording users of the data sets know).
@dataclass
class MeshSequence:
    """One captured sequence of a fixed-topology face, with what it expresses."""

    name: str
    vertices: np.ndarray
    template: np.ndarray
    fps: float
    audio: Audio | None = None
    emotion: str | None = None
    intensity: float = 1.0

    def __post_init__(self) -> None:
        self.vertices = np.asarray(self.vertices, dtype=np.float32)
        self.template = np.asarray(self.template, dtype=np.float32)
        if self.vertices.ndim != 3 or self.vertices.shape[0] == 0 or self.vertices.shape[2] != 3:
            raise InputError(f"{self.name}: vertices must be (frames ≥ 1, V, 3), got {self.vertices.shape}")
        if self.template.shape != self.vertices.shape[1:]:
            raise InputError(f"{self.name}: template shape {self.template.shape} does not match "
                             f"vertices {self.vertices.shape}")
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise InputError(f"{self.name}: fps {self.fps} is not a positive number")
        if not 0.0 <= self.intensity <= 1.0:
            raise InputError(f"{self.name}: intensity {self.intensity} is outside 0..1")

    @property
    def displacements(self) -> np.ndarray:
        """Motion relative to this identity's neutral face: what blendshapes are learned from."""
        return self.vertices - self.template[None]


def florence_emotion(name: str) -> str | None:
    """Our emotion label for a Florence expression folder (`Smile2` → happy, `Neutral` → None)."""
    key = _TAKE_SUFFIX.sub("", name.strip().lower())
    if key == "neutral":
        return None
    return _FLORENCE_TABLE.get(key, name.strip().lower())


# ---------------------------------------------------------------------------------------- VOCASET


def load_vocaset(
    root: str | os.PathLike,
    subjects: Iterable[str] | None = None,
    stride: int = 2,
    labels: bool = True,
) -> list[MeshSequence]:
    """Read the published VOCASET layout; every `stride`-th 60 fps frame, so fps = 60 / stride.

    `data_verts.npy` is memory-mapped and only the rows a sequence uses are copied, so the full
    multi-gigabyte file is never read whole. `raw_audio_fixed.pkl` and `labels.csv` are optional.
    """
    root = Path(root)
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise InputError(f"VOCASET stride {stride!r} is not a positive integer")
    index_path, audio_path, templates_path = (
        root / "subj_seq_to_idx.pkl", root / "raw_audio_fixed.pkl", root / "templates.pkl")
    index = _nested_dict(load_pickle(index_path), str(index_path), depth=2, names=2)
    templates = _nested_dict(load_pickle(templates_path), str(templates_path), depth=0, names=1)
    audio_table = (_nested_dict(load_pickle(audio_path), str(audio_path), depth=1, names=2)
                   if audio_path.exists() else {})
    label_table = _read_labels(root / "labels.csv", index) if labels and (root / "labels.csv").exists() else {}
    chosen = sorted(index) if subjects is None else list(subjects)
    for subject in chosen:
        if subject not in index:
            held = ", ".join(sorted(index)[:10]) + (", ..." if len(index) > 10 else "")
            raise InputError(f"{index_path}: has no subject {subject!r}; it holds {held}")
    verts_path = root / "data_verts.npy"
    data = _open_verts(verts_path)
    count, n_vertices = data.shape[0], data.shape[1]
    plan = []
    for subject in chosen:
        for sentence in sorted(index[subject]):
            rows = _frame_rows(index[subject][sentence], index_path, f"{subject}/{sentence}")
            bad = [row for row in rows if not 0 <= row < count]
            if bad:
                raise InputError(f"{index_path}: {subject}/{sentence} points at row {bad[0]}, but {verts_path} "
                                 f"holds {count} rows")
            plan.append((subject, sentence, rows[::stride]))
    _check_copy(plan, count, n_vertices, index_path, verts_path)
    subject_templates = {subject: _subject_template(templates, subject, templates_path, n_vertices)
                         for subject in chosen}
    sequences = []
    for subject, sentence, rows in plan:
        where = f"{subject}/{sentence}"
        emotion, intensity = label_table.get((subject, sentence), (None, 1.0))
        sequences.append(MeshSequence(
            name=where, vertices=_coordinates(data[rows], f"{verts_path}: vertices of {where}"),
            template=subject_templates[subject], fps=VOCASET_FPS / stride,
            audio=_sentence_audio(audio_table, subject, sentence, audio_path),
            emotion=emotion, intensity=intensity))
    return sequences


def write_vocaset(root: str | os.PathLike, sequences: Iterable[MeshSequence], fps: float = VOCASET_FPS) -> None:
    """Write sequences named `subject/sentence` in the VOCASET layout, labels in `labels.csv`.

    The layout has no frame-rate field: its frame numbers count at 60 fps. Sequences are at `fps`
    = 60 / k, and each frame is held for k frame numbers (the rows are shared, not copied), so
    `load_vocaset(stride=k)` gives them back exactly and any stride stays true to time.
    """
    root = Path(root)
    hold = VOCASET_FPS / fps if fps > 0 else 0.0
    if hold < 1 or hold != round(hold):
        raise InputError(f"{root}: VOCASET frames count at 60 fps; {fps} fps is not 60 divided by a whole number")
    hold = int(hold)
    index: dict[str, dict[str, dict[int, int]]] = {}
    audio: dict[str, dict[str, dict]] = {}
    templates: dict[str, np.ndarray] = {}
    label_rows: list[tuple[str, str, str, str]] = []
    blocks: list[np.ndarray] = []
    rows = 0
    for seq in sequences:
        subject, sentence = _split_name(seq.name, "subject/sentence")
        if seq.fps != fps:
            raise InputError(f"{seq.name}: is at {seq.fps} fps, but this VOCASET layout is written at {fps} fps")
        if blocks and seq.vertices.shape[1] != blocks[0].shape[1]:
            raise InputError(f"{seq.name}: has {seq.vertices.shape[1]} vertices, earlier sequences "
                             f"{blocks[0].shape[1]}")
        if subject in templates and not np.array_equal(templates[subject], seq.template):
            raise InputError(f"{seq.name}: template differs from another sequence of subject {subject}")
        if sentence in index.get(subject, {}):
            raise InputError(f"{seq.name}: the same subject/sentence is given twice")
        templates[subject] = seq.template
        index.setdefault(subject, {})[sentence] = {
            frame: rows + frame // hold for frame in range(len(seq.vertices) * hold)}
        rows += len(seq.vertices)
        blocks.append(seq.vertices)
        if seq.audio is not None:
            audio.setdefault(subject, {})[sentence] = {"sample_rate": seq.audio.sample_rate,
                                                       "audio": seq.audio.samples}
        if seq.emotion is not None:
            label_rows.append((subject, sentence, seq.emotion, repr(float(seq.intensity))))
    if not blocks:
        raise InputError(f"{root}: no sequences to write")
    root.mkdir(parents=True, exist_ok=True)
    data = np.concatenate(blocks).astype(np.float32, copy=False)
    atomic_write(root / "data_verts.npy", lambda handle: np.save(handle, data, allow_pickle=False))
    for name, table in (("subj_seq_to_idx.pkl", index), ("raw_audio_fixed.pkl", audio),
                        ("templates.pkl", templates)):
        atomic_write(root / name, lambda handle, table=table: pickle.dump(table, handle))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(_LABEL_COLUMNS)
    writer.writerows(label_rows)
    atomic_write(root / "labels.csv", lambda handle: handle.write(text.getvalue().encode("utf-8")))


def _nested_dict(value: object, where: str, depth: int, names: int) -> dict:
    """Check a pickle holds dicts `depth + 1` levels deep whose first `names` levels are keyed
    by names, so later lookups, sorting and messages cannot go wrong."""
    if not isinstance(value, dict):
        raise InputError(f"{where}: expected a dict, found {type(value).__name__}")
    if names > 0 and not all(isinstance(key, str) and 0 < len(key) <= MAX_NAME_CHARS and key.isprintable()
                             for key in value):
        raise InputError(f"{where}: has a key that is not a name (printable text, at most "
                         f"{MAX_NAME_CHARS} characters)")
    if depth > 0:
        for key, inner in value.items():
            _nested_dict(inner, f"{where} [{key!r}]", depth - 1, names - 1)
    return value


def _coordinates(values: np.ndarray, where: str) -> np.ndarray:
    """Vertex positions as float32, finite and within MAX_COORDINATE metres."""
    return checked_float32(values, where, MAX_COORDINATE)


def _open_verts(path: Path) -> np.ndarray:
    """data_verts.npy memory-mapped after its header is checked against the file's size."""
    if not path.exists():
        raise InputError(f"{path}: file does not exist")
    data = read_npy(path, "VOCASET vertex file", mmap=True)
    if data.ndim != 3 or data.shape[2] != 3 or data.dtype.kind not in "iuf":
        raise InputError(f"{path}: expected numeric (frames, V, 3) vertices, got {data.dtype} {data.shape}")
    return data


def _check_copy(plan: list[tuple[str, str, list[int]]], count: int, n_vertices: int,
                index_path: Path, verts_path: Path) -> None:
    """The rows the sequences copy must fit memory: an index may name one row millions of times."""
    frame_bytes = n_vertices * 3 * 4
    copied = sum(len(rows) for _, _, rows in plan) * frame_bytes
    if copied > max(MAX_ARRAY_BYTES, count * frame_bytes):
        raise InputError(f"{index_path}: its sequences name rows of {verts_path.name} over and over; copying "
                         f"them would take {copied >> 20} MiB, more than the data itself and over "
                         f"{MAX_ARRAY_BYTES >> 30} GiB")


def _subject_template(templates: dict, subject: str, path: Path, n_vertices: int) -> np.ndarray:
    if subject not in templates:
        raise InputError(f"{path}: has no template for subject {subject}")
    template = plain_array(templates[subject], f"{path}: template of {subject}")
    if template.shape != (n_vertices, 3) or template.dtype.kind not in "iuf":
        raise InputError(f"{path}: template of {subject} has shape {template.shape}, but the vertex data "
                         f"has {n_vertices} vertices per frame")
    return _coordinates(template, f"{path}: template of {subject}")


def _frame_rows(frames: dict, path: Path, where: str) -> list[int]:
    """Data rows ordered by frame number (the pickle's dict order is not guaranteed to be)."""
    if not frames:
        raise InputError(f"{path}: {where} has no frames")
    try:
        pairs = sorted((operator.index(frame), operator.index(row)) for frame, row in frames.items())
    except TypeError:
        raise InputError(f"{path}: {where} maps frames to rows with non-integer numbers") from None
    return [row for _, row in pairs]


def _sentence_audio(table: dict, subject: str, sentence: str, path: Path) -> Audio | None:
    entry = table.get(subject, {}).get(sentence)
    if entry is None:
        return None
    where = f"{path}: {subject}/{sentence}"
    if not isinstance(entry, dict) or "audio" not in entry or "sample_rate" not in entry:
        raise InputError(f"{where} is not a dict with 'audio' and 'sample_rate'")
    rate = plain_array(entry["sample_rate"], f"{where}: sample_rate")
    if rate.shape != () or rate.dtype.kind not in "iuf" or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE or rate % 1:
        raise InputError(f"{where}: sample_rate must be a whole number of Hz in {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE}")
    samples = plain_array(entry["audio"], f"{where}: audio")
    if samples.ndim == 2 and samples.shape[1] > MAX_CHANNELS:
        raise InputError(f"{where}: audio has {samples.shape[1]} channels, more than {MAX_CHANNELS}")
    if samples.ndim and len(samples) / rate > MAX_DURATION_S:
        raise InputError(f"{where}: audio lasts longer than {MAX_DURATION_S / 3600:g} hours")
    try:
        return Audio(samples, int(rate))
    except InputError as err:
        raise InputError(f"{where}: {err}") from None


def _read_labels(path: Path, index: dict) -> dict[tuple[str, str], tuple[str | None, float]]:
    """labels.csv rows → {(subject, sentence): (emotion or None for neutral, intensity)}."""
    reader = csv.DictReader(io.StringIO(read_text_file(path, "labels file", encoding="utf-8-sig")))
    missing = [column for column in _LABEL_COLUMNS if column not in (reader.fieldnames or ())]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; expected {','.join(_LABEL_COLUMNS)}")
    table: dict[tuple[str, str], tuple[str | None, float]] = {}
    for row in reader:
        where = f"{path} line {reader.line_num}"
        if any(row[column] is None for column in _LABEL_COLUMNS):
            raise InputError(f"{where}: has fewer than {len(_LABEL_COLUMNS)} columns")
        subject, sentence, emotion, intensity_text = (row[column].strip() for column in _LABEL_COLUMNS)
        if sentence not in index.get(subject, {}):
            raise InputError(f"{where}: {subject}/{sentence} is not a sequence of this data set")
        if (subject, sentence) in table:
            raise InputError(f"{where}: {subject}/{sentence} is labelled twice")
        try:
            intensity = float(intensity_text) if intensity_text else 1.0
        except ValueError:
            raise InputError(f"{where}: intensity {intensity_text!r} is not a number") from None
        if not 0.0 <= intensity <= 1.0:
            raise InputError(f"{where}: intensity {intensity_text} is outside 0..1")
        table[(subject, sentence)] = (emotion.lower() or None, intensity)
    return table


def _split_name(name: str, pattern: str) -> tuple[str, str]:
    parts = name.split("/")
    if len(parts) != 2 or not all(parts) or any(part in (".", "..") for part in parts):
        raise InputError(f"sequence name {name!r} is not of the form {pattern}")
    return parts[0], parts[1]


# -------------------------------------------------------------------------------------- Florence 4D


def load_florence(root: str | os.PathLike, fps: float = 30.0) -> list[MeshSequence]:
    """Read `<identity>/<Expression>/<Expression>_<frame>.ply`; each sequence starts neutral,
    so its first frame is its template."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: Florence 4D folder does not exist")
    sequences: list[MeshSequence] = []
    for identity in _subfolders(root):
        for expression in _subfolders(identity):
            if not _ply_files(expression):
                continue
            vertices = _read_ply_sequence(expression)
            if sequences and vertices.shape[1] != sequences[0].vertices.shape[1]:
                raise InputError(f"{expression}: meshes have {vertices.shape[1]} vertices, but "
                                 f"{sequences[0].name} has {sequences[0].vertices.shape[1]}")
            sequences.append(MeshSequence(
                name=f"{identity.name}/{expression.name}", vertices=vertices, template=vertices[0].copy(),
                fps=fps, emotion=florence_emotion(expression.name)))
    if not sequences:
        raise InputError(f"{root}: no <identity>/<Expression>/*.ply sequences found")
    return sequences


def write_florence(
    root: str | os.PathLike, sequences: Iterable[MeshSequence], faces: np.ndarray | None
) -> None:
    """Write sequences named `identity/Expression` as binary PLY meshes, frames numbered from 0
    (`faces` None: vertices only).

    The layout has no template or label: loading takes the first frame as template and the
    emotion from the folder name.
    """
    root = Path(root)
    faces = np.zeros((0, 3), np.int32) if faces is None else np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise InputError(f"faces must be an integer (F, 3) array, got {faces.dtype} {faces.shape}")
    for seq in sequences:
        identity, expression = _split_name(seq.name, "identity/Expression")
        if faces.size and not (0 <= faces.min() and faces.max() < seq.vertices.shape[1]):
            raise InputError(f"{seq.name}: faces index vertices outside 0..{seq.vertices.shape[1] - 1}")
        folder = root / identity / expression
        names = {f"{expression}_{frame}.ply" for frame in range(len(seq.vertices))}
        stale = sorted(p.name for p in _ply_files(folder) if p.name not in names) if folder.is_dir() else []
        if stale:
            raise InputError(f"{folder}: already holds other frames ({stale[0]}, ...); "
                             "writing would mix sequences")
        folder.mkdir(parents=True, exist_ok=True)
        for frame, vertices in enumerate(seq.vertices):
            table = unstructured_to_structured(vertices, np.dtype([(axis, "<f4") for axis in "xyz"]))
            ply.write_ply(folder / f"{expression}_{frame}.ply", table, faces, comments=["talking-head-studio"])


def load_mesh_sequence(path: str | os.PathLike, fps: float, template: np.ndarray | None = None) -> MeshSequence:
    """A `.npy` (T, V, 3) or a folder of per-frame `.ply` files; template defaults to frame 0."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: does not exist")
    if path.is_dir():
        vertices = _read_ply_sequence(path)
    elif path.suffix.lower() == ".npy":
        vertices = read_npy(path, "vertex file")
        if vertices.ndim != 3 or vertices.shape[0] == 0 or vertices.shape[2] != 3:
            raise InputError(f"{path}: expected (frames, V, 3) vertices, got shape {vertices.shape}")
        if vertices.dtype.kind not in "iuf":
            raise InputError(f"{path}: vertices must be numbers, not {vertices.dtype}")
        vertices = _coordinates(vertices, f"{path}: vertices")
    else:
        raise InputError(f"{path}: expected a .npy file or a folder of .ply frames")
    if template is None:
        template = vertices[0].copy()
    elif np.shape(template) != vertices.shape[1:]:
        raise InputError(f"{path}: template shape {np.shape(template)} does not match the "
                         f"{vertices.shape[1]} vertices per frame")
    stem = path.name if path.is_dir() else path.stem
    return MeshSequence(name=stem, vertices=vertices, template=template, fps=fps)


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _ply_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() == ".ply" and not p.name.startswith(".")]


def _read_ply_sequence(folder: Path) -> np.ndarray:
    """Per-frame meshes ordered by the number ending each name (numerically: 2 before 10)."""
    numbered: dict[int, Path] = {}
    for path in _ply_files(folder):
        match = _FRAME_NUMBER.search(path.stem)
        if match is None:
            raise InputError(f"{path}: name does not end in a frame number")
        frame = int(match.group(1))
        if frame in numbered:
            raise InputError(f"{path}: frame {frame} is also {numbered[frame].name}")
        numbered[frame] = path
    if not numbered:
        raise InputError(f"{folder}: holds no .ply frames")
    order = sorted(numbered)
    frames = [_read_ply_vertices(numbered[frame]) for frame in order]
    for frame, mesh in zip(order, frames):
        if len(mesh) != len(frames[0]):
            raise InputError(f"{numbered[frame]}: has {len(mesh)} vertices, but {numbered[order[0]].name} "
                             f"has {len(frames[0])}")
    return np.stack(frames)


def _read_ply_vertices(path: Path) -> np.ndarray:
    """Vertex positions (V, 3) float32 from an ascii or binary PLY; other properties and
    elements after the vertices (faces) are skipped."""
    path = check_input_file(path, "PLY mesh")
    try:
        check_array_bytes(path.stat().st_size, str(path), "one mesh file")
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from None
    records = ply.read_vertices(path, check=lambda names: _check_xyz(path, names))
    table = np.stack([records[axis].astype(np.float64) for axis in "xyz"], axis=1)
    return _coordinates(table, f"{path}: vertex coordinates")


def _check_xyz(path: Path, names: list[str]) -> None:
    if not {"x", "y", "z"} <= set(names):
        raise InputError(f"{path}: vertex element lacks x, y or z")
