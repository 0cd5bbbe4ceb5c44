"""Running `avatar stimuli` from tests, reading what it wrote, and an avatar it cannot load."""
from __future__ import annotations

import json
from pathlib import Path

from avatar_app.cli import main


def stimuli(*args) -> int:
    """`avatar stimuli ARGS -q`; its exit code."""
    return main(["stimuli", *map(str, args), "-q"])


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def broken_avatar(folder: Path) -> Path:
    """A folder `broken_avatar` in `folder` whose point_cloud.ply is a header with no vertex element."""
    broken = folder / "broken_avatar"
    broken.mkdir()
    (broken / "point_cloud.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nend_header\n")
    return broken
