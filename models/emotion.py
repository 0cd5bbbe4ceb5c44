"""Emotion mixes as users type them (`happy=0.8,surprised=0.3`) and their validation."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

from models.errors import InputError

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


def check_emotions(mix: Mapping[str, float], known_names: Iterable[str]) -> None:
    """Reject a mix naming an emotion the model does not have, listing the ones it has."""
    known = list(known_names)
    for name in mix:
        if name not in known:
            raise InputError(f"unknown emotion '{name}'; known emotions: {', '.join(known)}")
