"""Values a user types, on the command line or in a design file: image size, colour, frame rate
and times, and the defaults and choices the command line offers. Light (no numpy), so the parser
can check values before any command code loads (`argument` makes a parse function argparse's)."""
from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from typing import TypeVar

from common.errors import InputError
from common.limits import MAX_DURATION_S, MAX_FPS, MAX_IMAGE_SIDE, MIN_FPS, MIN_IMAGE_SIDE

DEFAULT_FPS = 30.0
FLAME_SOURCES = ("split", "avatar")  # where `render --dataset` takes each frame's FLAME parameters
NAMED_COLOURS = {"white": (1, 1, 1), "black": (0, 0, 0), "gray": (0.5, 0.5, 0.5),
                 "grey": (0.5, 0.5, 0.5), "green": (0, 1, 0), "blue": (0, 0, 1)}
Value = TypeVar("Value")


def parse_size(text: str) -> tuple[int, int]:
    """WIDTHxHEIGHT, each MIN_IMAGE_SIDE..MAX_IMAGE_SIDE (16..8192)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"{text}: expected WIDTHxHEIGHT, e.g. 512x512") from None
    if not (MIN_IMAGE_SIDE <= w <= MAX_IMAGE_SIDE and MIN_IMAGE_SIDE <= h <= MAX_IMAGE_SIDE):
        raise InputError(f"{text}: width and height must be {MIN_IMAGE_SIDE}..{MAX_IMAGE_SIDE}")
    return w, h


def parse_colour(text: str) -> tuple[float, float, float]:
    """white | black | gray | green | blue | #rrggbb | r,g,b (each 0..1)."""
    t = text.strip().lower()
    if t in NAMED_COLOURS:
        return tuple(float(c) for c in NAMED_COLOURS[t])
    if re.fullmatch(r"#[0-9a-f]{6}", t):
        return tuple(int(t[i:i + 2], 16) / 255 for i in (1, 3, 5))
    try:
        rgb = tuple(float(v) for v in t.split(","))
    except ValueError:
        rgb = ()
    if len(rgb) == 3 and all(0 <= c <= 1 for c in rgb):
        return rgb
    if len(rgb) == 3 and all(0 <= c <= 255 for c in rgb):
        raise InputError(f"{text}: r,g,b channels are 0..1, not 0..255 (e.g. {','.join(f'{c / 255:.3g}' for c in rgb)} "
                         f"or #{''.join(f'{round(c):02x}' for c in rgb)})")
    raise InputError(f"{text}: use a name ({', '.join(NAMED_COLOURS)}), #rrggbb, or r,g,b with each channel in 0..1")


def parse_fps(text: str) -> float:
    """Frames per second, MIN_FPS..MAX_FPS."""
    fps = _number(text)
    if not MIN_FPS <= fps <= MAX_FPS:
        raise InputError(f"{text}: frames per second must be {MIN_FPS:g}..{MAX_FPS:g}")
    return fps


def parse_duration(text: str) -> float:
    """A clip's length in seconds: more than 0, at most MAX_DURATION_S."""
    seconds = _number(text)
    if not 0 < seconds <= MAX_DURATION_S:
        raise InputError(f"{text}: a length must be more than 0 seconds (and at most {MAX_DURATION_S:g})")
    return seconds


def parse_start(text: str) -> float:
    """Where a clip starts in its source, in seconds: 0 or more."""
    seconds = _number(text)
    if not 0 <= seconds <= MAX_DURATION_S:
        raise InputError(f"{text}: a start time must be 0..{MAX_DURATION_S:g} seconds")
    return seconds


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{text}: not a number") from None
    if not math.isfinite(value):
        raise InputError(f"{text}: not a finite number")
    return value


def argument(parse: Callable[[str], Value]) -> Callable[[str], Value]:
    """`parse` as an argparse type: its InputError becomes argparse's one-line error naming the option."""
    def convert(text: str) -> Value:
        try:
            return parse(text)
        except InputError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    convert.__name__ = parse.__name__
    return convert
