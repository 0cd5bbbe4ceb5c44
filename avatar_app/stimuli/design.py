"""Reading a stimulus design: one row per clip, from CSV or YAML, plus defaults and a factorial.

CSV: `# column: value` lines before the column header set defaults (other comments: `##` or a
line that does not start with a column name and a colon); blank and `#` lines are skipped.
YAML: a list of rows, or a mapping with `defaults:` and `stimuli:`. Values are kept as text here;
`resolve.py` checks and interprets them, all rows at once.
"""
from __future__ import annotations

import csv
import io
import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from models.errors import InputError
from models.files import atomic_write

COLUMNS = {
    "id": "unique name of the stimulus; its files are <id>.mp4, <id>.png, <id>.weights.csv",
    "avatar": "demo, or a GaussianAvatars folder",
    "flame": "the FLAME model of the avatar",
    "blendshapes": "the blendshape model (.npz) of the avatar",
    "generator": "a generator folder made by `avatar train-speech`",
    "driver": "learned or signal",
    "audio": "speech WAV: drives the face, or is the soundtrack of weights/motion",
    "weights": "a *.weights.npz sequence",
    "motion": "FLAME motion (GaussianAvatars flame_param keys)",
    "emotion": "happy=0.8, a mix happy=0.5;surprised=0.3, or a name scaled by intensity",
    "intensity": "0..1: scales the emotion",
    "view": "front, three-quarter left/right, profile left/right, or yaw/pitch[/distance]",
    "size": "WIDTHxHEIGHT (even)",
    "fps": "frames per second",
    "background": "white, black, gray, #rrggbb or r,g,b",
    "start": "seconds into the source where the clip starts",
    "end": "seconds into the source where the clip ends (default: its end)",
    "lead_in": "seconds of still neutral face with silence before",
    "lead_out": "seconds of still neutral face with silence after",
    "speech_gain": "speech strength (1 = as driven)",
    "expression_gain": "expression strength (1 = as driven)",
    "seed": "seeds anything random while the clip is made",
}
DEFAULTS = {"avatar": "demo", "driver": "learned", "view": "front", "size": "512x512", "fps": "30",
            "background": "white", "start": "0", "lead_in": "0", "lead_out": "0", "speech_gain": "1",
            "expression_gain": "1", "seed": "0"}
PATH_COLUMNS = ("avatar", "flame", "blendshapes", "generator", "audio", "weights", "motion")
_DEFAULT_LINE = re.compile(r"#\s*([A-Za-z_]+)\s*:\s*(.*?)\s*$")


@dataclass
class DesignRow:
    """One stimulus as written: `number` counts rows from 1, `line` is its line in the file
    (0 when --factorial made it)."""

    number: int
    line: int
    values: dict[str, str]

    def where(self) -> str:
        return f"row {self.number}" + (f" (line {self.line})" if self.line else "")


@dataclass
class Design:
    """Rows with the file's defaults; relative paths are relative to `base`. `problems` are
    what reading found wrong (unknown columns, malformed rows), each naming where."""

    base: Path
    defaults: dict[str, str] = field(default_factory=dict)
    rows: list[DesignRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_design(path: str | os.PathLike) -> Design:
    """A design file: `.csv`, or `.yaml`/`.yml`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: no such design file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read the design ({err})") from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        design = _read_csv(text, path.parent)
    elif suffix in (".yaml", ".yml"):
        design = _read_yaml(text, path)
    else:
        raise InputError(f"{path}: a design is a .csv or .yaml file")
    design.problems = [f"{path}: {p}" for p in design.problems]
    return design


def _unknown(name: str) -> str:
    return f"unknown column '{name}' (columns: {', '.join(COLUMNS)})"


def _read_csv(text: str, base: Path) -> Design:
    design = Design(base)
    lines = text.splitlines()
    numbered = []
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not numbered and stripped.startswith("#"):  # the header block
            match = _DEFAULT_LINE.fullmatch(stripped)
            if match and not stripped.startswith("##"):
                name = match.group(1).lower()
                if name in COLUMNS:
                    design.defaults[name] = match.group(2)
                else:
                    design.problems.append(f"line {number}: default for an {_unknown(name)}")
        elif stripped and not stripped.startswith("#"):
            numbered.append((number, line))
    if not numbered:
        return design
    reader = csv.reader(line for _, line in numbered)
    header = [name.strip().lower() for name in next(reader)]
    header_line = numbered[0][0]
    for name in header:
        if name not in COLUMNS:
            design.problems.append(f"line {header_line}: {_unknown(name)}")
    for name in {n for n in header if header.count(n) > 1}:
        design.problems.append(f"line {header_line}: column '{name}' appears twice")
    for cells in reader:
        line = numbered[reader.line_num - 1][0]
        row = DesignRow(len(design.rows) + 1, line, {})
        if len(cells) != len(header):
            design.problems.append(f"{row.where()}: {len(cells)} values for {len(header)} columns")
        row.values = {name: cell.strip() for name, cell in zip(header, cells) if cell.strip() and name in COLUMNS}
        design.rows.append(row)
    return design


def _text(column: str, value: Any) -> str:
    """A YAML value as the text a CSV cell would hold."""
    if value is None:
        return ""
    if isinstance(value, dict) and column == "emotion":
        return ";".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, dict) and column == "view":
        return "/".join(str(value[k]) for k in ("yaw", "pitch", "distance") if k in value)
    if isinstance(value, list) and column == "view":
        return "/".join(str(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _yaml_row_lines(text: str) -> list[int]:
    """The line of each row of the `stimuli` list (or the top-level list)."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if isinstance(node, yaml.MappingNode):
        node = next((value for key, value in node.value if key.value == "stimuli"), None)
    if not isinstance(node, yaml.SequenceNode):
        return []
    return [item.start_mark.line + 1 for item in node.value]


def _read_yaml(text: str, path: Path) -> Design:
    try:
        data = yaml.safe_load(text)
        lines = _yaml_row_lines(text)
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML ({err})") from None
    design = Design(path.parent)
    if isinstance(data, dict):
        for key in set(data) - {"defaults", "stimuli"}:
            design.problems.append(f"unknown section '{key}' (sections: defaults, stimuli)")
        defaults, rows = data.get("defaults") or {}, data.get("stimuli") or []
    else:
        defaults, rows = {}, data or []
    if not isinstance(defaults, dict) or not isinstance(rows, list):
        raise InputError(f"{path}: `defaults` must be a mapping and `stimuli` a list of rows")
    for name, value in defaults.items():
        if str(name).lower() in COLUMNS:
            design.defaults[str(name).lower()] = _text(str(name).lower(), value)
        else:
            design.problems.append(f"defaults: {_unknown(str(name))}")
    for index, item in enumerate(rows):
        row = DesignRow(index + 1, lines[index] if index < len(lines) else 0, {})
        if not isinstance(item, dict):
            design.problems.append(f"{row.where()}: a row must be a mapping of column: value")
            item = {}
        for name, value in item.items():
            column = str(name).lower()
            if column not in COLUMNS:
                design.problems.append(f"{row.where()}: {_unknown(str(name))}")
            elif _text(column, value).strip():
                row.values[column] = _text(column, value).strip()
        design.rows.append(row)
    return design


def parse_assignments(items: Sequence[str], what: str) -> dict[str, str]:
    """`column=value` items from the command line (--set, or --factorial level lists) keyed by
    column; paths in them are relative to the working folder, so they are made absolute."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep or not name:
            raise InputError(f"{what} {item!r}: expected COLUMN=VALUE")
        if name not in COLUMNS:
            raise InputError(f"{what} {item!r}: {_unknown(name)}")
        if name in out:
            raise InputError(f"{what}: column '{name}' is given twice")
        value = value.strip()
        if name in PATH_COLUMNS:
            value = ",".join(v if v.strip().lower() in ("", "demo") else str(Path(v.strip()).absolute())
                             for v in value.split(","))
        out[name] = value
    return out


def _label(column: str, value: str) -> str:
    text = Path(value).stem if column in PATH_COLUMNS else value
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-") or "x"


def expand_factorial(design: Design, factors: Sequence[str]) -> Design:
    """Every row crossed with every combination of the factor levels (`column=a,b,c`; the
    first factor varies slowest). With no rows, the combinations are the rows. Ids are made
    of the levels, after the row's own id."""
    levels = {name: [v.strip() for v in text.split(",") if v.strip()]
              for name, text in parse_assignments(factors, "--factorial").items()}
    for name, values in levels.items():
        if not values:
            raise InputError(f"--factorial {name}=: no levels")
    base_rows = design.rows or [DesignRow(0, 0, {})]
    rows = []
    for base in base_rows:
        for combo in itertools.product(*levels.values()):
            values = {**base.values, **dict(zip(levels, combo))}
            labels = [_label(name, value) for name, value in zip(levels, combo)]
            values["id"] = "_".join(([base.values["id"]] if "id" in base.values else []) + labels)
            rows.append(DesignRow(len(rows) + 1, base.line, values))
    seen: dict[str, int] = {}
    for row in rows:  # levels that label alike (a/x.wav, b/x.wav) get the row number too
        seen[row.values["id"]] = seen.get(row.values["id"], 0) + 1
    for row in rows:
        if seen[row.values["id"]] > 1:
            row.values["id"] = f"{row.values['id']}_{row.number}"
    return Design(design.base, design.defaults, rows, design.problems)


def write_design(design: Design, defaults: dict[str, str], path: Path) -> None:
    """The design as CSV at `path` (the defaults as its header block), with relative paths
    rewritten to stay valid from the new folder."""
    def moved(column: str, value: str) -> str:
        if column not in PATH_COLUMNS or not value or value.lower() == "demo":
            return value
        return os.path.relpath(design.base / value, path.parent.resolve())

    columns = [c for c in COLUMNS if any(c in row.values for row in design.rows)]
    out = io.StringIO()
    for name, value in defaults.items():
        out.write(f"# {name}: {moved(name, value)}\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in design.rows:
        writer.writerow([moved(c, row.values.get(c, "")) for c in columns])
    atomic_write(path, lambda handle: handle.write(out.getvalue().encode("utf-8")))


def merged_defaults(design: Design, command_line: Optional[dict[str, str]] = None) -> dict[str, str]:
    """Built-in defaults, then the file's header block, then the command line's --set."""
    return {**DEFAULTS, **design.defaults, **(command_line or {})}
