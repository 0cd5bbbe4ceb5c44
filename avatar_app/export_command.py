"""What `avatar export KIND` does: the animation `avatar render` would record with the same
options, as a file other tools read (docs/architecture.md §Formats). The player is made by the
same call render makes (`commands.performing_player`) and the frames come from
`Player.export_frames`, so an exported file and a rendered MP4 of one command line are one
performance: emotions or keyframes, gains, expression space and living layers included.

The files are written by `exports/player_files.py`, atomically; an output replaces only a file
an export of ours wrote (`is_our_export`). Imported only when the command runs (`cli` holds its arguments)."""
from __future__ import annotations

import argparse
from pathlib import Path

from assets import DEMO_ARKIT_SHAPES, DEMO_AVATAR
from common.errors import InputError

from .commands import avatar_source, performing_player, spoken_text
from .exports.player_files import SUFFIXES, WHAT, is_our_export, write_export
from .outputs import check_output_file
from .threads import usable_cores, use_threads


def check_export_output(kind: str, path: Path) -> Path:
    """-o as a Path once its suffix fits the kind and it is new or one of our exports."""
    suffixes = SUFFIXES[kind]
    if path.suffix.lower() not in suffixes:
        raise InputError(f"-o {path}: the {WHAT[kind]} file must end in {' or '.join(suffixes)}")
    return check_output_file(path, is_our_export, WHAT[kind])


def arkit_format(args: argparse.Namespace) -> str:
    """--format, or the one the file name says (a .json is json, else livelink); a json format
    needs a .json file and the CSV ones a .csv."""
    suffix = Path(args.output).suffix.lower()
    chosen = args.format or ("json" if suffix == ".json" else "livelink")
    if (chosen == "json") != (suffix == ".json"):
        raise InputError(f"-o {args.output}: --format {chosen} writes a {'.json' if chosen == 'json' else '.csv'} file")
    return chosen


def arkit_shapes_path(args: argparse.Namespace) -> Path:
    """--arkit-shapes, or the demo's own set on the demo head."""
    if args.arkit_shapes:
        return Path(args.arkit_shapes)
    if avatar_source(args).avatar == DEMO_AVATAR:
        return DEMO_ARKIT_SHAPES
    raise InputError("--arkit-shapes FILE is needed: the 52 ARKit target shapes on this avatar's FLAME topology "
                     "(only the demo head ships a set)")


def cmd_export(args: argparse.Namespace) -> int:
    path = check_export_output(args.kind, Path(args.output))
    shapes = chosen = None
    if args.kind == "arkit":
        chosen, shapes = arkit_format(args), arkit_shapes_path(args)
    use_threads(usable_cores())
    spoken_text(args)
    player = performing_player(args, "cpu")
    what = write_export(player, path, args.kind, chosen or "livelink", shapes)
    if not args.quiet:
        clip = player.clip
        print(f"wrote {path}: {clip.num_frames} frames at {clip.fps:g} fps, {what}")
    return 0
