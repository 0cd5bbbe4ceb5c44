"""Emotion presets (JSON): the emotion mix, speech/expression strength and emotion keyframes,
so a set-up made with the sliders can be reloaded, shared and rendered again exactly."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, BinaryIO

from models.emotion import EmotionTrack
from models.errors import InputError
from models.files import atomic_write

from .player import Performance

FORMAT = "talking-head-studio emotion preset"
VERSION = 1


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


def _number(source: str, what: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise InputError(f"{source}: {what} is {value!r}; expected a number in {low:g}..{high:g}")
    return float(value)


def _mix(source: str, where: str, value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise InputError(f"{source}: {where} must be an object of emotion: intensity")
    return {str(name): _number(source, f"{where} '{name}'", v, 0.0, 1.0) for name, v in value.items()}


def load_preset(path: str | Path) -> Performance:
    """Read a preset; a file that is not one gets an error naming the file and the problem.
    Emotion names are checked against a model by `Player.set_emotions/set_keyframes`."""
    source = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{source}: no such preset file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{source}: not a JSON preset ({err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{source}: not an emotion preset (no \"format\": \"{FORMAT}\")")
    if data.get("version") != VERSION:
        raise InputError(f"{source}: preset version {data.get('version')!r}; this program reads version {VERSION}")
    track = EmotionTrack()
    keyframes = data.get("keyframes", [])
    if not isinstance(keyframes, list):
        raise InputError(f"{source}: keyframes must be a list")
    for i, key in enumerate(keyframes):
        if not isinstance(key, dict):
            raise InputError(f"{source}: keyframe {i} must be an object with time and emotions")
        time = _number(source, f"keyframe {i} time", key.get("time"), 0.0, math.inf)
        track = track.with_key(time, _mix(source, f"keyframe {i} emotions", key.get("emotions", {})))
    return Performance(
        emotions=_mix(source, "emotions", data.get("emotions", {})),
        speech_gain=_number(source, "speech_gain", data.get("speech_gain", 1.0), 0.0, 10.0),
        expression_gain=_number(source, "expression_gain", data.get("expression_gain", 1.0), 0.0, 10.0),
        keyframes=track,
    )
