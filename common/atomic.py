"""Writing outputs so that a reader, or a crash at any moment, sees the old output or the new
one, never half of one: a file or a folder is made under a hidden temporary sibling name and
renamed over its target once complete, and removed if anything fails (an exception, Ctrl-C,
SIGTERM raised as one).

What appears gets one permission rule, the one `open` and `mkdir` follow: files 0o666 and
folders 0o777, less the umask (a temporary is made private, 0o600 or 0o700, until then).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from common.errors import InputError

_UMASK = os.umask(0)  # read once: os.umask can only be read by setting it, which races with threads
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK
FOLDER_MODE = 0o777 & ~_UMASK
_RENAME_EXCHANGE = 2


def _cannot_write(target: Path, err: OSError) -> InputError:
    return InputError(f"{target}: cannot write there ({err.strerror or err})")


@contextlib.contextmanager
def staged_file(target: str | os.PathLike, suffix: str = ".tmp", parents: bool = False) -> Iterator[Path]:
    """An empty temporary sibling of the file `target` (named `.NAME.XXXX<suffix>`) to write;
    when the block finishes it gets FILE_MODE and replaces `target`, and on any exception it is
    removed and `target` is untouched. `parents`: make missing folders above `target` first.
    (Callers check that what it replaces may be replaced.)"""
    target = Path(target)
    try:
        if parents:
            target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    except OSError as err:
        raise _cannot_write(target, err) from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None], parents: bool = False) -> None:
    """Write the file `path` through `write(handle)`, atomically (see `staged_file`)."""
    with staged_file(path, parents=parents) as tmp, open(tmp, "wb") as handle:
        write(handle)


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_cwd = -100
    return renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), _RENAME_EXCHANGE) == 0


def replace_folder(new: Path, target: Path) -> None:
    """Put the folder `new` at `target` (a sibling), removing what was there. An existing target
    is exchanged with `new` in one step where the system can, so it is never
    missing; elsewhere it is first moved aside under a hidden name, where it survives an
    interruption."""
    if not target.exists():
        os.replace(new, target)
        return
    if not exchange_paths(new, target):
        aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old"))
        os.replace(target, aside / target.name)
        os.replace(new, target)
        new = aside
    shutil.rmtree(new, ignore_errors=True)


@contextlib.contextmanager
def staged_folder(target: Path, mark: str | None = None) -> Iterator[Path]:
    """A temporary sibling folder of `target` (named `.NAME.XXXX.partial`, holding an empty file
    `mark` if given) to fill; when the block finishes it gets FOLDER_MODE and is swapped in for
    `target` (see `replace_folder`), and on any exception it is removed. Missing folders above
    `target` are made. (Callers check that what it replaces may be replaced.)"""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial"))
    except OSError as err:
        raise _cannot_write(target, err) from None
    try:
        try:
            if mark is not None:
                (tmp / mark).touch()
        except OSError as err:
            raise _cannot_write(target, err) from None
        yield tmp
        os.chmod(tmp, FOLDER_MODE)
        replace_folder(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
