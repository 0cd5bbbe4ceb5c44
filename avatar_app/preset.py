"""Emotion presets (JSON): the emotion mix, speech/expression strength and emotion keyframes,
so a set-up made with the sliders can be reloaded, shared and rendered again exactly.

A preset deliberately does not carry the performance's expression space: that belongs to the
avatar (only one with tracked expressions has one), not to the emotions, so a preset stays
usable on every avatar; loading one keeps the space in use (`--expression-space`, the app's
toggle)."""
from __future__ import annotations

import json
import reprlib
from pathlib import Path
from typing import Any, BinaryIO

from common.atomic import atomic_write
from common.errors import InputError
from common.files import read_json_file
from common.limits import MAX_DURATION_S, MAX_KEYFRAMES, MAX_NAME_CHARS
from models.rig.emotion import EmotionTrack, Keyframe

from .player import Performance

FORMAT = "talking-head-studio emotion preset"
VERSION = 1
_SAME_TIME = 1e-6  # seconds: keyframes closer than this are at one time (as EmotionTrack.with_key)


def preset_dict(performance: Performance) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "emotions": dict(performance.emotions),
        "speech_gain": performance.speech_gain,
        "expression_gain": performance.expression_gain,
        "keyframes": [{"time": k.time, "emotions": dict(k.emotions)} for k in performance.keyframes.keys],
    }


def save_preset(performance: Performance, path: str | Path) -> None:
    text = json.dumps(preset_dict(performance), indent=2) + "\n"

    def write(handle: BinaryIO) -> None:
        handle.write(text.encode("utf-8"))

    atomic_write(path, write)


def _shown(value: Any) -> str:
    """A value as a one-line message shows it: numbers as %g, anything else cut short."""
    return f"{value:g}" if isinstance(value, float) else reprlib.repr(value)


def _number(source: str, what: str, value: Any, low: float, high: float) -> float:
    """JSON numbers are read as floats (see `load_preset`), so NaN and infinities fail the range."""
    if not (isinstance(value, float) and low <= value <= high):
        raise InputError(f"{source}: {what} is {_shown(value)}; expected a number in {low:g}..{high:g}")
    return value


def _mix(source: str, where: str, value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise InputError(f"{source}: {where} must be an object of emotion: intensity")
    for name in value:
        if not (name.strip() and name.isprintable() and len(name) <= MAX_NAME_CHARS):
            raise InputError(f"{source}: {where}: {_shown(name)} is not an emotion name")
    return {name: _number(source, f"{where} {_shown(name)}", v, 0.0, 1.0) for name, v in value.items()}


def _keyframes(source: str, value: Any) -> EmotionTrack:
    """The keyframe list as a track: sorted by time, two keys at one time refused."""
    if not isinstance(value, list):
        raise InputError(f"{source}: keyframes must be a list")
    if len(value) > MAX_KEYFRAMES:
        raise InputError(f"{source}: {len(value)} keyframes; at most {MAX_KEYFRAMES}")
    keys = []
    for i, key in enumerate(value):
        if not isinstance(key, dict):
            raise InputError(f"{source}: keyframe {i} must be an object with time and emotions")
        time = _number(source, f"keyframe {i} time", key.get("time"), 0.0, MAX_DURATION_S)
        keys.append(Keyframe(time, _mix(source, f"keyframe {i} emotions", key.get("emotions", {}))))
    keys.sort(key=lambda k: k.time)
    for earlier, later in zip(keys, keys[1:]):
        if later.time - earlier.time <= _SAME_TIME:
            raise InputError(f"{source}: two keyframes at {later.time:g} s")
    return EmotionTrack(tuple(keys))


def load_preset(path: str | Path) -> Performance:
    """Read a preset; a file that is not one gets one line naming the file and the problem.
    Emotion names are checked against a model by `Player.set_emotions/set_keyframes`."""
    source = str(path)
    # integers are read as floats: every number here is a bounded float, and an integer of
    # hundreds of digits would overflow float arithmetic
    data = read_json_file(path, "preset", parse_int=float)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{source}: not an emotion preset (no \"format\": \"{FORMAT}\")")
    version = data.get("version")
    if not (isinstance(version, float) and version == VERSION):
        raise InputError(f"{source}: preset version {_shown(version)}; this program reads version {VERSION}")
    return Performance(
        emotions=_mix(source, "emotions", data.get("emotions", {})),
        speech_gain=_number(source, "speech_gain", data.get("speech_gain", 1.0), 0.0, 10.0),
        expression_gain=_number(source, "expression_gain", data.get("expression_gain", 1.0), 0.0, 10.0),
        keyframes=_keyframes(source, data.get("keyframes", [])),
    )
