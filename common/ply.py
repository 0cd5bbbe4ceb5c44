"""Reading the vertex element of a PLY file, and writing vertices (and triangles) as one.

Reading is defensive: a PLY is user input, so every malformed or hostile file gets one
`InputError` line naming the file and the problem. The header is read within a byte bound,
sizes it declares are checked against the file's real size before anything is allocated.

Accepted: `format binary_little_endian|binary_big_endian|ascii 1.0`; a `vertex` element of
scalar properties, returned as a numpy structured array of the declared names and types (the
caller picks its columns by name, so their order and any extra ones do not matter). Elements
after `vertex` (e.g. a mesh's `face` list) are ignored. Elements before `vertex` are skipped:
in an ASCII file line by line, in a binary file by size, which needs all their properties to
be fixed-size scalars (a list there is refused, since its size is only known by parsing it).
"""
from __future__ import annotations

import io
import os
import re
import stat
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from common.atomic import atomic_write
from common.errors import InputError

MAX_HEADER_BYTES = 64 << 10  # a 3DGS header is ~2 KiB, a mesh's a few hundred bytes
_MAX_COUNT_DIGITS = 18  # element counts below 10^18 fit every size computation

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_TYPE_NAMES = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int", "u4": "uint",
               "f4": "float", "f8": "double"}  # what the writer declares
_ENDIAN = {"binary_little_endian": "<", "binary_big_endian": ">", "ascii": ""}


@dataclass(frozen=True)
class Wording:
    """What the reader's messages call the vertex records: `items` (plural) and `item` (as in
    "vertex properties are scalars"). The renderer's are Gaussians."""

    items: str = "vertices"
    item: str = "vertex"


@dataclass
class Element:
    """A declared element: its name, count and properties (name → numpy type code; None: a list)."""

    name: str
    count: int
    props: dict[str, str | None] = field(default_factory=dict)

    def dtype(self, endian: str) -> np.dtype:
        return np.dtype([(name, endian + code) for name, code in self.props.items()])


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _open(path: Path) -> BinaryIO:
    """The file opened for reading; a folder, pipe or device is refused (O_NONBLOCK: opening
    a FIFO does not wait for a writer)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "is a folder" if stat.S_ISDIR(mode) else "not a regular file (a pipe or a device)"
        raise InputError(f"{path}: {kind}, not a PLY file")
    return os.fdopen(fd, "rb")


def _header_lines(path: Path, head: bytes, words: Wording) -> tuple[list[tuple[int, list[str]]], int]:
    """Words of each header line after the magic (comments dropped) and the data offset."""
    lines, pos, number = [], 0, 0
    while True:
        end = head.find(b"\n", pos)
        if end < 0:
            within = f" within {MAX_HEADER_BYTES >> 10} KiB" if len(head) >= MAX_HEADER_BYTES else ""
            raise InputError(f"{path}: not a PLY file with a complete header (no end_header line{within})")
        raw, pos, number = head[pos:end], end + 1, number + 1
        if number == 1:
            if raw.strip() != b"ply":
                raise InputError(f"{path}: not a PLY file (no 'ply' magic line)")
            continue
        if raw.strip() == b"end_header":
            return lines, pos
        if raw.split(None, 1)[:1] in ([b"comment"], [b"obj_info"]):
            continue  # free text, not necessarily ASCII
        try:
            line = raw.decode("ascii").split()
        except UnicodeDecodeError:
            raise InputError(f"{path}: PLY header line {number} is not ASCII text") from None
        odd = next((w for w in line if not w.isprintable()), None)
        if odd is not None:
            raise InputError(f"{path}: PLY header line {number} holds control characters ({_short(odd)!r})")
        if line:
            lines.append((number, line))


def _count(path: Path, number: int, element: str, word: str, words: Wording) -> int:
    if not re.fullmatch(f"[0-9]{{1,{_MAX_COUNT_DIGITS}}}", word):
        raise InputError(f"{path}: PLY header line {number}: no valid {_short(element)} element: its count "
                         f"'{_short(word)}' is not a whole number ≥ 0")
    return int(word)


def _property(path: Path, number: int, line: list[str]) -> tuple[str, str | None]:
    """(name, numpy code) of a `property TYPE NAME` line; code None for `property list T T NAME`."""
    is_list = line[1:2] == ["list"]
    types, names = (line[2:4], line[4:]) if is_list else (line[1:2], line[2:])
    if len(names) != 1 or len(types) != (2 if is_list else 1):
        raise InputError(f"{path}: PLY header line {number}: malformed property line "
                         "(want 'property TYPE NAME' or 'property list TYPE TYPE NAME')")
    unknown = [t for t in types if t not in _PLY_TYPES]
    if unknown:
        raise InputError(f"{path}: PLY header line {number}: unknown property type '{_short(unknown[0])}'")
    return names[0], None if is_list else _PLY_TYPES[types[0]]


def _parse_header(path: Path, lines: list[tuple[int, list[str]]], words: Wording) -> tuple[str, list[Element]]:
    """The format name and the declared elements, every line checked."""
    fmt, elements = None, {}
    for number, line in lines:
        where = f"{path}: PLY header line {number}"
        if line[0] == "format":
            if fmt is not None or elements:
                raise InputError(f"{where}: the format line must come once, before the elements")
            if len(line) != 3 or line[1] not in _ENDIAN or line[2] != "1.0":
                raise InputError(f"{where}: unsupported format '{_short(' '.join(line[1:]))}' "
                                 "(want binary_little_endian, binary_big_endian or ascii, version 1.0)")
            fmt = line[1]
        elif line[0] == "element":
            if len(line) != 3:
                raise InputError(f"{where}: malformed element line (want 'element NAME COUNT')")
            if line[1] in elements:
                raise InputError(f"{where}: element '{_short(line[1])}' is declared twice")
            elements[line[1]] = Element(line[1], _count(path, number, line[1], line[2], words))
        elif line[0] == "property":
            if not elements:
                raise InputError(f"{where}: property line before any element line")
            name, code = _property(path, number, line)
            last = elements[next(reversed(elements))]
            if name in last.props:
                raise InputError(f"{where}: property '{_short(name)}' is declared twice")
            last.props[name] = code
        else:
            raise InputError(f"{where}: unknown header keyword '{_short(line[0])}'")
    if fmt is None:
        raise InputError(f"{path}: PLY header has no format line")
    return fmt, list(elements.values())


def _vertex_layout(path: Path, elements: list[Element], words: Wording,
                   limit: int | None) -> tuple[Element, list[Element]]:
    """The vertex element and the elements before it, once it holds 1..limit records of scalars."""
    index = next((i for i, e in enumerate(elements) if e.name == "vertex"), None)
    if index is None:
        raise InputError(f"{path}: PLY has no vertex element")
    vertex = elements[index]
    if vertex.count == 0:
        raise InputError(f"{path}: PLY holds no {words.items} (element vertex 0)")
    if limit is not None and vertex.count > limit:
        raise InputError(f"{path}: PLY declares {vertex.count:,} {words.items}, more than the "
                         f"{limit:,} this program takes")
    lists = [name for name, code in vertex.props.items() if code is None]
    if lists:
        raise InputError(f"{path}: vertex property '{_short(lists[0])}' is a list; "
                         f"{words.item} properties are scalars")
    return vertex, elements[:index]


def _read_binary(path: Path, f: BinaryIO, endian: str, vertex: Element, before: list[Element],
                 available: int, words: Wording) -> np.ndarray:
    """The vertex records, after checking the elements before them and the vertex block fit."""
    for element in before:
        if None in element.props.values():
            raise InputError(f"{path}: element '{_short(element.name)}' before 'vertex' has a list "
                             "property; a binary PLY must list its vertices first")
    skip = sum(e.count * e.dtype(endian).itemsize for e in before)
    dtype = vertex.dtype(endian)
    need = skip + vertex.count * dtype.itemsize
    if need > available:
        raise InputError(f"{path}: truncated: the header declares {need:,} bytes of data ({vertex.count:,} "
                         f"{words.items} of {dtype.itemsize} bytes), the file holds {available:,}")
    f.seek(skip, os.SEEK_CUR)
    data = np.fromfile(f, dtype=dtype, count=vertex.count)
    if data.shape[0] != vertex.count:  # the file shrank while we read it
        raise InputError(f"{path}: truncated: header says {vertex.count:,} {words.items}, "
                         f"file holds {data.shape[0]:,}")
    return data


def _loadtxt_problem(err: ValueError) -> str:
    """numpy's loadtxt complaint in the user's terms, short, one printable line."""
    columns = re.search(r"requires (\d+) columns but (\d+) were found", str(err))
    if columns:
        return f"a line holds {columns[2]} values for the vertex element's {columns[1]} properties"
    detail = re.split(r" at row |;|\n", str(err))[0]
    return _short("".join(ch if ch.isprintable() else "?" for ch in detail), 80)


def _read_ascii(path: Path, f: BinaryIO, vertex: Element, before: list[Element], available: int,
                words: Wording) -> np.ndarray:
    """The vertex rows of an ASCII PLY (one line per element, values separated by spaces)."""
    skip, width = sum(e.count for e in before), len(vertex.props)
    if skip + vertex.count * width > available:  # every line ≥ 1 byte, every value ≥ 1 byte
        raise InputError(f"{path}: truncated: the header declares {vertex.count:,} {words.items} of "
                         f"{width} values, the file holds {available:,} bytes of data")
    text = io.TextIOWrapper(f, encoding="ascii", errors="replace")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data" and blank-line notices
            data = np.loadtxt(text, dtype=vertex.dtype(""), comments=None, skiprows=skip,
                              max_rows=vertex.count, ndmin=1)
    except ValueError as err:
        raise InputError(f"{path}: {words.item} values are not all numbers, {width} per line: the ASCII data "
                         f"does not match the header ({_loadtxt_problem(err)})") from None
    finally:
        text.detach()
    if data.shape[0] != vertex.count:
        raise InputError(f"{path}: truncated: header says {vertex.count:,} {words.items}, "
                         f"file holds {data.shape[0]:,}")
    return data


def read_vertices(path: str | os.PathLike, words: Wording = Wording(), limit: int | None = None,
                  check: Callable[[list[str]], object] | None = None) -> np.ndarray:
    """The records of the PLY's vertex element as a structured array of its declared names and
    types (1..`limit` of them). `check(names)` sees the vertex property names before any data
    is read, to refuse a layout the caller cannot use."""
    path = Path(path)
    try:
        with _open(path) as f:
            lines, offset = _header_lines(path, f.read(MAX_HEADER_BYTES), words)
            fmt, elements = _parse_header(path, lines, words)
            vertex, before = _vertex_layout(path, elements, words, limit)
            if check is not None:
                check(list(vertex.props))
            available = os.fstat(f.fileno()).st_size - offset
            f.seek(offset)
            if fmt == "ascii":
                return _read_ascii(path, f, vertex, before, available, words)
            return _read_binary(path, f, _ENDIAN[fmt], vertex, before, available, words)
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from None


def write_ply(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray | None = None,
              comments: Iterable[str] = (), parents: bool = False) -> None:
    """Write binary little-endian PLY atomically: the structured array `vertices` as the vertex
    element (its field names and types), then, unless `faces` is None, its (F, 3) vertex indices
    as a `face` element of `property list uchar int vertex_indices`. `parents`: make missing
    folders above `path` first."""
    vertices = np.asarray(vertices)
    names = vertices.dtype.names or ()
    codes = [vertices.dtype[name].str[1:] for name in names]
    if not names or vertices.ndim != 1 or any(code not in _TYPE_NAMES for code in codes):
        raise ValueError(f"vertices must be a 1-D structured array of PLY scalar types, got {vertices.dtype}")
    header = ["ply", "format binary_little_endian 1.0", *(f"comment {c}" for c in comments),
              f"element vertex {len(vertices)}", *(f"property {_TYPE_NAMES[c]} {n}" for n, c in zip(names, codes))]
    table = vertices.astype([(name, "<" + code) for name, code in zip(names, codes)], copy=False)
    records = None
    if faces is not None:
        faces = np.asarray(faces)
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"faces must be (F, 3) vertex indices, got shape {faces.shape}")
        header += [f"element face {len(faces)}", "property list uchar int vertex_indices"]
        records = np.empty(len(faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
        records["n"], records["v"] = 3, faces
    text = "\n".join(header + ["end_header"]) + "\n"

    def write(handle: BinaryIO) -> None:
        handle.write(text.encode("ascii"))
        table.tofile(handle)
        if records is not None:
            records.tofile(handle)

    atomic_write(path, write, parents=parents)
