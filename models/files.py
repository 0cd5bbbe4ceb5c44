"""Reading input files defensively and writing outputs so that a reader (or a crash) never
sees a half-written one."""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from models.errors import InputError
from models.limits import MAX_TEXT_BYTES

_UMASK = os.umask(0)
os.umask(_UMASK)


def check_input_file(path: str | os.PathLike, what: str = "file") -> Path:
    """`path` as a Path after checking it names a regular file: a folder, a FIFO (which would
    block forever) or a device such as /dev/zero (which never ends) is refused."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what}") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"{path}: is a folder, not a {what}")
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: not a regular file (a pipe or a device cannot be a {what})")
    return path


def read_text_file(path: str | os.PathLike, what: str = "file", limit: int = MAX_TEXT_BYTES,
                   encoding: str = "utf-8") -> str:
    """The text of a small regular file, refusing folders, pipes, devices, files over `limit`
    bytes and text that is not `encoding`."""
    path = check_input_file(path, what)
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from None
    if len(data) > limit:
        raise InputError(f"{path}: larger than {limit >> 20} MiB; too large for a {what}")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not {encoding} text (byte {err.start}); not a {what}") from None


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Write through `write` into a temporary file beside `path`, then rename over it.

    Readers (and a crash mid-write) never see a half-written file.
    """
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as err:
        raise InputError(f"{target}: cannot write there ({err.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
