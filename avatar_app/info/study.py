"""What the study files hold: a stimuli output folder and its manifest (rows done, failed or
unfinished, and the settings they were made with), design files, trial lists, emotion presets,
and the weights CSVs a batch exports."""
from __future__ import annotations

import collections
import csv
import io
from pathlib import Path
from typing import Any

from common.errors import InputError
from common.files import csv_text, read_json_file, read_text_file

from ..preset import load_preset
from ..stimuli.batch import MANIFEST_FORMAT, STATE
from ..stimuli.design import COLUMNS, read_design
from ..stimuli.trials import PENDING, StimulusEntry, varying_factors

MANIFEST, TRIAL_SETTINGS = "manifest.json", "settings.json"
_SHARED = ("driver", "width", "height", "fps", "background", "loudness_target", "expression_space", "lead_in",
           "lead_out", "speech_gain", "expression_gain", "blink", "gaze", "head_motion")
_SHOWN = 5  # ids or errors listed before "…"


def _first(items: list[str]) -> str:
    return ", ".join(items[:_SHOWN]) + (f", … ({len(items)} in all)" if len(items) > _SHOWN else "")


def _statuses(rows: list[dict[str, Any]]) -> str:
    """'12 row(s): 10 done, 1 failed, 1 not made yet' from each row's status."""
    labels = {"ok": "done", PENDING: "not made yet"}
    counts = collections.Counter(labels.get(r.get("status"), str(r.get("status"))) for r in rows)
    return f"{len(rows)} row(s): " + ", ".join(f"{n} {status}" for status, n in counts.most_common())


def _shared_settings(parameters: list[dict[str, Any]]) -> list[str]:
    """The resolved settings every row has the same value of."""
    same = []
    for key in _SHARED:
        values = {repr(p.get(key)) for p in parameters}
        if len(values) == 1 and parameters[0].get(key) is not None:
            same.append(f"{key} {parameters[0][key]}")
    return same


def _manifest_rows(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    document = read_json_file(path, "stimulus manifest")
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        raise InputError(f"{path}: not a stimulus manifest (no \"format\": \"{MANIFEST_FORMAT}\")")
    rows = document.get("stimuli")
    if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("id"), str) for r in rows):
        raise InputError(f"{path}: 'stimuli' must be a list of rows, each with a text id")
    return document, rows


def describe_manifest(path: Path) -> str:
    document, rows = _manifest_rows(path)
    lines = [f"{path}: stimulus manifest (version {document.get('version')}), {_statuses(rows)}"]
    design = document.get("design")
    if isinstance(design, dict):
        lines.append(f"  design: {design.get('path')} (sha256 {str(design.get('sha256'))[:12]}…)")
    software = document.get("software")
    if isinstance(software, dict):
        lines.append(f"  made with: backend {document.get('backend')}; "
                     + ", ".join(f"{k} {v}" for k, v in software.items()))
    parameters = [r["parameters"] for r in rows if isinstance(r.get("parameters"), dict)]
    if parameters:
        lines.append(f"  every row: {', '.join(_shared_settings(parameters)) or 'no setting in common'}")
    entries = [StimulusEntry(r["id"], "", {c: str((r.get("levels") or {}).get(c) or "") for c in COLUMNS if c != "id"})
               for r in rows if isinstance(r.get("levels") or {}, dict)]
    factors = varying_factors(entries) if len(entries) == len(rows) else []
    if factors:
        lines.append("  factors that vary: " + "; ".join(
            f"{f} ({_first(list(dict.fromkeys(e.levels[f] or '(none)' for e in entries)))})" for f in factors))
    done = [r for r in rows if r.get("status") == "ok"]
    if done:
        kinds = collections.Counter(kind for r in done for kind in (r.get("outputs") or {}))
        frames = sum(r.get("frames") or 0 for r in done if isinstance(r.get("frames"), int))
        seconds = sum(r.get("duration") or 0.0 for r in done if isinstance(r.get("duration"), (int, float)))
        lines.append(f"  made: {frames:,} frames, {seconds:.1f} s of video; files: "
                     + ", ".join(f"{kind} {n}" for kind, n in kinds.items()))
    failed = [f"{r['id']}: {r.get('error')}" for r in rows if r.get("status") == "failed"]
    lines += [f"  failed: {text}" for text in failed[:_SHOWN]] + ([f"  … {len(failed) - _SHOWN} more failed"]
                                                                   if len(failed) > _SHOWN else [])
    waiting = [r["id"] for r in rows if r.get("status") not in ("ok", "failed")]
    if waiting:
        lines.append(f"  not made yet: {_first(waiting)} (the batch is running, or was stopped: run it again "
                     "to finish)")
    return "\n".join(lines)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    text = read_text_file(path, "CSV file").removeprefix("\ufeff")
    try:
        return [{k: csv_text(v) for k, v in row.items() if isinstance(k, str) and isinstance(v, str)}
                for row in csv.DictReader(io.StringIO(text))]
    except csv.Error as err:
        raise InputError(f"{path}: not valid CSV ({err})") from None


def csv_header(path: Path) -> list[str]:
    """The first line of a CSV file that is neither empty nor a # comment, as cells."""
    text = read_text_file(path, "CSV file").removeprefix("\ufeff")
    for line in io.StringIO(text, newline=""):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                return [cell.strip() for cell in next(csv.reader([line]))]
            except csv.Error as err:
                raise InputError(f"{path}: not valid CSV ({err})") from None
    return []


def describe_csv(path: Path) -> str:
    """A manifest.csv, a trial list, a weights CSV or a design, told apart by their header."""
    header = csv_header(path)
    if header[:2] == ["id", "status"]:
        rows = _csv_rows(path)
        failed = [r.get("id", "") for r in rows if r.get("status") == "failed"]
        return (f"{path}: stimulus manifest (CSV, one flat row per stimulus), {_statuses(rows)}"
                + (f"\n  failed: {_first(failed)}" if failed else "")
                + (f"\n  more in {path.with_suffix('.json')}" if path.with_suffix(".json").is_file() else ""))
    if header[:3] == ["participant", "trial", "block"]:
        rows = _csv_rows(path)
        participants = sorted({r.get("participant", "") for r in rows})
        return (f"{path}: trial list of participant {', '.join(participants)}: {len(rows)} trial(s), "
                f"{len({r.get('id') for r in rows})} distinct stimuli\n"
                f"  factors: {', '.join(header[5:]) or 'none'}")
    if header[:1] == ["time"]:
        rows = _csv_rows(path)
        return f"{path}: weights CSV (exported), {len(rows)} frame(s), blendshapes: {', '.join(header[1:])}"
    return describe_design(path)


def describe_design(path: Path) -> str:
    design = read_design(path)
    columns = list(dict.fromkeys(c for row in design.rows for c in row.values))
    lines = [f"{path}: stimulus design, {len(design.rows)} row(s)",
             f"  columns: {', '.join(columns) or '(none)'}",
             f"  defaults: {', '.join(f'{k}={v}' for k, v in design.defaults.items()) or '(none)'}"]
    if design.problems:
        lines.append(f"  {len(design.problems)} problem(s), the first: {design.problems[0]}")
    lines.append(f"  check it: avatar stimuli {path} -o DIR --check")
    return "\n".join(lines)


def describe_preset(path: Path) -> str:
    performance = load_preset(path)
    keys = performance.keyframes.keys
    mix = ", ".join(f"{k}={v:g}" for k, v in performance.emotions.items()) or "neutral"
    lines = [f"{path}: emotion preset (saved by the app; `--preset {path}`)", f"  emotions: {mix}",
             f"  speech gain {performance.speech_gain:g}, expression gain {performance.expression_gain:g}"]
    if keys:
        lines.append(f"  keyframes: {len(keys)} from {keys[0].time:g} s to {keys[-1].time:g} s (they replace the mix)")
    return "\n".join(lines)


def is_stimuli_folder(path: Path) -> bool:
    return (path / MANIFEST).is_file() or (path / STATE).is_dir()


def describe_stimuli_folder(path: Path) -> str:
    records = sorted(p.stem for p in (path / STATE).glob("*.json")) if (path / STATE).is_dir() else []
    if not (path / MANIFEST).is_file():
        return (f"{path}: stimuli folder without a manifest yet: {len(records)} stimulus record(s) finished "
                f"({_first(records)}); `avatar stimuli` writes {MANIFEST} when it ends")
    _, rows = _manifest_rows(path / MANIFEST)
    extra = sorted(set(records) - {r["id"] for r in rows})
    text = f"{path}: stimuli folder (`avatar stimuli`)\n" + describe_manifest(path / MANIFEST)
    return text + (f"\n  also made earlier, not in this manifest: {_first(extra)}" if extra else "")


def _trial_lists(path: Path) -> list[Path]:
    """The per-participant files of any `--format`: CSV lists and PsychoPy conditions, Gorilla
    spreadsheets, jsPsych timelines."""
    return (sorted(path.glob("participant_*.csv")) or sorted(path.glob("list_*.csv"))
            or sorted(path.glob("timelines/participant_*.js")))


def is_trials_folder(path: Path) -> bool:
    return (path / TRIAL_SETTINGS).is_file() and bool(_trial_lists(path))


def describe_trials_folder(path: Path) -> str:
    settings = read_json_file(path / TRIAL_SETTINGS, "trial settings")
    lists = _trial_lists(path)
    if not isinstance(settings, dict) or not lists:
        raise InputError(f"{path / TRIAL_SETTINGS}: not the settings `avatar trials` writes, or no lists beside it")
    shown = ", ".join(f"{k} {settings.get(k, 'csv' if k == 'format' else None)}"
                      for k in ("participants", "seed", "latin_square", "repeats", "format"))
    first = describe_csv(lists[0]).splitlines() if settings.get("format", "csv") == "csv" else []
    return (f"{path}: trial lists (`avatar trials`), {len(lists)} file(s) ({lists[0].name}..{lists[-1].name})\n"
            f"  from: {settings.get('manifest')} (sha256 {str(settings.get('manifest_sha256'))[:12]}…)\n"
            f"  settings: {shown}" + "".join("\n  " + line for line in first))
