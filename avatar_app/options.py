"""Values a user types, on the command line or in a design file: image size and colour."""
from __future__ import annotations

import re

from common.errors import InputError
from common.limits import MAX_IMAGE_SIDE, MIN_IMAGE_SIDE

NAMED_COLOURS = {"white": (1, 1, 1), "black": (0, 0, 0), "gray": (0.5, 0.5, 0.5),
                 "grey": (0.5, 0.5, 0.5), "green": (0, 1, 0), "blue": (0, 0, 1)}


def parse_size(text: str) -> tuple[int, int]:
    """WIDTHxHEIGHT, each MIN_IMAGE_SIDE..MAX_IMAGE_SIDE (16..8192)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"size {text}: expected WIDTHxHEIGHT, e.g. 512x512") from None
    if not (MIN_IMAGE_SIDE <= w <= MAX_IMAGE_SIDE and MIN_IMAGE_SIDE <= h <= MAX_IMAGE_SIDE):
        raise InputError(f"size {text}: width and height must be {MIN_IMAGE_SIDE}..{MAX_IMAGE_SIDE}")
    return w, h


def parse_colour(text: str) -> tuple[float, float, float]:
    """white | black | gray | green | blue | #rrggbb | r,g,b (0..1)."""
    t = text.strip().lower()
    if t in NAMED_COLOURS:
        return tuple(float(c) for c in NAMED_COLOURS[t])
    try:
        if re.fullmatch(r"#[0-9a-f]{6}", t):
            return tuple(int(t[i:i + 2], 16) / 255 for i in (1, 3, 5))
        rgb = tuple(float(v) for v in t.split(","))
        if len(rgb) == 3 and all(0 <= c <= 1 for c in rgb):
            return rgb
    except ValueError:
        pass
    raise InputError(f"background {text}: use a name ({', '.join(NAMED_COLOURS)}), #rrggbb or r,g,b in 0..1")
