"""Reading input files defensively (small text and JSON files, with bounds), and CSV cells
that a spreadsheet never runs as formulas. Writing outputs atomically: `common.atomic`."""
from __future__ import annotations

import itertools
import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.errors import InputError, error_detail
from common.limits import MAX_NESTING, MAX_TEXT_BYTES

_NOT_BRACKETS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[^"\[\]{}]+', re.DOTALL)  # strings and the rest
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


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
    except ValueError:  # a NUL byte or an unencodable character in the name
        raise InputError(f"{path!r}: not a usable file name") from None
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
            data = handle.read(min(os.fstat(handle.fileno()).st_size, limit) + 1)
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from None
    if len(data) > limit:
        raise InputError(f"{path}: larger than {limit >> 20} MiB; too large for a {what}")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not {encoding} text (byte {err.start}); not a {what}") from None


def parse_json(text: str, source: str, what: str = "JSON file", parse_int: Callable[[str], Any] | None = None) -> Any:
    """JSON data, after checking how deep its brackets nest (strings skipped) without parsing
    it, so deep nesting is a clear error rather than a RecursionError."""
    depth = max(itertools.accumulate(map(_DEPTH_STEP.__getitem__, _NOT_BRACKETS.sub("", text))), default=0)
    if depth > MAX_NESTING:
        raise InputError(f"{source}: not a {what} (nested more than {MAX_NESTING} deep)")
    try:
        return json.loads(text, parse_int=parse_int)
    except (ValueError, RecursionError) as err:  # JSONDecodeError, or an integer of too many digits
        raise InputError(f"{source}: not a {what}: not valid JSON ({error_detail(err)})") from None


def read_json_file(path: str | os.PathLike, what: str, parse_int: Callable[[str], Any] | None = None) -> Any:
    """The data of a small JSON file (see `read_text_file` and `parse_json`)."""
    return parse_json(read_text_file(path, what), str(path), what, parse_int)


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
DECIMAL_TEXT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")  # what every spreadsheet reads as a number


def csv_cell(value: object) -> object:
    """A value as a CSV cell that a spreadsheet shows as text, never runs as a formula: text
    starting with = + - @ or a tab/CR gets a leading apostrophe (OWASP's advice), numbers and
    plain decimal text ("-2", "+1.5", "1e3") stay as they are (not "-inf" or "-1_0", which
    Python's float reads but a spreadsheet takes for a formula)."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_STARTS) or DECIMAL_TEXT.fullmatch(value):
        return value
    return "'" + value


def csv_text(cell: str) -> str:
    """The value `csv_cell` protected, from a cell read back."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_FORMULA_STARTS) else cell
