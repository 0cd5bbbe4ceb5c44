"""Emotion mixes as users type them (`happy=0.8,surprised=0.3`), their validation, and
emotion keyframes over time."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from common.errors import InputError

_SEPARATORS = re.compile(r"[,;]")


def parse_emotions(text: str) -> dict[str, float]:
    """Parse `name=intensity` tokens separated by `,` or `;`; a bare name means intensity 1.

    Intensities must lie in [0, 1]; an empty text is the neutral mix {}.
    """
    mix: dict[str, float] = {}
    for raw in _SEPARATORS.split(text):
        token = raw.strip()
        if not token:
            continue
        name, has_value, value_text = (part.strip() for part in token.partition("="))
        if not name:
            raise InputError(f"emotion '{token}': missing emotion name before '='")
        if name in mix:
            raise InputError(f"emotion '{token}': '{name}' is given twice")
        if not has_value:
            mix[name] = 1.0
            continue
        try:
            value = float(value_text)
        except ValueError:
            raise InputError(f"emotion '{token}': intensity '{value_text}' is not a number") from None
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise InputError(f"emotion '{token}': intensity {value_text} is outside 0..1")
        mix[name] = value
    return mix


def check_emotions(mix: Mapping[str, float], known_names: Iterable[str]) -> dict[str, float]:
    """`mix` with each name spelled as the model spells it: names match regardless of case (an
    exact match first). A name the model does not have is refused with the closest known ones
    and the list of all."""
    known = list(known_names)
    folded = {}
    for name in reversed(known):  # the first of names differing only in case wins
        folded[name.casefold()] = name
    spelled: dict[str, float] = {}
    for name, value in mix.items():
        own = name if name in known else folded.get(name.casefold())
        if own is None:
            close = difflib.get_close_matches(name.casefold(), folded, n=2, cutoff=0.6)
            hint = f" (did you mean {' or '.join(repr(folded[c]) for c in close)}?)" if close else ""
            raise InputError(f"unknown emotion '{name}'{hint}; known emotions: {', '.join(known)}")
        if own in spelled:
            raise InputError(f"emotion '{name}': '{own}' is given twice")
        spelled[own] = value
    return spelled


@dataclass(frozen=True)
class Keyframe:
    """Emotion intensities that hold at `time` seconds; emotions not named are 0."""

    time: float
    emotions: Mapping[str, float]


@dataclass(frozen=True)
class EmotionTrack:
    """Emotion intensities over time, set by keyframes (sorted, one per time).

    Between two keyframes each intensity eases with smoothstep 3u² − 2u³: continuous with a
    continuous slope, never overshooting the keyed values (so it stays inside 0..1). Before the
    first and after the last keyframe the values hold. Immutable: edits return a new track, so
    a renderer can keep the track it was given while the user edits.
    """

    keys: tuple[Keyframe, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.keys)

    def with_key(self, time: float, emotions: Mapping[str, float], tolerance: float = 1e-6) -> EmotionTrack:
        """This track plus a keyframe at `time` (replacing one within `tolerance` seconds)."""
        if not math.isfinite(time):
            raise InputError(f"keyframe time {time} is not a finite number")
        for name, value in emotions.items():
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise InputError(f"keyframe at {time:g} s: intensity {value} of '{name}' is outside 0..1")
        kept = [k for k in self.keys if abs(k.time - time) > tolerance]
        new = Keyframe(float(time), {n: float(v) for n, v in emotions.items() if v != 0.0})
        return EmotionTrack(tuple(sorted([*kept, new], key=lambda k: k.time)))

    def without_key(self, time: float, tolerance: float = 1e-6) -> EmotionTrack:
        return EmotionTrack(tuple(k for k in self.keys if abs(k.time - time) > tolerance))

    def key_near(self, time: float, tolerance: float) -> Keyframe | None:
        """The keyframe closest to `time` if it lies within `tolerance` seconds."""
        near = [k for k in self.keys if abs(k.time - time) <= tolerance]
        return min(near, key=lambda k: abs(k.time - time)) if near else None

    def emotion_names(self) -> set[str]:
        return {name for key in self.keys for name in key.emotions}

    def spelled_as(self, known_names: Sequence[str]) -> EmotionTrack:
        """This track with its emotion names checked and spelled as a model spells them (`check_emotions`)."""
        return EmotionTrack(tuple(Keyframe(k.time, check_emotions(k.emotions, known_names)) for k in self.keys))

    def intensities(self, times: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """(T, E) intensities at `times` (seconds) for the emotions `names`, in that order."""
        times = np.asarray(times, dtype=np.float64)
        out = np.zeros((len(times), len(names)), dtype=np.float32)
        if not self.keys:
            return out
        key_times = np.array([k.time for k in self.keys])
        values = np.array([[k.emotions.get(n, 0.0) for n in names] for k in self.keys])
        if len(self.keys) == 1:
            out[:] = values[0]
            return out
        right = np.clip(np.searchsorted(key_times, times, side="right"), 1, len(self.keys) - 1)
        left = right - 1
        span = key_times[right] - key_times[left]
        u = np.clip((times - key_times[left]) / span, 0.0, 1.0)[:, None]
        ease = u * u * (3.0 - 2.0 * u)
        out[:] = values[left] + (values[right] - values[left]) * ease
        return out
