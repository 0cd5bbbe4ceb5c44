"""The blendshape model and per-frame weight sequences (docs/architecture.md §Formats).

Speech and expression blendshapes are vertex displacements with a fitted linear map to FLAME
parameters, so weights drive FLAME (and through it the avatar) by one matrix product per frame.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, InitVar, dataclass, field, fields
from typing import BinaryIO, Self

import numpy as np

from common.atomic import atomic_write
from common.errors import InputError
from common.files import csv_cell
from common.limits import (
    MAX_COORDINATE,
    MAX_DURATION_S,
    MAX_FLAME_PARAMETER,
    MAX_FPS,
    MAX_NAME_CHARS,
    MAX_NAMES,
    MAX_WEIGHT,
    MIN_FPS,
)
from models.rig.emotion import check_emotions
from models.rig.npz import checked_float32, read_npz

FLAME_EXPR = 100
FLAME_PARAMS = FLAME_EXPR + 3  # expression coefficients, then jaw_pose xyz (axis-angle)
FORMAT_VERSION = 1
FINGERPRINT_CHARS = 16
FINGERPRINT = re.compile(f"[0-9a-f]{{{FINGERPRINT_CHARS}}}")
MAX_FILE_NAME_CHARS = 255


def _names(source: str, key: str, value: Sequence[str] | np.ndarray) -> tuple[str, ...]:
    """Names as a tuple of distinct, short, printable strings (from a string array or any sequence):
    they become sliders, CSV columns and parts of messages."""
    if isinstance(value, np.ndarray) and (value.ndim != 1 or value.dtype.kind != "U"):
        raise InputError(f"{source}: {key} must be a 1-D string array, got {value.dtype} {value.shape}")
    if len(value) > MAX_NAMES:
        raise InputError(f"{source}: {key} holds {len(value)} names, more than {MAX_NAMES}")
    names = tuple(value)
    if not all(isinstance(name, str) and 0 < len(name) <= MAX_NAME_CHARS and name.isprintable() for name in names):
        raise InputError(f"{source}: {key} must be non-empty strings of printable characters, "
                         f"at most {MAX_NAME_CHARS} each")
    if len(set(names)) != len(names):
        raise InputError(f"{source}: {key} has duplicates")
    return tuple(str(name) for name in names)


def _array(source: str, key: str, value: np.ndarray, shape: tuple[int | None, ...], bound: float) -> np.ndarray:
    """A float32 array of the expected shape (None matches any length), finite and within ±bound."""
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise InputError(f"{source}: {key} must be numeric, got {array.dtype}")
    if array.ndim != len(shape) or any(w is not None and w != n for w, n in zip(shape, array.shape)):
        wanted = "(" + ", ".join("T" if w is None else str(w) for w in shape) + ")"
        raise InputError(f"{source}: {key} has shape {array.shape}, expected {wanted}")
    return checked_float32(array, f"{source}: {key}", bound)


def _text(source: str, key: str, value: str | np.ndarray, limit: int) -> str:
    """One line of printable text (a str, or a 0-d string array as loaded), at most `limit` characters."""
    array = np.asarray(value) if isinstance(value, (str, np.ndarray)) else None
    text = str(array) if array is not None and array.shape == () and array.dtype.kind == "U" else None
    if text is None or len(text) > limit or not text.isprintable():
        raise InputError(f"{source}: {key} must be one line of text of at most {limit} characters")
    return text


def _distinct(source: str, speech_names: tuple[str, ...], expression_names: tuple[str, ...]) -> None:
    """Speech and expression names share one namespace (CSV columns, GUI sliders)."""
    shared = sorted(set(speech_names) & set(expression_names))
    if shared:
        raise InputError(f"{source}: names used for both speech and expression: {', '.join(shared)}")


def _finite_number(source: str, key: str, value: float) -> float:
    """One real number (not an array, not text), finite."""
    try:
        array = np.asarray(value)
    except Exception:  # an object numpy cannot take
        array = np.asarray(None)
    if array.shape != () or array.dtype.kind not in "iuf":
        raise InputError(f"{source}: {key} must be one number, got {array.dtype} of shape {array.shape}")
    number = float(array)
    if not math.isfinite(number):
        raise InputError(f"{source}: {key} {number} is not a finite number")
    return number


def _storable(value: object) -> np.ndarray:
    """Name tuples become string arrays so that loading needs no pickle."""
    return np.array(value, dtype=str) if isinstance(value, tuple) else np.asarray(value)


class _NpzRecord:
    """Load/save for a dataclass whose fields are arrays, name tuples and numbers; fields with
    a default may be absent from older files."""

    @classmethod
    def load(cls, path: str | os.PathLike) -> Self:
        """Read and validate; problems raise InputError naming the file."""
        arrays = read_npz(path, [f.name for f in fields(cls)])
        missing = [f.name for f in fields(cls)
                   if f.name not in arrays and f.default is MISSING and f.default_factory is MISSING]
        if missing:
            raise InputError(f"{path}: missing key(s) {', '.join(missing)}")
        return cls(**arrays, source=str(path))

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically (temporary file, then rename)."""
        arrays = {f.name: _storable(getattr(self, f.name)) for f in fields(self)}
        atomic_write(path, lambda handle: np.savez(handle, **arrays))


@dataclass(kw_only=True)
class BlendshapeModel(_NpzRecord):
    """Named speech/expression blendshapes, emotion profiles and their FLAME mapping."""

    speech_names: tuple[str, ...]
    expression_names: tuple[str, ...]
    emotion_names: tuple[str, ...]
    speech_basis: np.ndarray  # (Ks, V, 3) displacements from template
    expression_basis: np.ndarray  # (Ke, V, 3)
    speech_to_flame: np.ndarray  # (Ks, 103)
    expression_to_flame: np.ndarray  # (Ke, 103)
    emotion_profiles: np.ndarray  # (E, Ke) expression weights at intensity 1
    template: np.ndarray  # (V, 3)
    speech_mapping_error: np.ndarray  # (Ks,) RMS vertex error of the FLAME fit, metres
    expression_mapping_error: np.ndarray  # (Ke,)
    region_names: tuple[str, ...] = ()  # facial regions (mouth, brows, ...) for metrics and CSTalk
    region_masks: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # (R, V) 0/1
    # (E, Ks) speech weights at intensity 1: what an emotion moves along the speech blendshapes
    # (jaw drop, lip stretch, lip tightening), added to whatever is spoken; zeros when absent.
    emotion_speech_profiles: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    # The FLAME file the mapping was fitted to (models.rig.mapping.flame_fingerprint, and its file
    # name for messages); empty in files made before it was recorded.
    flame_fingerprint: str = ""
    flame_name: str = ""
    format_version: int = FORMAT_VERSION
    source: InitVar[str] = "blendshape model"

    def __post_init__(self, source: str) -> None:
        version = np.asarray(self.format_version)
        if version.shape != () or version.dtype.kind not in "iu" or int(version) != FORMAT_VERSION:
            raise InputError(f"{source}: format_version is not the integer {FORMAT_VERSION}")
        self.format_version = FORMAT_VERSION
        self.speech_names = _names(source, "speech_names", self.speech_names)
        self.expression_names = _names(source, "expression_names", self.expression_names)
        self.emotion_names = _names(source, "emotion_names", self.emotion_names)
        self.region_names = _names(source, "region_names", self.region_names)
        self.flame_fingerprint = _text(source, "flame_fingerprint", self.flame_fingerprint, FINGERPRINT_CHARS)
        if self.flame_fingerprint and not FINGERPRINT.fullmatch(self.flame_fingerprint):
            raise InputError(f"{source}: flame_fingerprint must be {FINGERPRINT_CHARS} hexadecimal digits")
        self.flame_name = _text(source, "flame_name", self.flame_name, MAX_FILE_NAME_CHARS)
        _distinct(source, self.speech_names, self.expression_names)
        self.template = _array(source, "template", self.template, (None, 3), MAX_COORDINATE)
        ks, ke = len(self.speech_names), len(self.expression_names)
        v = self.template.shape[0]
        if v == 0:
            raise InputError(f"{source}: template has no vertices")
        shapes = {
            "speech_basis": ((ks, v, 3), MAX_COORDINATE),
            "expression_basis": ((ke, v, 3), MAX_COORDINATE),
            "speech_to_flame": ((ks, FLAME_PARAMS), MAX_FLAME_PARAMETER),
            "expression_to_flame": ((ke, FLAME_PARAMS), MAX_FLAME_PARAMETER),
            "emotion_profiles": ((len(self.emotion_names), ke), MAX_WEIGHT),
            "speech_mapping_error": ((ks,), MAX_COORDINATE),
            "expression_mapping_error": ((ke,), MAX_COORDINATE),
            "region_masks": ((len(self.region_names), v), MAX_WEIGHT),
            "emotion_speech_profiles": ((len(self.emotion_names), ks), MAX_WEIGHT),
        }
        if not self.region_names and np.asarray(self.region_masks).size == 0:
            self.region_masks = np.zeros((0, v), np.float32)
        if np.asarray(self.emotion_speech_profiles).size == 0:
            self.emotion_speech_profiles = np.zeros((len(self.emotion_names), ks), np.float32)
        for key, (shape, bound) in shapes.items():
            setattr(self, key, _array(source, key, getattr(self, key), shape, bound))

    def expression_weights(self, emotions: Mapping[str, float] | np.ndarray, frames: int) -> np.ndarray:
        """(T, Ke) expression weights: Σ intensity · profile.

        `emotions` is either one mix held for all frames ({name: intensity}) or per-frame
        intensities (T, E) in the order of `emotion_names`.
        """
        return self._intensities(emotions, frames) @ self.emotion_profiles

    def emotion_speech_weights(self, emotions: Mapping[str, float] | np.ndarray, frames: int) -> np.ndarray:
        """(T, Ks) what the emotions add to the speech weights: Σ intensity · speech profile
        (`emotions` as in `expression_weights`)."""
        return self._intensities(emotions, frames) @ self.emotion_speech_profiles

    def _intensities(self, emotions: Mapping[str, float] | np.ndarray, frames: int) -> np.ndarray:
        """(T, E) intensities from one mix held for all frames, or checked per-frame intensities."""
        if int(frames) != frames or frames < 0:
            raise InputError(f"emotion weights: frame count {frames} is not a non-negative integer")
        if isinstance(emotions, Mapping):
            emotions = check_emotions(emotions, self.emotion_names)
            intensity = np.zeros(len(self.emotion_names), dtype=np.float32)
            for name, value in emotions.items():
                intensity[self.emotion_names.index(name)] = _finite_number("emotion", name, value)
            return np.tile(intensity, (frames, 1))
        shape = (frames, len(self.emotion_names))
        return _array("emotion weights", "emotion intensities", emotions, shape, MAX_WEIGHT)

    def emotion_displacements(self, intensity: float = 1.0) -> np.ndarray:
        """(E, V, 3) each emotion alone at `intensity` on a silent face: its expression profile
        on the expression blendshapes plus its speech profile on the speech blendshapes."""
        return intensity * (np.tensordot(self.emotion_profiles, self.expression_basis, 1)
                            + np.tensordot(self.emotion_speech_profiles, self.speech_basis, 1))

    def to_flame(
        self,
        speech_w: np.ndarray,
        expr_w: np.ndarray,
        speech_gain: float = 1.0,
        expression_gain: float = 1.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """FLAME expr (T, 100) and jaw_pose (T, 3) from P = gs·Ws·A_s + ge·We·A_e."""
        parts = (self.speech_to_flame, self.expression_to_flame)
        params = self._mix(speech_w, expr_w, speech_gain, expression_gain, *parts)
        return params[:, :FLAME_EXPR], params[:, FLAME_EXPR:]

    def displacements(
        self,
        speech_w: np.ndarray,
        expr_w: np.ndarray,
        speech_gain: float = 1.0,
        expression_gain: float = 1.0,
    ) -> np.ndarray:
        """(T, V, 3) linear blendshape displacements: what the FLAME mapping approximates."""
        parts = (self.speech_basis, self.expression_basis)
        return self._mix(speech_w, expr_w, speech_gain, expression_gain, *parts)

    def _mix(
        self,
        speech_w: np.ndarray,
        expr_w: np.ndarray,
        speech_gain: float,
        expression_gain: float,
        speech_part: np.ndarray,
        expression_part: np.ndarray,
    ) -> np.ndarray:
        """gs·Ws·speech_part + ge·We·expression_part, after checking weights and gains."""
        speech = _array("blendshape weights", "speech weights", speech_w, (None, len(self.speech_names)), MAX_WEIGHT)
        shape = (speech.shape[0], len(self.expression_names))
        expression = _array("blendshape weights", "expression weights", expr_w, shape, MAX_WEIGHT)
        gs = _finite_number("blendshape weights", "speech gain", speech_gain)
        ge = _finite_number("blendshape weights", "expression gain", expression_gain)
        speech_term = np.tensordot(speech, speech_part, 1)
        return gs * speech_term + ge * np.tensordot(expression, expression_part, 1)


@dataclass(kw_only=True)
class WeightSequence(_NpzRecord):
    """Per-frame speech and expression weights (`*.weights.npz`), the editable animation."""

    fps: float
    speech: np.ndarray  # (T, Ks)
    expression: np.ndarray  # (T, Ke)
    speech_names: tuple[str, ...]
    expression_names: tuple[str, ...]
    source: InitVar[str] = "weight sequence"

    def __post_init__(self, source: str) -> None:
        self.fps = _finite_number(source, "fps", self.fps)
        if not MIN_FPS <= self.fps <= MAX_FPS:
            raise InputError(f"{source}: fps {self.fps:g} is outside {MIN_FPS:g}..{MAX_FPS:g}")
        self.speech_names = _names(source, "speech_names", self.speech_names)
        self.expression_names = _names(source, "expression_names", self.expression_names)
        _distinct(source, self.speech_names, self.expression_names)
        self.speech = _array(source, "speech", self.speech, (None, len(self.speech_names)), MAX_WEIGHT)
        shape = (self.speech.shape[0], len(self.expression_names))
        self.expression = _array(source, "expression", self.expression, shape, MAX_WEIGHT)
        if len(self.speech) / self.fps > MAX_DURATION_S:
            raise InputError(f"{source}: {len(self.speech)} frames at {self.fps:g} fps last longer than "
                             f"{MAX_DURATION_S / 3600:g} hours")

    def check_against(self, model: BlendshapeModel) -> None:
        """The weights must name exactly the model's blendshapes, in its order."""
        for kind, ours, theirs in (
            ("speech", self.speech_names, model.speech_names),
            ("expression", self.expression_names, model.expression_names),
        ):
            if ours != theirs:
                raise InputError(
                    f"weights name {kind} blendshapes [{', '.join(ours)}] but the model has "
                    f"[{', '.join(theirs)}]"
                )

    def to_csv(self, path: str | os.PathLike) -> None:
        """One row per frame: `time` in seconds, then one column per named weight."""
        time = np.arange(self.speech.shape[0]) / self.fps
        table = np.column_stack([time, self.speech, self.expression])

        def write(handle: BinaryIO) -> None:
            with io.TextIOWrapper(handle, encoding="utf-8", newline="") as text:
                rows = csv.writer(text)
                rows.writerow(map(csv_cell, ("time", *self.speech_names, *self.expression_names)))
                rows.writerows([f"{value:.9g}" for value in row] for row in table)

        atomic_write(path, write)
