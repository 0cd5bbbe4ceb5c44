"""PLY read/write in the GaussianAvatars / 3DGS layout (DESIGN §4.1).

Reading is defensive: a PLY is user input, so every malformed or hostile file gets one
`InputError` line naming the file and the problem. The header is read within a byte bound,
sizes it declares are checked against the file's real size before anything is allocated,
and values are checked after the conversions we apply (float32, exp, normalisation).

Layout accepted: `format binary_little_endian|binary_big_endian|ascii 1.0`; a `vertex`
element of scalar properties read by name (any order, extra properties such as normals or
colours ignored), SH degree 0–3 from the `f_rest_*` count, optional `binding_0`. Elements
after `vertex` (e.g. a mesh's `face` list) are ignored. Elements before `vertex` are skipped:
in an ASCII file line by line, in a binary file by size, which needs all their properties to
be fixed-size scalars (a list there is refused, since its size is only known by parsing it).
"""
from __future__ import annotations

import io
import os
import re
import stat
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Optional

import numpy as np
import torch

from .errors import InputError
from .gaussians import GaussianSet

MAX_HEADER_BYTES = 64 << 10  # a 3DGS header is ~2 KiB
MAX_GAUSSIANS = 50_000_000  # as models.limits.MAX_GAUSSIANS (renderer cannot import models)
MAX_BINDING = 2**31 - 1  # triangle indices as GaussianAvatars stores them (int32 range)
_MAX_COUNT_DIGITS = 18  # element counts below 10^18 fit every size computation

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_ENDIAN = {"binary_little_endian": "<", "binary_big_endian": ">", "ascii": ""}
_MEANS, _QUATS = ["x", "y", "z"], ["rot_0", "rot_1", "rot_2", "rot_3"]
_SCALES, _DC = ["scale_0", "scale_1", "scale_2"], ["f_dc_0", "f_dc_1", "f_dc_2"]
_REQUIRED = _MEANS + _QUATS + _SCALES + ["opacity"] + _DC
_REST_DEGREE = {3 * ((d + 1) ** 2 - 1): d for d in range(4)}  # f_rest count → SH degree


@dataclass
class _Element:
    name: str
    count: int
    props: dict[str, Optional[str]] = field(default_factory=dict)  # name → numpy code; None: a list

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


def _header_lines(path: Path, head: bytes) -> tuple[list[tuple[int, list[str]]], int]:
    """Words of each header line after the magic (comments dropped) and the data offset."""
    lines, pos, number = [], 0, 0
    while True:
        end = head.find(b"\n", pos)
        if end < 0:
            if len(head) >= MAX_HEADER_BYTES:
                raise InputError(f"{path}: PLY header does not end within {MAX_HEADER_BYTES >> 10} KiB")
            raise InputError(f"{path}: PLY header has no end_header line")
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
            words = raw.decode("ascii").split()
        except UnicodeDecodeError:
            raise InputError(f"{path}: PLY header line {number} is not ASCII text") from None
        if not all(w.isprintable() for w in words):
            raise InputError(f"{path}: PLY header line {number} holds control characters")
        if words:
            lines.append((number, words))


def _count(path: Path, number: int, word: str) -> int:
    if not re.fullmatch(f"[0-9]{{1,{_MAX_COUNT_DIGITS}}}", word):
        raise InputError(f"{path}: PLY header line {number}: element count '{_short(word)}' "
                         "is not a whole number ≥ 0")
    return int(word)


def _property(path: Path, number: int, words: list[str]) -> tuple[str, Optional[str]]:
    """(name, numpy code) of a `property TYPE NAME` line; code None for `property list T T NAME`."""
    is_list = words[1:2] == ["list"]
    types, names = (words[2:4], words[4:]) if is_list else (words[1:2], words[2:])
    if len(names) != 1 or len(types) != (2 if is_list else 1):
        raise InputError(f"{path}: PLY header line {number}: malformed property line "
                         "(want 'property TYPE NAME' or 'property list TYPE TYPE NAME')")
    unknown = [t for t in types if t not in _PLY_TYPES]
    if unknown:
        raise InputError(f"{path}: PLY header line {number}: unknown property type '{_short(unknown[0])}'")
    return names[0], None if is_list else _PLY_TYPES[types[0]]


def _parse_header(path: Path, lines: list[tuple[int, list[str]]]) -> tuple[str, list[_Element]]:
    """The format name and the declared elements, every line checked."""
    fmt, elements = None, {}
    for number, words in lines:
        where = f"{path}: PLY header line {number}"
        if words[0] == "format":
            if fmt is not None or elements:
                raise InputError(f"{where}: the format line must come once, before the elements")
            if len(words) != 3 or words[1] not in _ENDIAN or words[2] != "1.0":
                raise InputError(f"{where}: unsupported format '{_short(' '.join(words[1:]))}' "
                                 "(want binary_little_endian, binary_big_endian or ascii, version 1.0)")
            fmt = words[1]
        elif words[0] == "element":
            if len(words) != 3:
                raise InputError(f"{where}: malformed element line (want 'element NAME COUNT')")
            if words[1] in elements:
                raise InputError(f"{where}: element '{_short(words[1])}' is declared twice")
            elements[words[1]] = _Element(words[1], _count(path, number, words[2]))
        elif words[0] == "property":
            if not elements:
                raise InputError(f"{where}: property line before any element line")
            name, code = _property(path, number, words)
            last = elements[next(reversed(elements))]
            if name in last.props:
                raise InputError(f"{where}: property '{_short(name)}' is declared twice")
            last.props[name] = code
        else:
            raise InputError(f"{where}: unknown header keyword '{_short(words[0])}'")
    if fmt is None:
        raise InputError(f"{path}: PLY header has no format line")
    return fmt, list(elements.values())


def _vertex_layout(path: Path, elements: list[_Element]) -> tuple[_Element, list[_Element], int]:
    """The vertex element, the elements before it, and the SH degree its properties encode."""
    index = next((i for i, e in enumerate(elements) if e.name == "vertex"), None)
    if index is None:
        raise InputError(f"{path}: PLY has no vertex element")
    vertex = elements[index]
    if vertex.count == 0:
        raise InputError(f"{path}: PLY holds no Gaussians (element vertex 0)")
    if vertex.count > MAX_GAUSSIANS:
        raise InputError(f"{path}: PLY declares {vertex.count:,} Gaussians, more than the "
                         f"{MAX_GAUSSIANS:,} this program takes")
    lists = [name for name, code in vertex.props.items() if code is None]
    if lists:
        raise InputError(f"{path}: vertex property '{_short(lists[0])}' is a list; Gaussian properties are scalars")
    names = vertex.props.keys()
    missing = [p for p in _REQUIRED if p not in names]
    if missing:
        raise InputError(f"{path}: missing PLY properties {', '.join(missing)}")
    rest = {n for n in names if n.startswith("f_rest_")}
    if len(rest) not in _REST_DEGREE or rest != {f"f_rest_{i}" for i in range(len(rest))}:
        raise InputError(f"{path}: {len(rest)} f_rest properties do not form f_rest_0.. for an SH "
                         f"degree 0..3 (0, 9, 24 or 45 of them)")
    return vertex, elements[:index], _REST_DEGREE[len(rest)]


def _read_binary(path: Path, f: BinaryIO, endian: str, vertex: _Element, before: list[_Element],
                 available: int) -> np.ndarray:
    """The vertex records, after checking the elements before them and the vertex block fit."""
    for element in before:
        if None in element.props.values():
            raise InputError(f"{path}: element '{_short(element.name)}' before 'vertex' has a list "
                             "property; a binary PLY must list its vertices first")
    skip = sum(e.count * e.dtype(endian).itemsize for e in before)
    dtype = vertex.dtype(endian)
    need = skip + vertex.count * dtype.itemsize
    if need > available:
        raise InputError(f"{path}: truncated: the header declares {need:,} bytes of data "
                         f"({vertex.count:,} Gaussians of {dtype.itemsize} bytes), the file holds {available:,}")
    f.seek(skip, os.SEEK_CUR)
    data = np.fromfile(f, dtype=dtype, count=vertex.count)
    if data.shape[0] != vertex.count:  # the file shrank while we read it
        raise InputError(f"{path}: truncated: header says {vertex.count:,} Gaussians, file holds {data.shape[0]:,}")
    return data


def _loadtxt_problem(err: ValueError) -> str:
    """numpy's loadtxt complaint in the user's terms, short, one printable line."""
    columns = re.search(r"requires (\d+) columns but (\d+) were found", str(err))
    if columns:
        return f"a line holds {columns[2]} values for the vertex element's {columns[1]} properties"
    detail = re.split(r" at row |;|\n", str(err))[0]
    return _short("".join(ch if ch.isprintable() else "?" for ch in detail), 80)


def _read_ascii(path: Path, f: BinaryIO, vertex: _Element, before: list[_Element], available: int) -> np.ndarray:
    """The vertex rows of an ASCII PLY (one line per element, values separated by spaces)."""
    skip = sum(e.count for e in before)
    if skip + vertex.count * len(vertex.props) > available:  # every line ≥ 1 byte, every value ≥ 1 byte
        raise InputError(f"{path}: truncated: the header declares {vertex.count:,} Gaussians of "
                         f"{len(vertex.props)} values, the file holds {available:,} bytes of data")
    text = io.TextIOWrapper(f, encoding="ascii", errors="replace")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data" and blank-line notices
            data = np.loadtxt(text, dtype=vertex.dtype(""), comments=None, skiprows=skip,
                              max_rows=vertex.count, ndmin=1)
    except ValueError as err:
        raise InputError(f"{path}: ASCII vertex data does not match the header ({_loadtxt_problem(err)})") from None
    finally:
        text.detach()
    if data.shape[0] != vertex.count:
        raise InputError(f"{path}: truncated: header says {vertex.count:,} Gaussians, file holds {data.shape[0]:,}")
    return data


def _require(path: Path, ok: np.ndarray, names: list[str], problem: str) -> None:
    """Refuse columns where `ok` [N, len(names)] is False, naming the first such property."""
    if not ok.all():
        column = int(np.argmin(ok.all(axis=0)))
        raise InputError(f"{path}: {names[column]} {problem} for {int((~ok[:, column]).sum()):,} Gaussian(s)")


def _binding(path: Path, b: np.ndarray) -> torch.Tensor:
    """Triangle indices, refused before the int64 cast unless whole numbers in 0..MAX_BINDING."""
    exact = b.astype(np.float64) if b.dtype.kind == "f" else b  # float32 rounds MAX_BINDING up to 2^31
    with np.errstate(invalid="ignore"):
        ok = (exact >= 0) & (exact <= MAX_BINDING) & (exact == np.floor(exact))  # NaN fails all three
    if not ok.all():
        raise InputError(f"{path}: binding_0 must hold triangle indices 0..{MAX_BINDING}; "
                         f"{int((~ok).sum()):,} Gaussian(s) hold other values (first: {b[~ok][0].item()!r})")
    return torch.from_numpy(b.astype(np.int64))


def _floats(path: Path, data: np.ndarray, names: list[str]) -> np.ndarray:
    """Columns [N, len(names)] as float32, refused where the cast leaves NaN or infinity."""
    out = np.empty((data.shape[0], len(names)), np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        for j, name in enumerate(names):
            out[:, j] = data[name]
    _require(path, np.isfinite(out), names, "is NaN or infinite as float32")
    return out


def _gaussians(path: Path, data: np.ndarray, degree: int) -> GaussianSet:
    """The set from the raw records: float32, scales exp'd, opacities sigmoid'd, all finite."""
    n, k = data.shape[0], (degree + 1) ** 2 - 1
    means, quats = _floats(path, data, _MEANS), _floats(path, data, _QUATS)
    logits = _floats(path, data, ["opacity"])
    with np.errstate(over="ignore", under="ignore"):
        scales = np.exp(_floats(path, data, _SCALES))
        length = np.linalg.norm(quats, axis=1)[:, None]
    _require(path, np.isfinite(scales), _SCALES, "is too large (its exp overflows float32)")
    _require(path, (length > 0) & np.isfinite(length), ["rot_0..rot_3"],
             "has zero length (or one float32 cannot hold)")
    sh = _floats(path, data, _DC + [f"f_rest_{i}" for i in range(3 * k)])
    rest = sh[:, 3:].reshape(n, 3, k).transpose(0, 2, 1)  # channel-major on disk
    sh = np.concatenate([sh[:, None, :3], rest], axis=1)
    return GaussianSet(
        means=torch.from_numpy(means),
        quats=torch.from_numpy(quats),
        scales=torch.from_numpy(scales),
        opacities=torch.sigmoid(torch.from_numpy(logits[:, 0].copy())),
        sh=torch.from_numpy(sh),
        binding=_binding(path, data["binding_0"]) if "binding_0" in data.dtype.names else None,
    )


def read_ply(path: str | os.PathLike) -> GaussianSet:
    """Load a Gaussian PLY; `binding_0` present → triangle-local set, absent → static scene."""
    path = Path(path)
    try:
        with _open(path) as f:
            lines, offset = _header_lines(path, f.read(MAX_HEADER_BYTES))
            fmt, elements = _parse_header(path, lines)
            vertex, before, degree = _vertex_layout(path, elements)
            available = os.fstat(f.fileno()).st_size - offset
            f.seek(offset)
            if fmt == "ascii":
                data = _read_ascii(path, f, vertex, before, available)
            else:
                data = _read_binary(path, f, _ENDIAN[fmt], vertex, before, available)
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from None
    return _gaussians(path, data, degree)


def write_ply(gaussians: GaussianSet, path: str | os.PathLike) -> None:
    """Write the GaussianAvatars layout (all float32, normals zero), atomically."""
    path = Path(path)
    n, k = gaussians.sh.shape[0], gaussians.sh.shape[1]
    sh = gaussians.sh.detach().cpu().numpy().astype(np.float32)
    opacity = gaussians.opacities.detach().cpu().double().clamp(1e-7, 1 - 1e-7)
    columns = {
        **{a: gaussians.means[:, i] for i, a in enumerate("xyz")},
        **{f"n{a}": torch.zeros(n) for a in "xyz"},
        **{f"f_dc_{c}": torch.from_numpy(sh[:, 0, c]) for c in range(3)},
        **{f"f_rest_{c * (k - 1) + j}": torch.from_numpy(sh[:, 1 + j, c])
           for c in range(3) for j in range(k - 1)},
        "opacity": torch.log(opacity / (1 - opacity)),
        **{f"scale_{i}": torch.log(gaussians.scales[:, i]) for i in range(3)},
        **{f"rot_{i}": gaussians.quats[:, i] for i in range(4)},
    }
    if gaussians.binding is not None:
        columns["binding_0"] = gaussians.binding
    table = np.empty(n, dtype=[(name, "<f4") for name in columns])
    for name, col in columns.items():
        table[name] = col.detach().cpu().numpy().astype(np.float32)
    header = "ply\nformat binary_little_endian 1.0\n" f"element vertex {n}\n"
    header += "".join(f"property float {name}\n" for name in columns) + "end_header\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header.encode("ascii"))
            table.tofile(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
