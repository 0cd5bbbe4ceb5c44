"""Reading arrays from users' .npz and .npy files without trusting what the files declare.

numpy's loaders allocate the shape a zip member's header declares before reading a byte of
it, and fail with a zoo of exceptions. Here the path must be a regular file, each .npy header
is read first and its shape × itemsize compared with the bytes really there and with
MAX_ARRAY_BYTES, object dtypes (pickles) are refused, and every failure is one InputError
line naming the file (and the key).
"""
from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.lib import format as npy_format

from common.errors import InputError, error_detail
from common.files import check_input_file
from common.limits import MAX_ARRAY_BYTES

_HEADER_READERS = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}
_KINDS = "biufU"  # booleans, numbers and text: never objects (pickles) or records
_MAX_DIMS = 64  # numpy's own limit
_CHUNK = 1 << 24


def _amount(size: int) -> str:
    """A byte count for messages, however absurd the declared size."""
    if size >= 10**15:
        return "over 1 PB"
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


def check_array_bytes(size: int, where: str, what: str = "an array") -> None:
    """Refuse `size` bytes over MAX_ARRAY_BYTES before anything of that size is allocated."""
    if size > MAX_ARRAY_BYTES:
        raise InputError(f"{where}: {_amount(size)}, more than the {_amount(MAX_ARRAY_BYTES)} allowed for {what}")


def checked_float32(values: np.ndarray, where: str, bound: float) -> np.ndarray:
    """`values` as float32, finite and within ±bound; checked after the cast, since float64
    beyond float32's range becomes inf."""
    with np.errstate(over="ignore", invalid="ignore"):
        array = np.asarray(values).astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise InputError(f"{where} contains NaN or infinite values (as float32)")
    worst = max(float(array.max()), -float(array.min())) if array.size else 0.0
    if worst > bound:
        raise InputError(f"{where} holds {worst:.3g}, beyond the bound ±{bound:g}")
    return array


def plain_array(value: object, where: str) -> np.ndarray:
    """An unpickled value as an array if it is one (or one number). Lists and other containers
    are refused: converting a crafted one (shared references, ragged nesting) may never end."""
    if not isinstance(value, (np.ndarray, np.generic, int, float)):
        raise InputError(f"{where} is a {type(value).__name__}, not an array")
    return np.asarray(value)


@dataclass(frozen=True)
class _Header:
    """A .npy header: what the data after `offset` must be."""

    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype
    offset: int

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _read_header(stream: BinaryIO, size: int, where: str) -> _Header:
    """The .npy header at the start of `stream` (`size` bytes long), checked against that size."""
    try:
        version = npy_format.read_magic(stream)
        reader = _HEADER_READERS.get(version)
        if reader is None:
            raise InputError(f"{where}: .npy format version {version[0]}.{version[1]} is not supported")
        shape, fortran, dtype = reader(stream)
        offset = stream.tell()
    except InputError:
        raise
    except Exception as err:  # numpy raises ValueError, SyntaxError, RecursionError, ...
        raise InputError(f"{where}: not a .npy array ({error_detail(err)})") from None
    if dtype.hasobject or dtype.kind not in _KINDS or dtype.itemsize == 0:
        raise InputError(f"{where}: dtype {dtype} is not allowed (numbers and text only; objects need pickle)")
    if len(shape) > _MAX_DIMS or any(n < 0 for n in shape):
        raise InputError(f"{where}: the header declares an impossible shape")
    header = _Header(tuple(int(n) for n in shape), bool(fortran), dtype, offset)
    if offset + header.nbytes != size:
        raise InputError(f"{where}: the header declares {_amount(header.nbytes)} of {dtype} data, "
                         f"but {_amount(max(size - offset, 0))} follow it")
    return header


def _read_data(stream: BinaryIO, header: _Header, where: str) -> np.ndarray:
    """The array after the header, read in chunks into an array allocated once."""
    array = np.empty(math.prod(header.shape), header.dtype)
    buffer = array.view(np.uint8)
    done = 0
    try:
        while done < buffer.size:
            got = stream.readinto(buffer[done : done + _CHUNK])
            if not got:
                raise InputError(f"{where}: truncated ({_amount(done)} of {_amount(buffer.size)} of data)")
            done += got
    except InputError:
        raise
    except Exception as err:  # a bad CRC, a corrupt deflate stream, an I/O error
        raise InputError(f"{where}: unreadable data ({error_detail(err)})") from None
    if header.fortran:
        return array.reshape(header.shape[::-1]).transpose()
    return array.reshape(header.shape)


def _key(member: str) -> str:
    """The key numpy gives a member: its name without `.npy`."""
    return member[:-4] if member.endswith(".npy") else member


@contextmanager
def _archive(path: Path, what: str) -> Iterator[tuple[zipfile.ZipFile, dict[str, zipfile.ZipInfo]]]:
    """The open zip archive and its members by key."""
    check_input_file(path, what)
    try:
        archive = zipfile.ZipFile(path)
        members = {_key(info.filename): info for info in archive.infolist()}
    except Exception as err:  # BadZipFile, OSError, ValueError, OverflowError, ...
        raise InputError(f"{path}: not a readable .npz archive ({error_detail(err)})") from None
    with archive:
        yield archive, members


def npz_keys(path: str | os.PathLike, what: str = ".npz file") -> frozenset[str]:
    """The keys of the .npz archive at `path`, reading no array."""
    with _archive(Path(path), what) as (_, members):
        return frozenset(members)


@contextmanager
def _member_errors(where: str) -> Iterator[None]:
    """An archive member that cannot be read (encrypted, unsupported compression, a bad local
    header) as one InputError line."""
    try:
        yield
    except InputError:
        raise
    except Exception as err:
        raise InputError(f"{where}: unreadable archive member ({error_detail(err)})") from None


def npz_layouts(path: str | os.PathLike, keys: Iterable[str],
                what: str = ".npz file") -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of those of `keys` that the .npz archive at `path` holds, from the
    .npy headers alone (each checked against the bytes really there): a caller that knows the
    shapes it needs refuses others before anything is allocated."""
    path = Path(path)
    layouts: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    with _archive(path, what) as (archive, members):
        for key in (key for key in keys if key in members):
            info, where = members[key], f"{path}: {key}"
            with _member_errors(where), archive.open(info) as member:
                header = _read_header(member, info.file_size, where)
            layouts[key] = (header.shape, header.dtype)
    return layouts


def read_npz(path: str | os.PathLike, keys: Iterable[str], what: str = ".npz file") -> dict[str, np.ndarray]:
    """Those of `keys` that the .npz archive at `path` holds, checked before each is allocated;
    all of them together are bounded by MAX_ARRAY_BYTES too."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    total = 0
    with _archive(path, what) as (archive, members):
        for key in (key for key in keys if key in members):
            info, where = members[key], f"{path}: {key}"
            with _member_errors(where), archive.open(info) as member:
                header = _read_header(member, info.file_size, where)
                check_array_bytes(header.nbytes, where)
                total += header.nbytes
                check_array_bytes(total, str(path), "the arrays of one file")
                arrays[key] = _read_data(member, header, where)
    return arrays


def read_npy(path: str | os.PathLike, what: str = ".npy file", mmap: bool = False) -> np.ndarray:
    """The array of the .npy file at `path`; with `mmap`, memory-mapped read-only (any size the
    file really holds), else read whole (at most MAX_ARRAY_BYTES)."""
    path = check_input_file(path, what)
    try:
        with open(path, "rb") as stream:
            header = _read_header(stream, os.fstat(stream.fileno()).st_size, str(path))
            if not mmap:
                check_array_bytes(header.nbytes, str(path))
                return _read_data(stream, header, str(path))
        if header.nbytes == 0:
            return np.empty(header.shape, header.dtype)
        return np.memmap(path, header.dtype, "r", header.offset, header.shape, "F" if header.fortran else "C")
    except InputError:
        raise
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read ({error_detail(err)})") from None
