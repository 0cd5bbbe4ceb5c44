"""Where commands may write: never over anything they did not make.

A folder we make holds a mark file (`MARK`); a study folder is marked by its state folder,
a checkpoint folder by its config.json. An existing, non-empty folder without such a mark is
refused, and so are `/`, the home folder, the working folder and the folders above it. A file
is replaced only if it is one of ours (an MP4 carries our tag in its metadata, a model file
our keys). Replacing is atomic: a new folder is swapped in by one rename (renameat2 with
RENAME_EXCHANGE where the system has it), so a kill at any moment leaves the old output or
the new one, never neither.
"""
from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from common import atomic
from common.errors import InputError

MARK = ".avatar-output"  # in every folder we make
MP4_TAG = b"talking-head-studio"  # in the comment of every MP4 we write
_SCAN_BYTES = 64 << 20  # how much of an MP4's `moov` box we read to find the tag


def _forbidden(path: Path) -> str | None:
    """Why `path` may never be an output folder, or None."""
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == Path(resolved.anchor):
        return "the root folder"
    if resolved == Path.home().resolve():
        return "your home folder"
    if resolved == cwd or resolved in cwd.parents:
        return "the working folder or a folder above it"
    return None


def _marked(folder: Path) -> bool:
    return (folder / MARK).is_file()


def check_output_folder(path: str | os.PathLike, is_ours: Callable[[Path], bool] = _marked,
                        what: str = "output folder") -> Path:
    """`path` as a Path once it is safe to fill or replace: missing, empty, or one of ours."""
    path = Path(path)
    reason = _forbidden(path)
    if reason:
        raise InputError(f"{path}: is {reason}; give a new folder for the {what}")
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise InputError(f"{path}: exists and is not a folder; give a new folder for the {what}")
    if path.is_dir() and any(path.iterdir()) and not is_ours(path):
        raise InputError(f"{path}: the folder exists, is not empty and was not made by avatar; "
                         f"give a new folder for the {what} (nothing was changed)")
    return path


def holds_only(pattern: str) -> Callable[[Path], bool]:
    """An ownership test for folders of an earlier version or filled file by file (checkpoints,
    the demo): every entry's name is one we write (a regular expression), a temporary of ours
    or the mark."""
    ours = re.compile(rf"{pattern}|{re.escape(MARK)}|\..*\.(tmp|partial.*)")
    return lambda folder: _marked(folder) or all(ours.fullmatch(p.name) for p in folder.iterdir())


def check_output_file(path: str | os.PathLike, is_ours: Callable[[Path], bool], what: str = "file") -> Path:
    """`path` as a Path once it is safe to write: missing, or a file of ours."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name for the {what}")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise InputError(f"{path}: exists and is not a regular file; give another name for the {what}")
    if path.exists() and not is_ours(path):
        raise InputError(f"{path}: the file exists and was not made by avatar; give another name for the "
                         f"{what} (nothing was changed)")
    return path


def is_our_mp4(path: Path) -> bool:
    """True if the MP4's `moov` box carries our tag (written into its comment metadata)."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            position = 0
            while position + 8 <= size:
                handle.seek(position)
                header = handle.read(16)
                length, kind = int.from_bytes(header[:4], "big"), header[4:8]
                if length == 1:
                    length = int.from_bytes(header[8:16], "big")
                elif length == 0:
                    length = size - position
                if length < 8:
                    return False
                if kind == b"moov":
                    handle.seek(position)
                    return MP4_TAG in handle.read(min(length, _SCAN_BYTES))
                position += length
    except OSError:
        return False
    return False


@contextlib.contextmanager
def staged_folder(target: Path, what: str, is_ours: Callable[[Path], bool] = _marked) -> Iterator[Path]:
    """A marked temporary sibling folder to fill, swapped in for `target` (after checking it may
    be replaced) when the block finishes, and removed if it does not."""
    check_output_folder(target, is_ours, what)
    with atomic.staged_folder(target, mark=MARK) as tmp:
        yield tmp
