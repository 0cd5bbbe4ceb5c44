"""Reading a stimulus design: one row per clip, from CSV or YAML, plus defaults and a factorial.

CSV: `# column: value` lines before the column header set defaults (other comments: `##` or a
line that does not start with a column name and a colon); blank and `#` lines are skipped.
YAML: a list of rows, or a mapping with `defaults:` and `stimuli:` (anchors, aliases and `<<`
merges work; tags other than YAML's own scalar types do not). Values are kept as text here, a YAML
scalar as written; `resolve.py` checks and interprets them, all rows at once. A design is a small
regular file; YAML is measured (depth, size with aliases expanded) before anything is built.
"""
from __future__ import annotations

import csv
import io
import itertools
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import yaml

from common.atomic import atomic_write
from common.errors import InputError
from common.files import csv_cell, csv_text, read_text_file
from common.limits import MAX_DESIGN_ROWS, MAX_NESTING, MAX_YAML_NODES

from .columns import COLUMNS

EXPORT_FILES = {"livelink": "livelink.csv", "arkit": "arkit.json", "gltf": "glb", "motion": "motion.npz",
                "weights": "weights.npz"}  # an `exports` value → its file name after "<id>."
DEFAULTS = {"avatar": "demo", "driver": "learned", "view": "front", "fps": "30",
            "background": "white", "start": "0", "lead_in": "0", "lead_out": "0", "speech_gain": "1",
            "expression_gain": "1", "expression_space": "free", "seed": "0", "blink": "0", "gaze": "0",
            "head_motion": "0"}
PATH_COLUMNS = ("avatar", "flame", "blendshapes", "generator", "audio", "weights", "motion", "camera", "arkit_shapes")
_DEFAULT_LINE = re.compile(r"#\s*([A-Za-z_]+)\s*:\s*(.*?)\s*$")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml where PyYAML has it: far faster
_TAG = "tag:yaml.org,2002:"
_TEXT_TAGS = {_TAG + name for name in ("str", "int", "float", "bool", "timestamp")}  # kept as written
_NULL, _MERGE = _TAG + "null", _TAG + "merge"


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
    """A design file: `.csv`, or `.yaml`/`.yml` (a small regular file: never a pipe or a device)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".yaml", ".yml"):
        raise InputError(f"{path}: a design is a .csv or .yaml file")
    text = read_text_file(path, "design").removeprefix("\ufeff")
    design = _read_csv(text, path) if suffix == ".csv" else _read_yaml(text, path)
    check_row_count(len(design.rows), str(path))
    design.problems = [f"{path}: {p}" for p in design.problems]
    return design


def check_row_count(rows: int, where: str) -> None:
    if rows > MAX_DESIGN_ROWS:
        raise InputError(f"{where}: more than {MAX_DESIGN_ROWS} rows (stimuli)")


def one_line(text: str, limit: int = 600) -> str:
    """`text` fit for one line of a message: what is not printable (line breaks, control
    characters) escaped, and the middle of a long text left out."""
    if len(text) > limit:
        text = f"{text[:limit // 2]} … {text[-limit // 2:]}"
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _unknown(name: str) -> str:
    return f"unknown column '{name}' (columns: {', '.join(COLUMNS)})"


def _read_csv(text: str, path: Path) -> Design:
    design = Design(path.parent)
    numbered = []
    for number, line in enumerate(io.StringIO(text, newline=""), 1):  # lines as csv and editors count them
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
    try:
        _read_csv_rows(reader, numbered, design)
    except csv.Error as err:  # a field over csv.field_size_limit(), say
        line = numbered[max(1, min(reader.line_num, len(numbered))) - 1][0]
        raise InputError(f"{path}: line {line}: not valid CSV ({err})") from None
    return design


def _read_csv_rows(reader: Iterator[list[str]], numbered: list[tuple[int, str]], design: Design) -> None:
    header = [name.strip().lower() for name in next(reader)]
    header_line = numbered[0][0]
    for name in header:
        if name not in COLUMNS:
            design.problems.append(f"line {header_line}: {_unknown(name)}")
    for name, count in Counter(header).items():
        if count > 1:
            design.problems.append(f"line {header_line}: column '{name}' appears twice")
    for cells in reader:
        line = numbered[reader.line_num - 1][0]
        row = DesignRow(len(design.rows) + 1, line, {})
        if len(cells) != len(header):
            design.problems.append(f"{row.where()}: {len(cells)} values for {len(header)} columns")
        row.values = {name: csv_text(cell.strip()) for name, cell in zip(header, cells) if cell.strip() and name in COLUMNS}
        design.rows.append(row)
        if len(design.rows) > MAX_DESIGN_ROWS:
            return  # too many: read_design refuses it


def _check_yaml_size(text: str) -> None:
    """Refuse YAML nested deeper than MAX_NESTING, or of more than MAX_YAML_NODES nodes once its
    aliases are expanded (a few lines of aliases can stand for billions of nodes). Reads the
    parser's events only: nothing is built, and an alias adds the size its anchor had."""
    total, opened, anchors = 0, [], {}
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in anchors:  # undefined, or inside its own anchor: a cycle
                raise _yaml_error(event, f"alias *{event.anchor} refers to no complete anchor before it")
            total += anchors[event.anchor]
        elif isinstance(event, yaml.ScalarEvent):
            total += 1
            if event.anchor is not None:
                anchors[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            total += 1
            opened.append((event.anchor, total))
            if len(opened) > MAX_NESTING:
                raise _yaml_error(event, f"nested more than {MAX_NESTING} deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, start = opened.pop()
            if anchor is not None:
                anchors[anchor] = total - start + 1
        if total > MAX_YAML_NODES:
            raise _yaml_error(event, f"more than {MAX_YAML_NODES} values once its aliases are expanded")


def _yaml_error(event: yaml.Event, problem: str) -> InputError:
    return InputError(f"line {event.start_mark.line + 1}: {problem}")


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: the problem and where."""
    if isinstance(err, yaml.MarkedYAMLError) and err.problem:
        mark = err.problem_mark
        return ", ".join(filter(None, [err.context, err.problem])) + (
            f" (line {mark.line + 1}, column {mark.column + 1})" if mark else "")
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def _scalar(node: yaml.Node) -> str:
    """A scalar's text as written: YAML values are kept as text, like CSV cells."""
    if not isinstance(node, yaml.ScalarNode):
        raise InputError(f"a {'list' if isinstance(node, yaml.SequenceNode) else 'mapping'} where a value is expected")
    if node.tag == _NULL:
        return ""
    if node.tag not in _TEXT_TAGS:
        raise InputError(f"a value tagged {node.tag} (give text or a number)")
    return node.value


def _pairs(node: yaml.MappingNode) -> dict[str, yaml.Node]:
    """A mapping's values by key. `<<: *anchor` merges are taken after the mapping's own keys,
    which win, as do earlier merges over later ones; iterative, as merges can chain."""
    values: dict[str, yaml.Node] = {}
    pending = [node]
    while pending:
        mapping = pending.pop()
        merges = []
        for key, value in reversed(mapping.value):  # within one mapping the last of a key wins
            if key.tag == _MERGE:
                merges = (value.value if isinstance(value, yaml.SequenceNode) else [value]) + merges
            else:
                values.setdefault(_scalar(key), value)
        if not all(isinstance(m, yaml.MappingNode) for m in merges):
            raise InputError("`<<` merges a mapping or a list of mappings")
        pending.extend(reversed(merges))
    return values


def _text(column: str, node: yaml.Node) -> str:
    """A YAML value as the text a CSV cell would hold; an emotion may also be a mapping of
    intensities, a view a mapping or list of yaw, pitch[, distance]."""
    if column == "emotion" and isinstance(node, yaml.MappingNode):
        return ";".join(f"{name}={_scalar(value)}" for name, value in _pairs(node).items())
    if column == "view" and isinstance(node, yaml.MappingNode):
        view = _pairs(node)
        return "/".join(_scalar(view[k]) for k in ("yaw", "pitch", "distance") if k in view)
    if column == "view" and isinstance(node, yaml.SequenceNode):
        return "/".join(_scalar(item) for item in node.value)
    return _scalar(node).strip()


def _is_null(node: yaml.Node | None) -> bool:
    return node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL)


def _compose(text: str) -> yaml.Node | None:
    """The YAML's node graph (aliases are shared nodes), after its size and depth are checked."""
    try:
        _check_yaml_size(text)
        return yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as err:
        raise InputError(f"not valid YAML ({_yaml_problem(err)})") from None


def _sections(root: yaml.Node | None, problems: list[str]) -> tuple[dict[str, yaml.Node], list[yaml.Node]]:
    """The defaults and the rows: the YAML is a list of rows, or a mapping with `defaults` and
    `stimuli`."""
    defaults, rows = None, root
    if isinstance(root, yaml.MappingNode):
        sections = _pairs(root)
        for key in sections:
            if key not in ("defaults", "stimuli"):
                problems.append(f"unknown section '{key}' (sections: defaults, stimuli)")
        defaults, rows = sections.get("defaults"), sections.get("stimuli")
    if not (_is_null(defaults) or isinstance(defaults, yaml.MappingNode)) \
            or not (_is_null(rows) or isinstance(rows, yaml.SequenceNode)):
        raise InputError("a design is a list of rows, or a mapping with `defaults` (a mapping) and `stimuli` "
                         "(a list of rows)")
    return {} if _is_null(defaults) else _pairs(defaults), [] if _is_null(rows) else rows.value


def _read_yaml(text: str, path: Path) -> Design:
    design = Design(path.parent)
    try:
        defaults, rows = _sections(_compose(text), design.problems)
    except InputError as err:
        raise InputError(f"{path}: {err}") from None
    _read_yaml_values(defaults, design.defaults, design.problems, "defaults")
    for index, item in enumerate(rows):
        row = DesignRow(index + 1, item.start_mark.line + 1, {})
        try:
            if not isinstance(item, yaml.MappingNode):
                raise InputError("a row must be a mapping of column: value")
            _read_yaml_values(_pairs(item), row.values, design.problems, row.where())
        except InputError as err:
            design.problems.append(f"{row.where()}: {err}")
        design.rows.append(row)
    return design


def _read_yaml_values(nodes: dict[str, yaml.Node], values: dict[str, str], problems: list[str], where: str) -> None:
    """Text of each known column into `values`; unknown columns and values that are not text go
    to `problems`."""
    for name, node in nodes.items():
        column = name.lower()
        if column not in COLUMNS:
            problems.append(f"{where}: {_unknown(name)}")
            continue
        try:
            text = _text(column, node)
        except InputError as err:
            problems.append(f"{where}: {column}: {err}")
            continue
        if text:
            values[column] = text


def parse_assignments(items: Sequence[str], what: str) -> dict[str, str]:
    """`column=value` items from the command line (--set, or --factorial level lists) keyed by
    column; paths in them are relative to the working folder, so they are made absolute."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        name, value, shown = name.strip().lower(), value.strip(), one_line(repr(item))
        if not sep or not name:
            raise InputError(f"{what} {shown}: expected COLUMN=VALUE")
        if name not in COLUMNS:
            raise InputError(f"{what} {shown}: {_unknown(one_line(name))}")
        if not value.isprintable():  # a line break would break the header block of write_design
            raise InputError(f"{what} {shown}: line breaks and control characters are not values")
        if name in out:
            raise InputError(f"{what}: column '{name}' is given twice")
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
    check_row_count(len(base_rows) * math.prod(map(len, levels.values())), "--factorial")
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
    for row in design.rows:  # cells a spreadsheet would run as formulas are escaped (read back as written)
        writer.writerow([csv_cell(moved(c, row.values.get(c, ""))) for c in columns])
    atomic_write(path, lambda handle: handle.write(out.getvalue().encode("utf-8")))


def merged_defaults(design: Design, command_line: dict[str, str] | None = None) -> dict[str, str]:
    """Built-in defaults, then the file's header block, then the command line's --set."""
    return {**DEFAULTS, **design.defaults, **(command_line or {})}
