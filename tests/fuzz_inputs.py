"""Seeded mutants of every input format the `avatar` command reads, and the cases that run them.

`generate(folder, seed)` writes valid base files (made from the demo assets) and, per format,
format-blind damage (truncations, flipped and overwritten bytes, junk, zeros, an empty file) and
structure-aware mutants (PLY headers and values, npz members and .npy headers, pickles with
chumpy stand-ins, WAV chunks, JSON, safetensors headers, CSV and YAML designs, FIFOs and
/dev/zero in place of files). It returns the cases (argv for `avatar_app.cli.main` plus what to
check) and writes them to `cases.json`. Nothing here imports the product, so the same mutants
can be run against any source tree (fuzz_runner.py runs them).
"""
from __future__ import annotations

import io
import json
import os
import pickle
import random
import re
import shutil
import struct
import sys
import types
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy.sparse

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"

FIFO, DEVZERO, FOLDER, MISSING = "<fifo>", "<symlink to /dev/zero>", "<folder>", "<missing>"


@dataclass(frozen=True)
class Ref:
    """The main file of another format's mutant (a design names it)."""

    format: str
    name: str


@dataclass(frozen=True)
class Base:
    """A link to one of the base files (see write_bases)."""

    name: str


# file bytes, one of the special kinds above, a Ref, a Base, or a function that makes the bytes
# when they are written (the deflate bomb: only full runs pay for it)
Content = bytes | str | Ref | Base | Callable[[], bytes]

FORMATS = ("ply", "flame_npz", "flame_pkl", "blendshapes", "weights", "motion", "wav", "preset",
           "generator", "design_csv", "design_yaml")
MAIN_FILE = {"ply": "point_cloud.ply", "flame_npz": "flame.npz", "flame_pkl": "flame.pkl",
             "blendshapes": "blendshapes.npz", "weights": "clip.weights.npz", "motion": "motion.npz",
             "wav": "speech.wav", "preset": "preset.json", "generator": "config.json",
             "design_csv": "design.csv", "design_yaml": "design.yaml"}
RENDER = ["--size", "32x32", "--fps", "10", "--duration", "0.3", "--backend", "cpu", "-q"]
TIMEOUTS = {"info": 10.0, "check": 10.0, "render": 20.0, "stimuli": 40.0}  # seconds; see fuzz_runner
PLY_EVERY = 8  # the base PLY keeps every 8th demo Gaussian: small files, same layout
WAV_SECONDS = 1.0  # the base WAV is the demo sentence's first second
HUGE_TEXT = 17 << 20  # above models/limits.MAX_TEXT_BYTES
DEEP = 100_000  # nesting depth of the deep JSON, pickles and YAML flows


@dataclass
class Mutant:
    """One mutant: `files` (name → content) in its own folder, beside the format's base files."""

    format: str
    name: str
    files: dict[str, Content]
    heavy: bool = False  # large or slow to make or run: full runs only


# ---- format-blind damage ------------------------------------------------------------------------

def _random_bytes(rng: random.Random, n: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(n))


def _flipped(data: bytes, rng: random.Random, count: int, lo: int, hi: int) -> bytes:
    out = bytearray(data)
    for _ in range(count):
        i = rng.randrange(lo, max(lo + 1, min(hi, len(out))))
        out[i] ^= 1 << rng.randrange(8) if count == 1 else rng.randrange(1, 256)
    return bytes(out)


def byte_mutants(data: bytes, rng: random.Random, header: int, limit: int = 99) -> list[tuple[str, bytes]]:
    """Truncations (inside and just around the `header` bytes, and at random), flipped and
    overwritten bytes, junk, zeros and an empty file; the first `limit` in order of interest."""
    n = len(data)
    header = max(2, min(header, n - 1))
    at = rng.randrange(0, max(1, header - 16))
    cuts = [n // 2, header, 1, n - 1, header // 2, header + 1, header - 1, *(rng.randrange(1, n) for _ in range(3))]
    out = [("empty", b""), (f"truncated_at_{cuts[0]}", data[:cuts[0]]),
           ("bit_flipped_in_header", _flipped(data, rng, 1, 0, header)),
           (f"truncated_at_{cuts[1]}", data[:cuts[1]]), ("bytes_flipped_8", _flipped(data, rng, 8, 0, n)),
           ("zeros", bytes(n)), ("header_overwritten_ff", data[:at] + b"\xff" * 16 + data[at + 16:]),
           ("junk_appended", data + _random_bytes(rng, 1024)), ("random_bytes", _random_bytes(rng, min(n, 4096)))]
    out += [(f"truncated_at_{cut}", data[:cut]) for cut in cuts[2:]]
    unique = {name: content for name, content in out if not name.startswith("truncated_at_") or 0 < int(name[13:]) < n}
    return list(unique.items())[:limit]


# ---- npz: our own zip writer, so members and headers can say anything ------------------------------

def npy_bytes(array: Any) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=True)
    return buffer.getvalue()


def npy_header(shape: tuple, descr: str = "<f4", data: bytes = b"") -> bytes:
    """An .npy file that declares `shape` but holds only `data`."""
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    pad = 64 - (10 + len(text) + 1) % 64
    text = text + " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1") + data


def zip_raw(entries: list[tuple[str, int, int, int, bytes]]) -> bytes:
    """A zip archive of (name, method, crc, size, stored bytes) entries; the stored bytes and
    sizes may disagree on purpose. Timestamps are fixed, so the bytes are the same every time."""
    parts, central, offset = [], [], 0
    for name, method, crc, size, data in entries:
        raw = name.encode()
        fields = (method, 0, 0x21, crc, len(data), size, len(raw))
        local = struct.pack("<IHHHHHIIIH", 0x04034B50, 20, 0, *fields) + b"\0\0" + raw
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, *fields, 0, 0, 0, 0, 0, offset) + raw)
        parts.append(local + data)
        offset += len(local) + len(data)
    directory = b"".join(central)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(directory), offset, 0)
    return b"".join(parts) + directory + end


def _deflated(data: bytes) -> bytes:
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


_ENTRIES: dict[tuple[int, bool], tuple[Any, tuple[int, int, int, bytes]]] = {}  # big base arrays, made once


def _entry(value: Any, compress: bool) -> tuple[int, int, int, bytes]:
    """(method, crc, size, stored bytes) of one member; large arrays are remembered, with the
    array itself so that its id stays theirs."""
    hit = _ENTRIES.get((id(value), compress))
    if hit is not None and hit[0] is value:
        return hit[1]
    data = value if isinstance(value, bytes) else npy_bytes(value)
    entry = (8 if compress else 0, zlib.crc32(data), len(data), _deflated(data) if compress else data)
    if isinstance(value, np.ndarray) and value.nbytes > 1 << 20:
        _ENTRIES[(id(value), compress)] = (value, entry)
    return entry


def zip_bytes(members: dict[str, Any], compress: bool = False) -> bytes:
    """Members (bytes, or arrays stored as .npy) as a zip archive."""
    return zip_raw([(name, *_entry(value, compress)) for name, value in members.items()])


def npz_bytes(arrays: dict[str, Any], compress: bool = False) -> bytes:
    """Arrays (or ready .npy bytes) as an .npz archive."""
    return zip_bytes({f"{key}.npy": value for key, value in arrays.items()}, compress)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as archive:
        return {key: archive[key] for key in archive.files}


def _with_bad(a: np.ndarray, value: float, dtype: str = "f4") -> np.ndarray:
    """`a` (or three numbers, when `a` holds none) with `value` in its middle."""
    out = np.array(a if a.dtype.kind in "fiu" and a.size else np.ones(3), dtype=dtype, copy=True)
    out.reshape(-1)[out.size // 2] = value
    return out


# (name, what it does to one member); members are chosen per mutant by the seeded rng
MEMBER_MUTATIONS: list[tuple[str, Callable[[np.ndarray], Any]]] = [
    ("missing", lambda a: None),
    ("transposed", lambda a: np.ascontiguousarray(a.T) if a.ndim > 1 else a[None]),
    ("extra_dim", lambda a: a[None]),
    ("flattened", lambda a: a.reshape(-1)),
    ("empty_rows", lambda a: a[:0] if a.ndim else np.zeros(0, a.dtype)),
    ("empty_1d", lambda a: np.zeros(0, np.float32)),
    ("scalar", lambda a: np.float32(1.0)),
    ("object_array", lambda a: np.array([None, 1.0, "x"], dtype=object)),
    ("strings", lambda a: np.array(["abc"] * max(1, min(a.size, 4)))),
    ("bytes_dtype", lambda a: np.array([b"abc", b"de"])),
    ("complex", lambda a: a.astype(np.complex64) if a.dtype.kind in "fiu" else np.ones(3, np.complex64)),
    ("bool", lambda a: np.ones(a.shape, bool)),
    ("float16", lambda a: a.astype(np.float16) if a.dtype.kind in "fiu" else np.ones(3, np.float16)),
    ("structured", lambda a: np.zeros(4, dtype=[("a", "<f4"), ("b", "<i4")])),
    ("nan", lambda a: _with_bad(a, np.nan)),
    ("inf", lambda a: _with_bad(a, np.inf)),
    ("huge_1e30", lambda a: np.full(a.shape if a.dtype.kind in "fiu" else (3,), 1e30, np.float32)),
    ("float64_1e39", lambda a: _with_bad(a, 1e39, "f8")),
    ("big_endian", lambda a: a.astype(a.dtype.newbyteorder(">")) if a.dtype.kind in "fiu" else a),
    ("header_shape_1e12", lambda a: npy_header((10**12, 3))),
    ("header_shape_2e63", lambda a: npy_header((2**62, 4, 4))),
    ("header_shape_negative", lambda a: npy_header((-1, 3))),
    ("header_32_dims", lambda a: npy_header((2,) * 32)),
    ("header_garbage", lambda a: b"\x93NUMPY\x01\x00\x10\x00{'descr': ???}\n"),
    ("not_npy", lambda a: b"PK\x03\x04 not an npy member at all"),
]


def member_mutants(arrays: dict[str, np.ndarray], keys: list[str], rng: random.Random,
                   skip: tuple[str, ...] = ()) -> list[tuple[str, dict[str, Any]]]:
    """Each member mutation once, on a member of `keys` chosen by `rng`."""
    out = []
    for name, change in MEMBER_MUTATIONS:
        if name in skip:
            continue
        key = rng.choice(keys)
        value = change(arrays[key])
        members = {k: v for k, v in arrays.items() if k != key}
        if value is not None:
            members[key] = value
        out.append((f"{key}_{name}", members))
    return out


def zip_mutants(base: bytes) -> list[tuple[str, bytes]]:
    """Archive-level problems shared by every npz format."""
    one = npy_bytes(np.zeros(3, np.float32))
    return [("zip_no_members", zip_bytes({})),
            ("zip_directory_member", zip_bytes({"expr/": b"", "expr.npy/": b""})),
            ("single_npy_not_npz", one),
            ("pickle_member", zip_bytes({"expr.npy": pickle.dumps({"a": 1}, protocol=2)})),
            ("zip_comment_junk", base[:-2] + b"\xff\xff" + b"x" * 16)]


def deflate_bomb(arrays: dict[str, np.ndarray], key: str, declared_bytes: int = 3 << 30) -> bytes:
    """The npz with member `key` replaced by `declared_bytes` of deflated zeros (a few MB on disk)."""
    header = npy_header((declared_bytes // 12, 3))
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    chunks, crc, zeros = [compressor.compress(header)], zlib.crc32(header), bytes(1 << 24)
    for _ in range(declared_bytes // len(zeros)):
        chunks.append(compressor.compress(zeros))
        crc = zlib.crc32(zeros, crc)
    chunks.append(compressor.flush())
    bomb = (f"{key}.npy", 8, crc, len(header) + declared_bytes, b"".join(chunks))
    return zip_raw([(f"{k}.npy", *_entry(v, False)) for k, v in arrays.items() if k != key] + [bomb])


# ---- PLY -----------------------------------------------------------------------------------------

_PLY_NAMES = {"f4": "float", "f8": "double", "u1": "uchar", "i1": "char", "i2": "short", "u2": "ushort",
              "i4": "int", "u4": "uint"}


def _ply_table(path: Path) -> np.ndarray:
    """The demo PLY's rows (every PLY_EVERY-th) as a structured array."""
    data = path.read_bytes()
    head, body = data.split(b"end_header\n", 1)
    props = [line.split()[2].decode() for line in head.splitlines() if line.startswith(b"property")]
    table = np.frombuffer(body, dtype=[(name, "<f4") for name in props])
    return table[::PLY_EVERY].copy()


def ply_lines(table: np.ndarray, fmt: str = "binary_little_endian", count: Any = None) -> list[str]:
    lines = ["ply", f"format {fmt} 1.0", f"element vertex {len(table) if count is None else count}"]
    lines += [f"property {_PLY_NAMES[table.dtype[name].str[1:]]} {name}" for name in table.dtype.names]
    return lines


def ply_bytes(lines: list[str], body: bytes) -> bytes:
    return ("\n".join(lines) + "\nend_header\n").encode("latin1") + body


def _ply(table: np.ndarray, **kw: Any) -> bytes:
    return ply_bytes(ply_lines(table, **kw), table.tobytes())


def _ply_columns(table: np.ndarray, drop: tuple[str, ...] = (), add: tuple[str, ...] = (),
                 retype: dict[str, str] | None = None) -> np.ndarray:
    """A copy of the rows with columns dropped, zero float columns added, or columns retyped."""
    names = [n for n in table.dtype.names if n not in drop]
    retype = retype or {}
    new = np.zeros(len(table), [(n, retype.get(n, table.dtype[n].str)) for n in names] + [(n, "<f4") for n in add])
    for name in names:
        new[name] = table[name]
    return new


def _ply_set(table: np.ndarray, column: str, value: float, dtype: str = "<f4", rows: slice = slice(None)) -> bytes:
    """The PLY with `column` stored as `dtype` and `value` in `rows`."""
    new = _ply_columns(table, retype={column: dtype})
    with np.errstate(over="ignore", invalid="ignore"):
        new[column][rows] = value
    return _ply(new)


def _ply_edit(table: np.ndarray, edit: Callable[[list[str]], list[str]], body: bytes | None = None) -> bytes:
    return ply_bytes(edit(ply_lines(table)), table.tobytes() if body is None else body)


def _replace_line(lines: list[str], start: str, new: list[str]) -> list[str]:
    i = next(i for i, line in enumerate(lines) if line.startswith(start))
    return lines[:i] + new + lines[i + 1:]


def ply_mutants(table: np.ndarray) -> list[tuple[str, bytes]]:
    n = len(table)
    big = table.astype(table.dtype.newbyteorder(">"))
    extra_rest = _ply_columns(table, add=tuple(f"f_rest_{i}" for i in range(9, 45)))
    one = slice(n // 2, n // 2 + 1)
    return [
        ("count_plus_1000", _ply(table, count=n + 1000)),
        ("count_minus_1000", _ply(table, count=n - 1000)),
        ("count_zero", _ply(table[:0])),
        ("count_1e12", _ply(table, count=10**12)),
        ("count_negative", _ply(table, count=-5)),
        ("count_text", _ply(table, count="many")),
        ("count_float", _ply(table, count="1e3")),
        ("count_missing", _ply_edit(table, lambda ls: _replace_line(ls, "element", ["element vertex"]))),
        ("format_ascii", _ply(table, fmt="ascii")),
        ("format_line_missing", _ply_edit(table, lambda ls: [l for l in ls if not l.startswith("format")])),
        ("format_word_only", _ply_edit(table, lambda ls: _replace_line(ls, "format", ["format"]))),
        ("format_big_endian_valid", ply_bytes(ply_lines(table, fmt="binary_big_endian"), big.tobytes())),
        ("magic_wrong", _ply_edit(table, lambda ls: ["plx"] + ls[1:])),
        ("no_end_header", ("\n".join(ply_lines(table)) + "\n").encode()),
        ("type_unknown", _ply_edit(table, lambda ls: _replace_line(ls, "property float x", ["property float128 x"]))),
        ("type_double_misaligned", _ply_edit(table, lambda ls: _replace_line(ls, "property float x",
                                                                            ["property double x"]))),
        ("property_name_missing", _ply_edit(table, lambda ls: _replace_line(ls, "property float y", ["property float"]))),
        ("property_list", _ply_edit(table, lambda ls: ls + ["property list uchar int vertex_indices"])),
        ("property_duplicated", _ply_edit(table, lambda ls: _replace_line(
            ls, "property float y", ["property float y", "property float y"]))),
        ("property_renamed", _ply_edit(table, lambda ls: _replace_line(ls, "property float x", ["property float xx"]))),
        ("f_rest_dropped", _ply(_ply_columns(table, drop=("f_rest_8",)))),
        ("sh_degree_3_valid", _ply(extra_rest)),
        ("element_face_first", _ply_edit(table, lambda ls: ls[:2] + ["element face 10",
                                                                   "property list uchar int vertex_indices"] + ls[2:])),
        ("element_face_after", _ply_edit(table, lambda ls: ls + ["element face 0", "property list uchar int vertex_indices"])),
        ("no_binding_static_scene", _ply(_ply_columns(table, drop=("binding_0",)))),
        ("comments_10000", _ply_edit(table, lambda ls: ls[:2] + ["comment " + "x" * 60] * 10000 + ls[2:])),
        ("header_line_binary", _ply_edit(table, lambda ls: ls[:2] + ["\x00\xff\xfe junk"] + ls[2:])),
        ("x_nan_one_row", _ply_set(table, "x", np.nan, rows=one)),
        ("x_inf", _ply_set(table, "x", np.inf)),
        ("x_1e30", _ply_set(table, "x", 1e30)),
        ("x_minus_1e30", _ply_set(table, "x", -1e30)),
        ("x_1e39_float64", _ply_set(table, "x", 1e39, "<f8")),
        ("scale_1e30", _ply_set(table, "scale_0", 1e30)),
        ("scale_80_exp_overflow", _ply_set(table, "scale_0", 80.0)),
        ("scale_minus_1e30", _ply_set(table, "scale_0", -1e30)),
        ("opacity_nan", _ply_set(table, "opacity", np.nan, rows=one)),
        ("rot_all_zero", _ply(_zero_rotations(table))),
        ("f_dc_1e39_float64", _ply_set(table, "f_dc_0", 1e39, "<f8")),
        ("binding_inf_float64", _ply_set(table, "binding_0", np.inf, "<f8", rows=one)),
        ("binding_1e20_float64", _ply_set(table, "binding_0", 1e20, "<f8", rows=one)),
        ("binding_minus_1", _ply_set(table, "binding_0", -1.0, rows=one)),
        ("binding_half", _ply_set(table, "binding_0", 0.5, rows=one)),
        ("binding_past_last_face", _ply_set(table, "binding_0", 14496.0, rows=one)),
        ("binding_nan", _ply_set(table, "binding_0", np.nan, rows=one)),
        ("binding_1e9", _ply_set(table, "binding_0", 1e9, rows=one)),
    ]


def _zero_rotations(table: np.ndarray) -> np.ndarray:
    out = table.copy()
    for name in ("rot_0", "rot_1", "rot_2", "rot_3"):
        out[name] = 0.0
    return out


# ---- pickles -------------------------------------------------------------------------------------

class _Ch:
    """Pickled as chumpy.ch.Ch (a fake module is registered while pickling)."""

    def __init__(self, state: Any) -> None:
        self.__dict__.update(state)


def chumpy_pickle(obj: Any, protocol: int = 2) -> bytes:
    """Pickle `obj`, whose _Ch objects are written as chumpy.ch.Ch instances."""
    saved = {name: sys.modules.get(name) for name in ("chumpy", "chumpy.ch")}
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    package.ch, module.Ch = module, _Ch
    old = (_Ch.__module__, _Ch.__qualname__)
    _Ch.__module__, _Ch.__qualname__ = "chumpy.ch", "Ch"
    sys.modules.update({"chumpy": package, "chumpy.ch": module})
    try:
        return pickle.dumps(obj, protocol=protocol)
    finally:
        _Ch.__module__, _Ch.__qualname__ = old
        for name, value in saved.items():
            if value is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = value


def _ch_self_reference() -> _Ch:
    ch = _Ch({})
    ch.x = ch
    return ch


def _unicode(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _put(index: int) -> bytes:
    return b"r" + struct.pack("<I", index)


def _get(index: int) -> bytes:
    return b"j" + struct.pack("<I", index)


def with_extra_item(base: bytes, key: str, value_ops: bytes) -> bytes:
    """A protocol-2 dict pickle with one more item whose value the raw opcodes build."""
    assert base.endswith(b".")
    return base[:-1] + _unicode(key) + value_ops + b"s."


_MEMO = 1_000_000  # memo slots far above those of the base pickle
DEEP_LIST = b"]" * DEEP + b"a" * (DEEP - 1)
DEEP_TUPLE = b")" + b"\x85" * DEEP
DEEP_DICT = (b"}" + _unicode("a")) * DEEP + b"}" + b"s" * DEEP
SELF_LIST = b"]" + _put(_MEMO) + _get(_MEMO) + b"a"
DEEP_CHUMPY = (b"cchumpy.ch\nCh\n)\x81}" + _unicode("x")) * 20_000 + b"G" + struct.pack(">d", 1.0) + b"sb" * 20_000


def shared_bomb(levels: int = 40) -> bytes:
    """[[x, x], [x, x]] ... `levels` deep, each level one list shared twice: 3 * 2**levels leaves."""
    ops = b"]" + b"".join(b"G" + struct.pack(">d", v) + b"a" for v in (1.0, 2.0, 3.0))
    for level in range(levels):
        slot = _MEMO + 1 + level
        ops += _put(slot) + b"0" + b"]" + _get(slot) + b"a" + _get(slot) + b"a"
    return ops


def flame_pickle_mutants(arrays: dict[str, np.ndarray]) -> list[tuple[str, bytes]]:
    """Valid variants (chumpy objects, sparse J_regressor, newer protocols), then chumpy stand-ins
    that refer to themselves or nest deep, deep containers, a shared-list bomb, huge sparse shapes."""
    wrapped = {k: _Ch({"x": v}) for k, v in arrays.items()}
    nested = {k: _Ch({"x": _Ch({"x": v})}) for k, v in arrays.items()}
    sparse = dict(arrays, J_regressor=scipy.sparse.csc_matrix(arrays["J_regressor"]))
    huge_sparse = scipy.sparse.csc_matrix(arrays["J_regressor"])
    huge_sparse._shape = (10**6, 10**6)
    rest = {k: v for k, v in arrays.items() if k != "v_template"}
    rest_bytes = pickle.dumps(rest, protocol=2)
    return [
        ("chumpy_wrapped_valid", chumpy_pickle(wrapped)),
        ("chumpy_nested_valid", chumpy_pickle(nested)),
        ("sparse_j_regressor_valid", pickle.dumps(sparse, protocol=2)),
        ("protocol_4_valid", pickle.dumps(arrays, protocol=4)),
        ("protocol_5_valid", pickle.dumps(arrays, protocol=5)),
        ("chumpy_self_reference", chumpy_pickle(dict(rest, v_template=_ch_self_reference()))),
        ("chumpy_no_x", chumpy_pickle(dict(rest, v_template=_Ch({})))),
        ("chumpy_state_list", chumpy_pickle(dict(rest, v_template=_Ch({"x": [_Ch({"y": 1})]})))),
        ("chumpy_x_string", chumpy_pickle(dict(rest, v_template=_Ch({"x": "abc"})))),
        ("chumpy_chain_20000", with_extra_item(rest_bytes, "v_template", DEEP_CHUMPY)),
        ("deep_list", with_extra_item(rest_bytes, "v_template", DEEP_LIST)),
        ("deep_tuple", with_extra_item(rest_bytes, "v_template", DEEP_TUPLE)),
        ("deep_dict", with_extra_item(rest_bytes, "v_template", DEEP_DICT)),
        ("self_referencing_list", with_extra_item(rest_bytes, "v_template", SELF_LIST)),
        ("shared_list_bomb_2e40", with_extra_item(rest_bytes, "v_template", shared_bomb())),
        ("sparse_shape_1e6_squared", pickle.dumps(dict(arrays, J_regressor=huge_sparse), protocol=2)),
        ("top_level_list", pickle.dumps(list(arrays.values())[:2], protocol=2)),
        ("binbytes8_length_2e60", b"\x80\x04\x8e" + struct.pack("<Q", 2**60) + b"abc"),
        ("refused_global", b"\x80\x02cos\ngetcwd\n)R."),
    ]


# ---- WAV -----------------------------------------------------------------------------------------

def chunk(cid: bytes, payload: bytes, size: int | None = None, pad: bool = True) -> bytes:
    size = len(payload) if size is None else size
    return cid + struct.pack("<I", size & 0xFFFFFFFF) + payload + (b"\0" if pad and len(payload) % 2 else b"")


def fmt_payload(tag: int = 1, channels: int = 1, rate: int = 16000, bits: int = 16,
                block_align: int | None = None, byte_rate: int | None = None, extra: bytes = b"") -> bytes:
    block_align = channels * bits // 8 if block_align is None else block_align
    byte_rate = rate * block_align if byte_rate is None else byte_rate
    return struct.pack("<HHIIHH", tag, channels & 0xFFFF, rate & 0xFFFFFFFF, byte_rate & 0xFFFFFFFF,
                       block_align & 0xFFFF, bits & 0xFFFF) + extra


def wav_bytes(chunks: list[bytes], riff: bytes = b"RIFF", wave: bytes = b"WAVE", riff_size: int | None = None) -> bytes:
    body = wave + b"".join(chunks)
    return riff + struct.pack("<I", (len(body) if riff_size is None else riff_size) & 0xFFFFFFFF) + body


def wav_mutants(samples: np.ndarray) -> list[tuple[str, bytes]]:
    pcm = samples.astype("<i2").tobytes()
    fmt, data = chunk(b"fmt ", fmt_payload()), chunk(b"data", pcm)
    odd = chunk(b"data", pcm + b"\x01")

    def with_fmt(**kw: Any) -> bytes:
        return wav_bytes([chunk(b"fmt ", fmt_payload(**kw)), data])

    floats = samples.astype("<f4") / 32768
    loud = floats.copy()
    loud[100] = np.nan
    ext = fmt_payload(tag=0xFFFE, extra=struct.pack("<H", 0))
    return [
        ("channels_0", with_fmt(channels=0, block_align=2)),
        ("channels_65535", with_fmt(channels=65535)),
        ("channels_2_odd_data", wav_bytes([chunk(b"fmt ", fmt_payload(channels=2)), odd])),
        ("stereo_valid", wav_bytes([chunk(b"fmt ", fmt_payload(channels=2)), data])),
        ("block_align_0", with_fmt(block_align=0)),
        ("block_align_3", with_fmt(block_align=3)),
        ("bits_0", with_fmt(bits=0, block_align=2)),
        ("bits_7", with_fmt(bits=7, block_align=2)),
        ("bits_12", with_fmt(bits=12, block_align=2)),
        ("bits_24_reinterpreted", with_fmt(bits=24)),
        ("bits_64", with_fmt(bits=64)),
        ("bits_8_valid", with_fmt(bits=8)),
        ("rate_0", with_fmt(rate=0)),
        ("rate_1", with_fmt(rate=1)),
        ("rate_4294967295", with_fmt(rate=0xFFFFFFFF)),
        ("rate_768001", with_fmt(rate=768001)),
        ("byte_rate_0", with_fmt(byte_rate=0)),
        ("float_tag_16_bits", with_fmt(tag=3)),
        ("float_tag_nan_sample", wav_bytes([chunk(b"fmt ", fmt_payload(tag=3, bits=32)),
                                           chunk(b"data", loud.tobytes())])),
        ("float_tag_64_reinterpreted", with_fmt(tag=3, bits=64)),
        ("extensible_short", wav_bytes([chunk(b"fmt ", ext), data])),
        ("tag_mp3", with_fmt(tag=0x55)),
        ("tag_0", with_fmt(tag=0)),
        ("fmt_size_14", wav_bytes([chunk(b"fmt ", fmt_payload()[:14]), data])),
        ("fmt_size_beyond_file", wav_bytes([chunk(b"fmt ", fmt_payload(), size=0xFFFFFF00), data])),
        ("data_size_beyond_file", wav_bytes([fmt, chunk(b"data", pcm, size=0xFFFFFFF0)])),
        ("data_size_odd_no_pad", wav_bytes([fmt, chunk(b"data", pcm + b"\x01", pad=False)])),
        ("data_empty", wav_bytes([fmt, chunk(b"data", b"")])),
        ("data_one_sample", wav_bytes([fmt, chunk(b"data", pcm[:2])])),
        ("data_missing", wav_bytes([fmt])),
        ("fmt_missing", wav_bytes([data])),
        ("data_before_fmt", wav_bytes([data, fmt])),
        ("fmt_twice", wav_bytes([fmt, chunk(b"fmt ", fmt_payload(channels=2)), data])),
        ("list_chunk_beyond_file", wav_bytes([fmt, chunk(b"LIST", b"INFOxxxx", size=0x7FFFFFFF), data])),
        ("odd_chunk_unpadded", wav_bytes([fmt, chunk(b"junk", b"abc", pad=False), data])),
        ("odd_chunk_padded_valid", wav_bytes([fmt, chunk(b"junk", b"abc"), data])),
        ("riff_size_0", wav_bytes([fmt, data], riff_size=0)),
        ("riff_size_huge", wav_bytes([fmt, data], riff_size=0xFFFFFFFF)),
        ("rifx_header_little_data", wav_bytes([fmt, data], riff=b"RIFX")),
        ("rf64_header", wav_bytes([fmt, data], riff=b"RF64")),
        ("wave_id_wrong", wav_bytes([fmt, data], wave=b"WAVX")),
    ]


# ---- JSON ----------------------------------------------------------------------------------------

def json_text(value: Any, raw: dict[str, str] | None = None) -> bytes:
    """JSON with "@@name@@" strings replaced by raw text (numbers JSON cannot hold, say)."""
    text = json.dumps(value, indent=1)
    for name, replacement in (raw or {}).items():
        text = text.replace(f'"@@{name}@@"', replacement)
    return text.encode()


def _set(value: dict, path: tuple, new: Any) -> dict:
    """A deep copy of `value` with the item at `path` set (or removed when `new` is MISSING)."""
    out = json.loads(json.dumps(value))
    target = out
    for key in path[:-1]:
        target = target[key]
    if new is MISSING:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = new
    return out


DEEP_JSON = ("[" * DEEP + "]" * DEEP)
BIG_INT = "1" + "0" * 400
HUGE_INT = "1" + "0" * 5000


def json_value_mutants(base: dict, path: tuple) -> list[tuple[str, bytes]]:
    """Numbers JSON can spell but floats cannot hold, deep nesting and wrong types at `path`."""
    name = path[-1]
    return [
        (f"{name}_1e400", json_text(_set(base, path, "@@x@@"), {"x": "1e400"})),
        (f"{name}_10_pow_400", json_text(_set(base, path, "@@x@@"), {"x": BIG_INT})),
        (f"{name}_10_pow_5000", json_text(_set(base, path, "@@x@@"), {"x": HUGE_INT})),
        (f"{name}_nan", json_text(_set(base, path, "@@x@@"), {"x": "NaN"})),
        (f"{name}_deep_nesting", json_text(_set(base, path, "@@x@@"), {"x": DEEP_JSON})),
        (f"{name}_string", json_text(_set(base, path, "12"))),
        (f"{name}_true", json_text(_set(base, path, True))),
        (f"{name}_null", json_text(_set(base, path, None))),
        (f"{name}_list", json_text(_set(base, path, [1, 2]))),
        (f"{name}_object", json_text(_set(base, path, {"a": 1}))),
        (f"{name}_negative", json_text(_set(base, path, -1))),
        (f"{name}_missing", json_text(_set(base, path, MISSING))),
    ]


def json_file_mutants(base: dict) -> list[tuple[str, Content]]:
    """Problems of the file as a whole, for every JSON input."""
    text = json_text(base)
    return [
        ("not_json", b"this is not JSON {"),
        ("deep_nesting_top", DEEP_JSON.encode()),
        ("top_level_list", b"[1, 2, 3]"),
        ("top_level_10_pow_5000", HUGE_INT.encode()),
        ("utf8_bom_valid", b"\xef\xbb\xbf" + text),
        ("utf16", json.dumps(base).encode("utf-16")),
        ("invalid_utf8", text[:-2] + b"\xff\xfe}"),
        ("duplicate_keys", text[:-2] + b', "format": "other"\n}'),
        ("nul_bytes", text + b"\0" * 64),
        ("huge_whitespace_padding", b" " * HUGE_TEXT + text),
        ("fifo", FIFO),
        ("dev_zero", DEVZERO),
        ("folder", FOLDER),
    ]


# ---- safetensors ---------------------------------------------------------------------------------

def safetensors_parts(data: bytes) -> tuple[dict, bytes]:
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def safetensors_bytes(header: dict | bytes, body: bytes, declared: int | None = None) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(text) if declared is None else declared) + text + body


def safetensors_mutants(data: bytes, rng: random.Random) -> list[tuple[str, bytes]]:
    header, body = safetensors_parts(data)
    names = sorted(k for k in header if k != "__metadata__")
    key = rng.choice(names)
    text = json.dumps(header, separators=(",", ":")).encode()

    def changed(**entry: Any) -> dict:
        return {**header, key: {**header[key], **entry}}

    start, stop = header[key]["data_offsets"]
    return [
        ("st_header_length_2e63", safetensors_bytes(text, body, declared=2**63 - 1)),
        ("st_header_length_0", safetensors_bytes(text, body, declared=0)),
        ("st_header_length_past_end", safetensors_bytes(text, body, declared=len(text) + len(body) + 10)),
        ("st_header_length_plus_1", safetensors_bytes(text, body, declared=len(text) + 1)),
        ("st_header_not_json", safetensors_bytes(b"{not json" + b" " * (len(text) - 9), body)),
        ("st_header_deep_nesting", safetensors_bytes(DEEP_JSON.encode(), body)),
        ("st_dtype_f64", safetensors_bytes(changed(dtype="F64"), body)),
        ("st_dtype_i32_same_size", safetensors_bytes(changed(dtype="I32"), body)),
        ("st_dtype_unknown", safetensors_bytes(changed(dtype="Q99"), body)),
        ("st_shape_plus_one", safetensors_bytes(changed(shape=[header[key]["shape"][0] + 1,
                                                               *header[key]["shape"][1:]]), body)),
        ("st_shape_1e12", safetensors_bytes(changed(shape=[10**12]), body)),
        ("st_offsets_past_end", safetensors_bytes(changed(data_offsets=[start, len(body) + 4096]), body)),
        ("st_offsets_reversed", safetensors_bytes(changed(data_offsets=[stop, start]), body)),
        ("st_tensor_removed", safetensors_bytes({k: v for k, v in header.items() if k != key}, body)),
        ("st_tensor_renamed", safetensors_bytes({("x" + k if k == key else k): v for k, v in header.items()}, body)),
        ("st_metadata_not_strings", safetensors_bytes({**header, "__metadata__": {"a": [1, 2]}}, body)),
        ("st_body_truncated", safetensors_bytes(text, body[: len(body) // 2])),
    ]


# ---- designs -------------------------------------------------------------------------------------

DESIGN_CSV = """# size: 32x32
# fps: 10
id,audio,weights,motion,driver,emotion,view,start,end
s01,speech.wav,,,,happy=0.8,front,,0.3
s02,,w.weights.npz,,signal,,three-quarter left,0.2,0.5
s03,,,m.npz,,,20/-5,,0.3
"""
DESIGN_YAML = """defaults:
  size: 32x32
  fps: 10
stimuli:
  - id: s01
    audio: speech.wav
    emotion: {happy: 0.8}
    end: 0.3
  - id: s02
    weights: w.weights.npz
    driver: signal
    view: [30, 0]
    start: 0.2
    end: 0.5
  - id: s03
    motion: m.npz
    view: {yaw: 20, pitch: -5}
    end: 0.3
"""
DESIGN_FILES = ("speech.wav", "w.weights.npz", "m.npz")  # what the base designs name, beside them


def _csv_row(cells: str) -> bytes:
    return (DESIGN_CSV + cells + "\n").encode()


def _csv_cell(column: str, value: str) -> bytes:
    """The base design with `value` in `column` of the first row."""
    header = "id,audio,weights,motion,driver,emotion,view,start,end".split(",")
    row = "s01,speech.wav,,,,happy=0.8,front,,0.3".split(",")
    row[header.index(column)] = value
    return DESIGN_CSV.replace("s01,speech.wav,,,,happy=0.8,front,,0.3", ",".join(row)).encode()


def csv_mutants() -> list[tuple[str, dict[str, Content], bool]]:
    """(name, files, heavy): the design.csv and any files it needs beside it."""
    cell = _csv_cell
    return [
        ("formula_id", {"design.csv": cell("id", "=1+1")}, False),
        ("formula_emotion", {"design.csv": cell("emotion", '=HYPERLINK("http://x";"y")')}, False),
        ("formula_audio", {"design.csv": cell("audio", "@SUM(A1)")}, False),
        ("formula_view", {"design.csv": cell("view", "-2+3")}, False),
        ("formula_cmd", {"design.csv": cell("emotion", "+cmd|' /C calc'!A0")}, False),
        ("fifo_audio", {"design.csv": cell("audio", "fifo.wav"), "fifo.wav": FIFO}, False),
        ("fifo_weights", {"design.csv": _csv_row("s04,,fifo.weights.npz,,signal,,,,0.3"),
                          "fifo.weights.npz": FIFO}, False),
        ("fifo_default_audio", {"design.csv": b"# audio: fifo.wav\n" + DESIGN_CSV.encode(), "fifo.wav": FIFO}, False),
        ("dev_zero_audio", {"design.csv": cell("audio", "zero.wav"), "zero.wav": DEVZERO}, False),
        ("dev_zero_absolute", {"design.csv": cell("audio", "/dev/zero")}, False),
        ("folder_audio", {"design.csv": cell("audio", "sub.wav"), "sub.wav": FOLDER}, False),
        ("path_traversal", {"design.csv": cell("audio", "../" * 12 + "etc/passwd")}, False),
        ("huge_field_200k", {"design.csv": cell("emotion", "happy=" + "0" * 200_000)}, False),
        ("huge_file", {"design.csv": b"## " + b"x" * HUGE_TEXT + b"\n" + DESIGN_CSV.encode()}, True),
        ("rows_5000", {"design.csv": (DESIGN_CSV.split("id,")[0] + "id,end\n"
                                      + "".join(f"r{i},0.3\n" for i in range(5000))).encode()}, False),
        ("columns_1000", {"design.csv": (",".join(f"c{i}" for i in range(1000)) + "\n" + "1," * 999 + "1\n").encode()}, False),
        ("nul_byte", {"design.csv": cell("emotion", "happy\0=0.8")}, False),
        ("invalid_utf8", {"design.csv": cell("emotion", "happy=0.8").replace(b"happy", b"h\xffppy")}, False),
        ("utf16", {"design.csv": DESIGN_CSV.encode("utf-16")}, False),
        ("utf8_bom_valid", {"design.csv": b"\xef\xbb\xbf" + DESIGN_CSV.encode()}, False),
        ("crlf_valid", {"design.csv": DESIGN_CSV.replace("\n", "\r\n").encode()}, False),
        ("header_only", {"design.csv": b"id,audio,end\n"}, False),
        ("unterminated_quote", {"design.csv": _csv_row('s04,"speech.wav,,,,,,,0.3')}, False),
        ("quoted_newline", {"design.csv": _csv_row('s04,,,,,"happy=0.5\nsad=0.2",front,,0.3')}, False),
        ("quoted_newline_last_row", {"design.csv": (DESIGN_CSV + 's04,,,,,"a\n\n\nb"').encode()}, False),
        ("duplicate_column", {"design.csv": b"id,end,end\ns01,0.3,0.4\n"}, False),
        ("fps_1e400", {"design.csv": DESIGN_CSV.replace("# fps: 10", "# fps: 1e400").encode()}, False),
        ("fps_nan", {"design.csv": DESIGN_CSV.replace("# fps: 10", "# fps: nan").encode()}, False),
        ("size_99999", {"design.csv": DESIGN_CSV.replace("32x32", "99999x99999").encode()}, False),
        ("end_inf", {"design.csv": cell("end", "inf")}, False),
        ("view_nan", {"design.csv": cell("view", "nan/nan")}, False),
        ("seed_5000_digits", {"design.csv": DESIGN_CSV.replace("# fps: 10", "# fps: 10\n# seed: " + HUGE_INT).encode()},
         False),
        ("emotion_1e400", {"design.csv": cell("emotion", "happy=1e400")}, False),
        ("id_10000_chars", {"design.csv": cell("id", "a" * 10_000)}, False),
        ("weights_fps_0", {"design.csv": _csv_row("s04,,bad.weights.npz,,signal,,,,0.3"),
                           "bad.weights.npz": Ref("weights", "fps_0")}, False),
        ("audio_rate_1", {"design.csv": cell("audio", "bad.wav"), "bad.wav": Ref("wav", "rate_1")}, False),
        ("motion_translation_1e30", {"design.csv": _csv_row("s04,,,bad.npz,,,,,0.3"),
                                     "bad.npz": Ref("motion", "translation_1e30")}, False),
        ("audio_block_align_0", {"design.csv": cell("audio", "bad.wav"), "bad.wav": Ref("wav", "block_align_0")}, False),
        ("audio_rate_4294967295", {"design.csv": cell("audio", "bad.wav"), "bad.wav": Ref("wav", "rate_4294967295")}, False),
        ("motion_expr_1d", {"design.csv": _csv_row("s04,,,bad.npz,,,,,0.3"), "bad.npz": Ref("motion", "expr_1d")}, False),
        ("blendshapes_huge_header", {"design.csv": b"# avatar: avatar\n# flame: flame.npz\n# blendshapes: bad.npz\n"
                                     + DESIGN_CSV.encode(), "bad.npz": Ref("blendshapes", "template_header_shape_1e12"),
                                     "avatar/point_cloud.ply": Base("avatar/point_cloud.ply"),
                                     "avatar/flame_param.npz": Base("avatar/flame_param.npz"),
                                     "flame.npz": Base("flame_demo.npz")}, False),
        ("design_is_fifo", {"design.csv": FIFO}, False),
        ("design_is_folder", {"design.csv": FOLDER}, False),
    ]


def _deep_block(depth: int) -> str:
    return "stimuli:\n" + "".join("  " * (i + 1) + "-\n" for i in range(depth)) + "  " * (depth + 1) + "- 1\n"


BILLION_LAUGHS = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def _yaml_laughs(where: str) -> bytes:
    """The nine-level alias bomb in a side section, used by `where` ('emotion', 'defaults', ...)."""
    bomb = "bomb:\n" + "".join("  " + line + "\n" for line in BILLION_LAUGHS.splitlines())
    if where == "defaults":
        return (bomb + DESIGN_YAML.replace("  size: 32x32", "  size: *i")).encode()
    return (bomb + DESIGN_YAML.replace("emotion: {happy: 0.8}", f"{where}: *i")).encode()


def _yaml_row(text: str) -> bytes:
    return (DESIGN_YAML + text).encode()


def yaml_mutants() -> list[tuple[str, dict[str, Content], bool]]:
    y = DESIGN_YAML
    return [
        ("deep_flow_list", {"design.yaml": ("stimuli: " + "[" * DEEP + "]" * DEEP + "\n").encode()}, False),
        ("deep_flow_map", {"design.yaml": ("stimuli: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n").encode()}, False),
        ("deep_block_list", {"design.yaml": _deep_block(1000).encode()}, False),
        ("billion_laughs_in_cell", {"design.yaml": _yaml_laughs("emotion")}, False),
        ("billion_laughs_in_view", {"design.yaml": _yaml_laughs("view")}, False),
        ("billion_laughs_in_defaults", {"design.yaml": _yaml_laughs("defaults")}, False),
        ("billion_laughs_as_rows", {"design.yaml": (BILLION_LAUGHS + "stimuli: *i\n").encode()}, False),
        ("alias_undefined", {"design.yaml": y.replace("{happy: 0.8}", "*nowhere").encode()}, False),
        ("python_tag", {"design.yaml": y.replace("{happy: 0.8}", '!!python/object/apply:os.getcwd []').encode()}, False),
        ("unhashable_key", {"design.yaml": _yaml_row("  - {[1, 2]: x}\n")}, False),
        ("null_and_bool_keys", {"design.yaml": _yaml_row("  - {null: x, true: y, 3: z}\n")}, False),
        ("multi_document", {"design.yaml": (y + "---\n" + y).encode()}, False),
        ("top_level_scalar", {"design.yaml": b"hello\n"}, False),
        ("top_level_int", {"design.yaml": b"5\n"}, False),
        ("top_level_zero", {"design.yaml": b"0\n"}, False),
        ("rows_strings", {"design.yaml": b"- a\n- b\n"}, False),
        ("stimuli_string", {"design.yaml": b"stimuli: abc\n"}, False),
        ("defaults_list", {"design.yaml": b"defaults: [1, 2]\nstimuli: []\n"}, False),
        ("seed_5000_digits", {"design.yaml": y.replace("  fps: 10", "  fps: 10\n  seed: " + HUGE_INT).encode()}, False),
        ("seed_10_pow_400", {"design.yaml": y.replace("  fps: 10", "  fps: 10\n  seed: " + BIG_INT).encode()}, False),
        ("fps_nan", {"design.yaml": y.replace("fps: 10", "fps: .nan").encode()}, False),
        ("end_1e400", {"design.yaml": y.replace("end: 0.3", "end: 1e400", 1).encode()}, False),
        ("start_date", {"design.yaml": y.replace("start: 0.2", "start: 2020-01-01").encode()}, False),
        ("binary_id", {"design.yaml": y.replace("id: s01", "id: !!binary aGVsbG8=").encode()}, False),
        ("emotion_nested", {"design.yaml": y.replace("{happy: 0.8}", "{happy: [1, {a: 2}]}").encode()}, False),
        ("view_ten_numbers", {"design.yaml": y.replace("[30, 0]", "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]").encode()}, False),
        ("view_map_nested", {"design.yaml": y.replace("{yaw: 20, pitch: -5}", "{yaw: {a: 1}, pitch: [1]}").encode()}, False),
        ("scalar_1mb", {"design.yaml": y.replace("id: s01", "id: " + "a" * (1 << 20)).encode()}, False),
        ("tabs", {"design.yaml": y.replace("  - id: s01", "\t- id: s01").encode()}, False),
        ("invalid_utf8", {"design.yaml": y.replace("s01", "s\xff1").encode("latin1")}, False),
        ("utf16", {"design.yaml": y.encode("utf-16")}, False),
        ("huge_file", {"design.yaml": b"# " + b"x" * HUGE_TEXT + b"\n" + y.encode()}, True),
        ("fifo_audio", {"design.yaml": y.replace("audio: speech.wav", "audio: fifo.wav").encode(), "fifo.wav": FIFO}, False),
        ("dev_zero_audio", {"design.yaml": y.replace("audio: speech.wav", "audio: zero.wav").encode(),
                            "zero.wav": DEVZERO}, False),
        ("design_is_fifo", {"design.yaml": FIFO}, False),
        ("design_is_folder", {"design.yaml": FOLDER}, False),
    ]


# ---- the base files --------------------------------------------------------------------------------

@dataclass
class Bases:
    """Valid files every format's mutants start from (bytes, and parsed where useful)."""

    ply_table: np.ndarray
    flame: dict[str, np.ndarray]
    pkl_flame: dict[str, np.ndarray]  # the pickles keep 10 shape + 100 expression columns: 14 MB, not 45
    flame_npz: bytes
    flame_pkl: bytes
    blendshapes: dict[str, np.ndarray]
    blendshapes_npz: bytes
    weights: dict[str, np.ndarray]
    motion: dict[str, np.ndarray]
    wav_samples: np.ndarray
    preset: dict
    config: dict
    safetensors: bytes
    files: dict[str, Path] = field(default_factory=dict)  # written under <folder>/base

    @property
    def wav(self) -> bytes:
        return wav_bytes([chunk(b"fmt ", fmt_payload()), chunk(b"data", self.wav_samples.astype("<i2").tobytes())])


def _wav_samples(path: Path) -> np.ndarray:
    data = path.read_bytes()
    i = data.index(b"data") + 8
    rate = struct.unpack("<I", data[24:28])[0]
    return np.frombuffer(data[i:i + int(WAV_SECONDS * rate) * 2], "<i2").copy()


def make_bases(assets: Path) -> Bases:
    demo = assets / "demo"
    flame = read_npz(demo / "flame_demo.npz")
    pkl_flame = dict(flame, shapedirs=flame["shapedirs"][..., [*range(10), *range(300, 400)]])
    blendshapes = read_npz(demo / "blendshapes.npz")
    frames = np.arange(30, dtype=np.float32)[:, None]
    weights = {"fps": np.float64(30.0),
               "speech": (0.25 + 0.25 * np.sin(frames / 3 + np.arange(4))).astype(np.float32),
               "expression": np.full((30, len(blendshapes["expression_names"])), 0.1, np.float32),
               "speech_names": blendshapes["speech_names"], "expression_names": blendshapes["expression_names"]}
    t = np.arange(10, dtype=np.float32)[:, None]
    motion = {"expr": (0.3 * np.sin(t / 2 + np.arange(100) / 7)).astype(np.float32),
              "jaw_pose": np.concatenate([0.1 + 0.05 * np.sin(t), np.zeros((10, 2), np.float32)], 1),
              "rotation": np.zeros((10, 3), np.float32), "neck_pose": np.zeros((10, 3), np.float32),
              "eyes_pose": np.zeros((10, 6), np.float32), "translation": np.zeros((10, 3), np.float32)}
    preset = {"format": "talking-head-studio emotion preset", "version": 1, "emotions": {"happy": 0.6},
              "speech_gain": 1.0, "expression_gain": 1.2,
              "keyframes": [{"time": 0.0, "emotions": {"happy": 0.2}}, {"time": 0.2, "emotions": {"surprised": 0.5}}]}
    return Bases(
        ply_table=_ply_table(demo / "avatar" / "point_cloud.ply"), flame=flame, pkl_flame=pkl_flame,
        flame_npz=(demo / "flame_demo.npz").read_bytes(), flame_pkl=pickle.dumps(pkl_flame, protocol=2),
        blendshapes=blendshapes, blendshapes_npz=(demo / "blendshapes.npz").read_bytes(), weights=weights,
        motion=motion, wav_samples=_wav_samples(demo / "speech.wav"), preset=preset,
        config=json.loads((assets / "model" / "config.json").read_text()),
        safetensors=(assets / "model" / "model.safetensors").read_bytes())


def write_bases(b: Bases, assets: Path, folder: Path) -> dict[str, Path]:
    """<folder>/base: the avatar (base PLY + flame_param.npz), FLAME, WAV, weights, motion and
    generator folder the cases refer to."""
    base = folder / "base"
    (base / "avatar").mkdir(parents=True, exist_ok=True)
    (base / "generator").mkdir(exist_ok=True)
    files = {
        "avatar/point_cloud.ply": _ply(b.ply_table),
        "avatar/flame_param.npz": (assets / "demo" / "avatar" / "flame_param.npz").read_bytes(),
        "flame_demo.npz": b.flame_npz, "speech.wav": b.wav, "w.weights.npz": npz_bytes(b.weights),
        "m.npz": npz_bytes(b.motion), "generator/config.json": (assets / "model" / "config.json").read_bytes(),
        "generator/model.safetensors": b.safetensors,
        "generator/blendshapes.npz": (assets / "model" / "blendshapes.npz").read_bytes(),
    }
    for name, data in files.items():
        (base / name).write_bytes(data)
    return {name: base / name for name in files}


# ---- mutants per format ----------------------------------------------------------------------------

def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_")[:60]


def _rng(seed: int, fmt: str) -> random.Random:
    return random.Random(f"{seed}/{fmt}")


def _single(fmt: str, items: list[tuple[str, Content]], heavy: tuple[str, ...] = ()) -> list[Mutant]:
    """One-file mutants; a name made twice (a seeded member mutation that a specific one also
    makes, say) is kept once."""
    unique: dict[str, Content] = {}
    for name, content in items:
        unique.setdefault(name, content)
    return [Mutant(fmt, name, {MAIN_FILE[fmt]: content}, heavy=name in heavy) for name, content in unique.items()]


HEAVY = ("huge_whitespace_padding", "deflate_bomb_3gib")


def _ply_mutants(fmt: str, b: Bases, rng: random.Random) -> list[Mutant]:
    base = _ply(b.ply_table)
    items = [("base", base), ("wrong_type_wav", b.wav)]
    items += byte_mutants(base, rng, len(base) - len(b.ply_table.tobytes()))
    return _single(fmt, items + ply_mutants(b.ply_table) + [("fifo", FIFO), ("dev_zero", DEVZERO)])


def _npz_mutants(fmt: str, b: Bases, rng: random.Random) -> list[Mutant]:
    """FLAME npz (written compressed, as the demo's is), blendshapes, weights and motion."""
    arrays, base = {"flame_npz": (b.flame, b.flame_npz), "blendshapes": (b.blendshapes, b.blendshapes_npz),
                    "weights": (b.weights, None), "motion": (b.motion, None)}[fmt]
    base = base if base is not None else npz_bytes(arrays)
    compress = fmt == "flame_npz"
    items = [("base", base), ("wrong_type_wav", b.wav)] + byte_mutants(base, rng, 128, limit=10)
    items += [(n, npz_bytes(m, compress)) for n, m in member_mutants(arrays, sorted(arrays), rng)]
    items += [(n, npz_bytes(m, compress)) for n, m in specific_npz(fmt, arrays)]
    items += zip_mutants(base) + [("fifo", FIFO), ("dev_zero", DEVZERO), ("folder", FOLDER)]
    out = _single(fmt, items)
    if fmt == "blendshapes":
        out.append(Mutant(fmt, "deflate_bomb_3gib", {MAIN_FILE[fmt]: lambda: deflate_bomb(arrays, "template")},
                          heavy=True))
    return out


def _pickle_mutants(fmt: str, b: Bases, rng: random.Random) -> list[Mutant]:
    items = [("base", b.flame_pkl), ("wrong_type_wav", b.wav)] + byte_mutants(b.flame_pkl, rng, 200, limit=10)
    return _single(fmt, items + flame_pickle_mutants(b.pkl_flame) + [("fifo", FIFO), ("dev_zero", DEVZERO)])


def _wav_mutants(fmt: str, b: Bases, rng: random.Random) -> list[Mutant]:
    items = [("base", b.wav), ("wrong_type_npz", _NPZ)] + byte_mutants(b.wav, rng, 44)
    return _single(fmt, items + wav_mutants(b.wav_samples) + [("fifo", FIFO), ("dev_zero", DEVZERO), ("folder", FOLDER)])


def _preset_mutants(fmt: str, b: Bases, rng: random.Random) -> list[Mutant]:
    base, p = json_text(b.preset), b.preset
    items = [("base", base), ("wrong_type_npz", _NPZ)] + byte_mutants(base, rng, len(base), limit=6)
    items += json_value_mutants(p, ("speech_gain",)) + json_value_mutants(p, ("keyframes", 1, "time"))[:6]
    items += [("version_true", json_text(_set(p, ("version",), True))),
              ("version_1_0", json_text(_set(p, ("version",), 1.0))),
              ("emotion_unknown", json_text(_set(p, ("emotions",), {"joy": 0.5}))),
              ("emotions_list", json_text(_set(p, ("emotions",), ["happy"]))),
              ("keyframes_10000", json_text(_set(p, ("keyframes",), [
                  {"time": i / 100, "emotions": {"happy": (i % 10) / 10}} for i in range(10000)])))]
    return _single(fmt, items + json_file_mutants(p), heavy=HEAVY)


def _design_mutants(fmt: str, b: Bases, rng: random.Random) -> list[Mutant]:
    main = MAIN_FILE[fmt]
    text = (DESIGN_CSV if fmt == "design_csv" else DESIGN_YAML).encode()
    out = [Mutant(fmt, "base", {main: text}), Mutant(fmt, "wrong_type_wav", {main: b.wav})]
    out += [Mutant(fmt, n, {main: c}) for n, c in byte_mutants(text, rng, len(text), limit=8)]
    return out + [Mutant(fmt, n, files, heavy) for n, files, heavy in
                  (csv_mutants() if fmt == "design_csv" else yaml_mutants())]


_NPZ = npz_bytes({"speech": np.zeros((3, 4), np.float32)})  # a file of the wrong type for WAV and JSON


def mutants_for(fmt: str, b: Bases, seed: int) -> list[Mutant]:
    """Every mutant of one format: the base, a file of another type, byte damage, structure."""
    makers = {"ply": _ply_mutants, "flame_npz": _npz_mutants, "flame_pkl": _pickle_mutants,
              "blendshapes": _npz_mutants, "weights": _npz_mutants, "motion": _npz_mutants, "wav": _wav_mutants,
              "preset": _preset_mutants, "generator": generator_mutants, "design_csv": _design_mutants,
              "design_yaml": _design_mutants}
    return makers[fmt](fmt, b, _rng(seed, fmt))


def specific_npz(fmt: str, a: dict[str, np.ndarray]) -> list[tuple[str, dict[str, Any]]]:
    """Mutants that need to know what the members mean."""
    def w(**changes: Any) -> dict[str, Any]:
        return {k: v for k, v in {**a, **changes}.items() if v is not None}

    if fmt == "flame_npz":
        f = a["f"]
        kintree = a["kintree_table"].copy()
        kintree[0, 2] = 2
        return [("f_past_last_vertex", w(f=np.where(f == f.max(), len(a["v_template"]), f))),
                ("f_negative", w(f=-f)), ("f_float", w(f=f.astype(np.float32) + 0.5)),
                ("kintree_cycle", w(kintree_table=kintree)),
                ("j_regressor_4_joints", w(J_regressor=a["J_regressor"][:4])),
                ("shapedirs_99_columns", w(shapedirs=a["shapedirs"][..., :99])),
                ("n_shape_empty", w(n_shape=np.zeros(0), n_expr=np.int64(100))),
                ("n_shape_nan", w(n_shape=np.float64(np.nan), n_expr=np.int64(100))),
                ("n_shape_minus_1", w(n_shape=np.int64(-1), n_expr=np.int64(401))),
                ("n_shape_1e30", w(n_shape=np.float64(1e30), n_expr=np.int64(100))),
                ("n_shape_string", w(n_shape=np.array("300"), n_expr=np.int64(100))),
                ("n_shape_alone", w(n_shape=np.int64(300))),
                ("v_template_zero_vertices", w(v_template=a["v_template"][:0]))]
    if fmt == "blendshapes":
        names = a["speech_names"]
        return [("format_version_2", w(format_version=np.int64(2))),
                ("format_version_string", w(format_version=np.array("1"))),
                ("format_version_float", w(format_version=np.float64(1.0))),
                ("format_version_array", w(format_version=np.array([1]))),
                ("speech_names_ints", w(speech_names=np.arange(len(names)))),
                ("speech_names_empty_string", w(speech_names=np.array(["", *names[1:]]))),
                ("speech_names_duplicate", w(speech_names=np.array([names[0]] * len(names)))),
                ("speech_names_2d", w(speech_names=names[None])),
                ("names_shared", w(expression_names=np.array([names[0], *a["expression_names"][1:]]))),
                ("template_zero_vertices", w(template=a["template"][:0], speech_basis=a["speech_basis"][:, :0],
                                             expression_basis=a["expression_basis"][:, :0])),
                ("template_header_shape_1e12", w(template=npy_header((10**12, 3)))),
                ("region_names_without_masks", w(region_names=np.array(["mouth"]))),
                ("emotion_profiles_wrong", w(emotion_profiles=a["emotion_profiles"][:, :3]))]
    if fmt == "weights":
        return [("fps_1e-6", w(fps=np.float64(1e-6))), ("fps_0", w(fps=np.float64(0))),
                ("fps_1e9", w(fps=np.float64(1e9))), ("fps_negative", w(fps=np.float64(-30))),
                ("fps_nan", w(fps=np.float64(np.nan))), ("fps_inf", w(fps=np.float64(np.inf))),
                ("fps_string", w(fps=np.array("30"))), ("fps_array", w(fps=np.array([30.0, 30.0]))),
                ("fps_empty", w(fps=np.zeros(0))), ("fps_int_valid", w(fps=np.int64(30))),
                ("fps_complex", w(fps=np.complex128(30 + 1j))),
                ("zero_frames", w(speech=a["speech"][:0], expression=a["expression"][:0])),
                ("speech_header_1e10_frames", w(speech=npy_header((10**10, 4)))),
                ("names_renamed", w(speech_names=np.array(["a", "b", "c", "d"]))),
                ("speech_1e30", w(speech=np.full_like(a["speech"], 1e30)))]
    if fmt == "motion":
        e = a["expr"]
        return [("expr_101_columns", w(expr=np.pad(e, ((0, 0), (0, 1))))), ("expr_0_columns", w(expr=e[:, :0])),
                ("expr_1d", w(expr=e[:, 0])), ("zero_frames", {k: v[:0] for k, v in a.items()}),
                ("frames_disagree", w(jaw_pose=a["jaw_pose"][:5])), ("eyes_pose_3_wide", w(eyes_pose=a["eyes_pose"][:, :3])),
                ("translation_1e30", w(translation=np.full_like(a["translation"], 1e30))),
                ("rotation_1e30", w(rotation=np.full_like(a["rotation"], 1e30))),
                ("expr_1e30", w(expr=np.full_like(e, 1e30))),
                ("expr_1e39_float64", w(expr=np.full(e.shape, 1e39))),
                ("jaw_pose_nan", w(jaw_pose=np.full_like(a["jaw_pose"], np.nan))),
                ("shape_2_rows", w(shape=np.zeros((2, 300), np.float32))),
                ("static_offset_wrong", w(static_offset=np.zeros((1, 5, 3), np.float32))),
                ("dynamic_offset_header_1e12", w(dynamic_offset=npy_header((10**12, 7398, 3)))),
                ("expr_header_1e9_frames", w(expr=npy_header((10**9, 100))))]
    return []


def generator_mutants(fmt: str, b: Bases, rng: random.Random) -> list[Mutant]:
    """A generator folder with one of its files mutated (the others are the shipped model's)."""
    conf, g = b.config, ("config", "generator")
    text = json_text(conf)

    def config(name: str, content: Content, heavy: bool = False) -> Mutant:
        return Mutant(fmt, name, {"config.json": content}, heavy=heavy)

    def setting(key: str, value: Any) -> Mutant:
        return config(_slug(f"{key}_{type(value).__name__}_{value}"), json_text(_set(conf, (*g, key), value)))

    out = [config("base", text), config("wrong_kind", json_text(_set(conf, ("kind",), "blendshape-learner")))]
    out += [config(f"config_{n}", c) for n, c in byte_mutants(text, rng, len(text), limit=6)]
    out += [setting("width", v) for v in (10**9, 100_000, 0, 96.5, "96", True)]
    out += [setting("layers", v) for v in (10**6, 5000)]
    out += [setting("kernel", v) for v in (10**6, 4)] + [setting("emotion_dim", 10**8), setting("mel_bands", 10**6)]
    out += [setting("mel_fmin", "a"), setting("mel_fmax", 1e300), setting("speech_names", 5),
            setting("speech_names", "abc"), setting("speech_names", [1, 2])]
    out += [config("width_10_pow_5000", json_text(_set(conf, (*g, "width"), "@@x@@"), {"x": HUGE_INT})),
            config("width_1e400", json_text(_set(conf, (*g, "width"), "@@x@@"), {"x": "1e400"})),
            config("wav2vec2_missing_dir", json_text(_set(_set(conf, (*g, "front_end"), "wav2vec2"),
                                                          (*g, "wav2vec2_dir"), "/nonexistent/wav2vec2"))),
            config("generator_missing", json_text(_set(conf, ("config", "generator"), MISSING))),
            config("unknown_setting", json_text(_set(conf, (*g, "colour"), "red"))),
            config("version_true", json_text(_set(conf, ("version",), True))),
            config("version_10_pow_400", json_text(_set(conf, ("version",), "@@x@@"), {"x": BIG_INT})),
            config("config_deep_nesting", json_text(_set(conf, ("config",), "@@x@@"), {"x": DEEP_JSON}))]
    out += [config(n, c, heavy=n in HEAVY) for n, c in json_file_mutants(conf)[:5] + json_file_mutants(conf)[9:]]
    out += [Mutant(fmt, "config_missing", {"config.json": MISSING})]
    out += [Mutant(fmt, n, {"model.safetensors": c}) for n, c in safetensors_mutants(b.safetensors, rng)]
    out += [Mutant(fmt, "weights_missing", {"model.safetensors": MISSING}),
            Mutant(fmt, "weights_fifo", {"model.safetensors": FIFO}),
            Mutant(fmt, "weights_dev_zero", {"model.safetensors": DEVZERO}),
            Mutant(fmt, "blendshapes_missing", {"blendshapes.npz": MISSING}),
            Mutant(fmt, "blendshapes_fifo", {"blendshapes.npz": FIFO}),
            Mutant(fmt, "training_state_junk", {"training_state.pt": b"PK\x03\x04junk"})]
    return out


# ---- writing them and the cases that run them ------------------------------------------------------

def write_content(path: Path, content: Content, folder: Path, base: dict[str, Path]) -> None:
    """One file of a mutant; a Ref is read from the mutant it names (written already: designs
    come last)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, Ref):
        path.write_bytes((folder / content.format / content.name / MAIN_FILE[content.format]).read_bytes())
    elif isinstance(content, Base):
        _link(base[content.name], path)
    elif callable(content):
        path.write_bytes(content())
    elif content == MISSING:
        return
    elif content == FIFO:
        os.mkfifo(path)
    elif content == DEVZERO:
        path.symlink_to("/dev/zero")
    elif content == FOLDER:
        path.mkdir()
    else:
        path.write_bytes(content)


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


BESIDE = {"ply": ("avatar/flame_param.npz",), "generator": ("generator/config.json", "generator/model.safetensors",
                                                            "generator/blendshapes.npz"),
          "design_csv": DESIGN_FILES, "design_yaml": DESIGN_FILES}


def write_mutant(m: Mutant, folder: Path, base: dict[str, Path]) -> Path:
    """The mutant's own folder: its files, plus links to the base files it sits beside."""
    where = folder / m.format / m.name
    where.mkdir(parents=True)
    for name, content in m.files.items():
        write_content(where / name, content, folder, base)
    for name in BESIDE.get(m.format, ()):
        target = where / Path(name).name
        if Path(name).name not in m.files:
            _link(base[name], target)
    return where


def _cases(m: Mutant, where: Path, base: dict[str, Path]) -> list[dict]:
    """The commands a mutant is run with: `info` always; a render, a design check, or both."""
    main = where / MAIN_FILE[m.format] if m.format != "generator" else where
    avatar, flame, wav = base["avatar/point_cloud.ply"].parent, base["flame_demo.npz"], base["speech.wav"]
    renders = {
        "ply": ["--avatar", str(where), "--flame", str(flame)],
        "flame_npz": ["--avatar", str(avatar), "--flame", str(main)],
        "flame_pkl": ["--avatar", str(avatar), "--flame", str(main)],
        "blendshapes": ["--avatar", str(avatar), "--flame", str(flame), "--blendshapes", str(main),
                        "--driver", "signal", "--audio", str(wav), "--emotion", "happy=0.5"],
        "weights": ["--demo", "--driver", "signal", "--weights", str(main)],
        "motion": ["--demo", "--motion", str(main)],
        "wav": ["--demo", "--audio", str(main)],
        "preset": ["--demo", "--preset", str(main)],
        "generator": ["--demo", "--generator", str(main)],
    }
    common = {"format": m.format, "mutation": m.name, "heavy": m.heavy}
    if m.format.startswith("design"):
        cases = [dict(common, command="check", argv=["stimuli", str(main), "-o", "{work}/out", "--check"])]
        if m.name in STIMULI_RENDERS:
            cases.append(dict(common, command="stimuli",
                              argv=["stimuli", str(main), "-o", "{work}/out", "-q", "--backend", "cpu"]))
        return cases
    return [dict(common, command="info", argv=["info", str(main)]),
            dict(common, command="render", argv=["render", *renders[m.format], *RENDER, "-o", "{work}/out.mp4"])]


STIMULI_RENDERS = ("base", "id_10000_chars", "audio_rate_1", "motion_translation_1e30")  # real batches


def generate(folder: str | os.PathLike, seed: int = 0, heavy: bool = True, assets: Path = ASSETS) -> list[dict]:
    """Write every mutant under `folder` (which must not exist) and return the cases, also
    saved as `folder/cases.json`. `heavy=False` leaves out the large and slow ones."""
    folder = Path(folder)
    folder.mkdir(parents=True)
    bases = make_bases(assets)
    base = write_bases(bases, assets, folder)
    cases = []
    for fmt in FORMATS:
        for m in mutants_for(fmt, bases, seed):
            if heavy or not m.heavy:
                cases += _cases(m, write_mutant(m, folder, base), base)
    for i, case in enumerate(cases):
        case["id"] = f"{i:04d}-{case['format']}-{case['mutation']}-{case['command']}"
        case["timeout"] = TIMEOUTS[case["command"]]
    (folder / "cases.json").write_text(json.dumps({"seed": seed, "cases": cases}, indent=1))
    return cases


def select(cases: list[dict], renders_per_format: int, seed: int) -> list[dict]:
    """A fast subset: every `info` and design check, the base and wrong-type renders, the base
    CSV design's batch, and `renders_per_format` other renders per format chosen by `seed`."""
    rng = random.Random(f"select/{seed}")

    def always(c: dict) -> bool:
        if c["command"] in ("info", "check"):
            return True
        if c["command"] == "stimuli":
            return c["format"] == "design_csv" and c["mutation"] == "base"
        return c["mutation"] == "base" or c["mutation"].startswith("wrong_type")

    keep = [c for c in cases if always(c)]
    for fmt in FORMATS:
        others = [c for c in cases if c["format"] == fmt and c["command"] == "render" and not always(c)]
        keep += rng.sample(others, min(renders_per_format, len(others)))
    return sorted(keep, key=lambda c: c["id"])
