"""The trial lists in the form a study platform reads: plain CSV lists, PsychoPy conditions files,
Gorilla task spreadsheets (jsPsych folders are `stimuli.jspsych`'s), and what every form shares:
cells no spreadsheet runs as a formula and the clips copied beside the lists (`commands.cmd_trials`
picks the form and records what it wrote in settings.json). Light: the parser imports `FORMATS`
from here, so nothing but the standard library at import time.
"""
from __future__ import annotations

import csv
import io
import os
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from common.atomic import atomic_write
from common.errors import InputError
from common.files import DECIMAL_TEXT, csv_cell

if TYPE_CHECKING:
    from .trials import StimulusEntry, Trial

FORMATS = ("csv", "jspsych", "psychopy", "gorilla")
STIMULI = "stimuli"  # the folder, inside a platform's folder, holding the copied clips


def safe_cell(value: object) -> str:
    """A value as a spreadsheet cell that shows as text and never runs as a formula
    (`common.files.csv_cell`: text that starts with = + - @ or a tab/CR gets a leading
    apostrophe; numbers and plain decimal text such as "-2" stay numbers); None is empty.
    `common.files.csv_text` undoes the apostrophe."""
    return "" if value is None else str(csv_cell(value))


def write_list_csv(path: Path, header: list[str], rows: Iterable[list[object]]) -> None:
    """One CSV file (UTF-8, \\n line ends), every cell through `safe_cell`, written atomically."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in (header, *rows):
        writer.writerow([safe_cell(v) for v in row])
    atomic_write(path, lambda handle, text=out.getvalue(): handle.write(text.encode("utf-8")))


def participant_digits(count: int) -> int:
    """Digits of the participant numbers in file names: 3, or more for 1000 or more lists."""
    return max(3, len(str(count)))


def participant_name(participant: int, count: int, prefix: str = "participant") -> str:
    """participant_001, ...: zero-padded to the widest number, so the files sort in order."""
    return f"{prefix}_{participant:0{participant_digits(count)}d}"


def list_table(trials: list[Trial], factors: list[str],
               file_of: Callable[[StimulusEntry], str]) -> tuple[list[str], list[list[object]]]:
    """The plain list's columns: participant, trial, block, id, the stimulus file (as `file_of`
    names it) and the varying factors' levels."""
    header = ["participant", "trial", "block", "id", "file", *factors]
    rows = [[t.participant, t.trial, t.block, t.stimulus.id, file_of(t.stimulus),
             *(t.stimulus.levels.get(f, "") for f in factors)] for t in trials]
    return header, rows


def list_file_path(file: str, stimuli_dir: Path, folder: Path, absolute: bool) -> str:
    """A manifest's `file` (relative to `stimuli_dir`, the manifest's folder) as a list in
    `folder` names it: relative to that folder (with /), or absolute. Where no relative path
    exists (another drive on Windows) it is absolute."""
    target = Path(os.path.abspath(stimuli_dir / file))
    if not absolute:
        try:
            return Path(os.path.relpath(target, os.path.abspath(folder))).as_posix()
        except ValueError:
            pass
    return str(target)


def place_stimuli(stimuli: Iterable[StimulusEntry], stimuli_dir: Path, dest: Path, link: bool) -> dict[str, str]:
    """Each stimulus's clip in `dest` under its own file name, hard-linked when `link` and the
    file system allows, else copied; {stimulus id: file name in dest}. Two different clips with
    one file name are refused: a platform's stimulus pool (Gorilla's) is flat."""
    names: dict[str, str] = {}
    sources: dict[str, Path] = {}
    for stimulus in stimuli:
        source = stimuli_dir / stimulus.file
        name = source.name
        if sources.setdefault(name, source) != source:
            raise InputError(f"{stimuli_dir}: two stimuli's clips share the file name {name!r} "
                             f"({sources[name]} and {source}); rename one")
        names[stimulus.id] = name
    dest.mkdir(parents=True, exist_ok=True)
    for name, source in sources.items():
        if not source.is_file():
            raise InputError(f"{source}: the manifest's clip is missing; rerun `avatar stimuli`")
        if link:
            try:
                os.link(source, dest / name)
                continue
            except OSError:
                pass
        shutil.copyfile(source, dest / name)
    return names


def write_csv_lists(folder: Path, lists: list[list[Trial]], factors: list[str], stimuli_dir: Path,
                    target: Path, absolute: bool) -> list[Path]:
    """participant_001.csv, ...: the plain lists, `file` relative to `target` (where the lists
    end up; `folder` may be its staged twin) or absolute."""
    paths = []
    for trials in lists:
        header, rows = list_table(trials, factors, lambda s: list_file_path(s.file, stimuli_dir, target, absolute))
        path = folder / f"{participant_name(trials[0].participant, len(lists))}.csv"
        write_list_csv(path, header, rows)
        paths.append(path)
    return paths


def _number(text: str) -> int | float:
    return float(text) if re.search(r"[.eE]", text) else int(text)


def write_list_xlsx(path: Path, header: list[str], rows: list[list[object]]) -> bool:
    """The same table as an Excel workbook, when openpyxl is installed (it is optional: PsychoPy
    reads the CSV as well); False where it is not. A column whose every cell is a number (or
    plain decimal text) holds numbers, as pandas reads the CSV; any other column holds the CSV's
    text, so openpyxl stores no formula."""
    try:
        from openpyxl import Workbook
    except ImportError:
        return False
    cells = [[safe_cell(v) for v in row] for row in rows]
    numeric = [all(DECIMAL_TEXT.fullmatch(row[c]) for row in cells) for c in range(len(header))]
    book = Workbook()
    sheet = book.active
    sheet.title = "conditions"
    sheet.append([safe_cell(h) for h in header])
    for row in cells:
        sheet.append([_number(v) if numeric[c] else v for c, v in enumerate(row)])
    atomic_write(path, book.save)
    return True


PSYCHOPY_README = """# PsychoPy conditions files

Made by `avatar trials --format psychopy`: one conditions file per participant
(participant_001.csv, and participant_001.xlsx where openpyxl was installed), in that
participant's counterbalanced order, and the clips in stimuli/.

Columns: `movie` (the clip, relative to this folder), `stimulus_id`, `block`, `trial_number`
(the position in this participant's list) and the factors that vary between stimuli ({factors}).

In PsychoPy Builder:
1. Save your experiment (.psyexp) in THIS folder, so the `movie` paths resolve.
2. Add a loop around the trial routine with loopType `sequential` (the order is already
   randomized and counterbalanced; `random` would undo it) and as Conditions
   `$"participant_%0{width}d.csv" % int(expInfo['participant'])`.
3. In the routine, a Movie component with Movie file `$movie`, set every repeat.
Every column is then a variable of the trial and lands in the data file.
Text cells that start with = + - @ carry a leading apostrophe (so no spreadsheet runs them).
"""

GORILLA_README = """# Gorilla task spreadsheets

Made by `avatar trials --format gorilla`: one task spreadsheet per counterbalancing list
(list_001.csv, ...: list k is the order `avatar trials` made for participant k), and the clips in stimuli/.

Columns: `display` (`{display}` on every row: name the display that plays the clip so),
`randomise_blocks` and `randomise_trials` (left empty: the order is already randomized and
counterbalanced, and Gorilla must keep it), `video` (the clip's file name in the task's stimuli),
then `list`, `trial`, `block`, `id` and the factors that vary ({factors}) as metadata.

In Gorilla Task Builder 2:
1. Upload every file of stimuli/ in the task's Stimuli tab.
2. Upload each list_NNN.csv in the Spreadsheet tab; bind the video object of the `{display}`
   display to the spreadsheet column `video`.
3. In the experiment tree, a Counterbalance node named e.g. `list` with the Values
   `{names}`, and in the task node's Spreadsheet a Manual Override `$${{list}}`.
Text cells that start with = + - @ carry a leading apostrophe (so no spreadsheet runs them).
"""


def write_psychopy(folder: Path, lists: list[list[Trial]], factors: list[str], stimuli_dir: Path,
                   link: bool) -> list[Path]:
    """A PsychoPy Builder folder: conditions files per participant, the clips, a README."""
    names = place_stimuli((t.stimulus for trials in lists for t in trials), stimuli_dir, folder / STIMULI, link)
    paths = []
    for trials in lists:
        header = ["movie", "stimulus_id", "block", "trial_number", *factors]
        rows = [[f"{STIMULI}/{names[t.stimulus.id]}", t.stimulus.id, t.block, t.trial,
                 *(t.stimulus.levels.get(f, "") for f in factors)] for t in trials]
        stem = folder / participant_name(trials[0].participant, len(lists))
        write_list_csv(stem.with_suffix(".csv"), header, rows)
        paths.append(stem.with_suffix(".csv"))
        if write_list_xlsx(stem.with_suffix(".xlsx"), header, rows):
            paths.append(stem.with_suffix(".xlsx"))
    readme = PSYCHOPY_README.format(factors=", ".join(factors) or "none", width=participant_digits(len(lists)))
    atomic_write(folder / "README.md", lambda handle: handle.write(readme.encode("utf-8")))
    return [*paths, folder / "README.md"]


GORILLA_DISPLAY = "trial"


def write_gorilla(folder: Path, lists: list[list[Trial]], factors: list[str], stimuli_dir: Path,
                  link: bool) -> list[Path]:
    """A Gorilla upload folder: a task spreadsheet per list, the clips, a README."""
    names = place_stimuli((t.stimulus for trials in lists for t in trials), stimuli_dir, folder / STIMULI, link)
    paths = []
    for trials in lists:
        header = ["display", "randomise_blocks", "randomise_trials", "video", "list", "trial", "block", "id", *factors]
        rows = [[GORILLA_DISPLAY, "", "", names[t.stimulus.id], t.participant, t.trial, t.block, t.stimulus.id,
                 *(t.stimulus.levels.get(f, "") for f in factors)] for t in trials]
        path = folder / f"{participant_name(trials[0].participant, len(lists), 'list')}.csv"
        write_list_csv(path, header, rows)
        paths.append(path)
    readme = GORILLA_README.format(display=GORILLA_DISPLAY, factors=", ".join(factors) or "none",
                                   names=",".join(p.stem for p in paths))
    atomic_write(folder / "README.md", lambda handle: handle.write(readme.encode("utf-8")))
    return [*paths, folder / "README.md"]
