"""A jsPsych 8 experiment folder from the trial lists (`avatar trials … --format jspsych`), so a study
runs in a browser without anyone retyping file names, orders or factor columns.

The folder holds the clips (`stimuli/`, copied or hard-linked), one timeline per participant
(`timelines/participant_001.js`: the rows of that participant's CSV list, as JSON), `index.html`
(the settings, and where jsPsych is loaded from), `experiment.js` (the same for every study) and a
README. The participant is chosen by the address (`index.html?participant=3`). jsPsych itself is not
ours to ship: the page loads it from a CDN address with pinned versions, or from a node_modules
folder the user names, whose few files are then copied into the folder so it runs offline.
Light: standard library only (the trials command imports it only for this format).
"""
from __future__ import annotations

import argparse
import html
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from common.atomic import atomic_write
from common.errors import InputError
from common.files import read_json_file

from .trial_formats import STIMULI, list_table, participant_name, place_stimuli

if TYPE_CHECKING:
    from .trials import Trial

DEFAULT_JSPSYCH = "https://unpkg.com"
JSPSYCH_VERSION = "8.3.0"
# plugin key → (npm package, version pinned for the CDN, the global its browser build defines)
PLUGINS = {
    "preload": ("@jspsych/plugin-preload", "2.1.0", "jsPsychPreload"),
    "html-keyboard": ("@jspsych/plugin-html-keyboard-response", "2.2.0", "jsPsychHtmlKeyboardResponse"),
    "video-keyboard": ("@jspsych/plugin-video-keyboard-response", "2.2.0", "jsPsychVideoKeyboardResponse"),
    "video-button": ("@jspsych/plugin-video-button-response", "2.1.1", "jsPsychVideoButtonResponse"),
    "likert": ("@jspsych/plugin-survey-likert", "2.2.0", "jsPsychSurveyLikert"),
    "slider": ("@jspsych/plugin-html-slider-response", "2.1.0", "jsPsychHtmlSliderResponse"),
}
LIBRARY = "jspsych"  # the folder, inside the experiment, holding a copy of a local jsPsych
JSPSYCH_NAMES = r"index\.html|experiment\.js|README\.md|timelines|stimuli|jspsych"  # what the folder holds
_BROWSER_BUILD = "dist/index.browser.min.js"
_KEY_NAMES = {"space": " ", "enter": "enter", "tab": "tab", "backspace": "backspace", "escape": "escape",
              "arrowleft": "arrowleft", "arrowright": "arrowright", "arrowup": "arrowup", "arrowdown": "arrowdown"}
_LIKERT_POINTS = tuple(str(i) for i in range(1, 8))
_SLIDER_LABELS = ("not at all", "very")
MAX_WINDOW_MS = 600_000


@dataclass(frozen=True)
class JsPsychOptions:
    """What the experiment page does; `avatar trials` options of the same names."""
    jspsych: str = DEFAULT_JSPSYCH  # a CDN base address, or a node_modules folder
    response_keys: tuple[str, ...] = ()  # jsPsych key names; () = any key
    response_buttons: tuple[str, ...] = ()  # button labels; non-empty = buttons instead of keys
    response_window_ms: int | None = None  # end the trial this long after the clip starts
    fixation_ms: int = 500  # fixation cross before each clip (0: none)
    rating: str | None = None  # a question asked after each clip
    rating_scale: str = "likert"  # likert or slider
    rating_labels: tuple[str, ...] = ()  # likert: one per point (default 1..7); slider: spread under it
    link: bool = False  # hard-link the clips instead of copying them
    save_url: str | None = None  # also POST each participant's data (text/csv) here


def _keys(names: list[str]) -> tuple[str, ...]:
    keys = []
    for name in names:
        key = name if len(name) == 1 and name.isprintable() else _KEY_NAMES.get(name.lower())
        if key is None:
            raise InputError(f"--response-keys {name}: not a key; give single characters (f j) or "
                             f"{', '.join(_KEY_NAMES)}")
        keys.append(key.lower())
    if len(set(keys)) != len(keys):
        raise InputError(f"--response-keys {' '.join(names)}: a key is given twice")
    return tuple(keys)


def _check_url(value: str, option: str, relative: bool = False) -> str:
    """An http(s) address (or, where `relative`, one relative to the page, e.g. `save.php`)."""
    pattern = r"(https?://|(?![a-z][a-z0-9+.-]*:))[^\s\"'<>\\]+" if relative else r"https?://[^\s\"'<>\\]+"
    if not re.fullmatch(pattern, value, re.IGNORECASE):
        raise InputError(f"{option} {value}: not an http(s) address{' (or one relative to the page)' if relative else ''}")
    return value


def jspsych_options(args: argparse.Namespace) -> JsPsychOptions:
    """The jsPsych options of `avatar trials`, checked (one line naming the option if one is bad)."""
    keys, buttons = getattr(args, "response_keys", None) or [], getattr(args, "response_buttons", None) or []
    if keys and buttons:
        raise InputError("--response-keys and --response-buttons: give one of them (keys or buttons answer a clip)")
    window, fixation = getattr(args, "response_window_ms", None), getattr(args, "fixation_ms", 500)
    if window is not None and not 1 <= window <= MAX_WINDOW_MS:
        raise InputError(f"--response-window-ms {window}: must lie in 1..{MAX_WINDOW_MS}")
    if not 0 <= fixation <= MAX_WINDOW_MS:
        raise InputError(f"--fixation-ms {fixation}: must lie in 0..{MAX_WINDOW_MS}")
    rating, scale = getattr(args, "rating", None), getattr(args, "rating_scale", "likert")
    labels = tuple(getattr(args, "rating_labels", None) or ())
    if labels and not rating:
        raise InputError("--rating-labels: give the question with --rating too")
    if rating is not None and not rating.strip():
        raise InputError("--rating: the question is empty")
    if scale == "likert" and len(labels) == 1:
        raise InputError("--rating-labels: a Likert scale needs two labels or more (one per point)")
    if any(not b.strip() for b in buttons):
        raise InputError("--response-buttons: a button label is empty")
    save_url = getattr(args, "save_url", None)
    jspsych = getattr(args, "jspsych", None) or DEFAULT_JSPSYCH
    if re.match(r"[a-z][a-z0-9+.-]*://", jspsych, re.IGNORECASE):
        jspsych = _check_url(jspsych, "--jspsych").rstrip("/")
    return JsPsychOptions(jspsych=jspsych, response_keys=_keys(keys), response_buttons=tuple(buttons),
                          response_window_ms=window, fixation_ms=fixation, rating=rating, rating_scale=scale,
                          rating_labels=labels, link=bool(getattr(args, "link", False)),
                          save_url=_check_url(save_url, "--save-url", relative=True) if save_url else None)


def _plugins(options: JsPsychOptions) -> list[str]:
    used = ["preload", "html-keyboard", "video-button" if options.response_buttons else "video-keyboard"]
    return used + ([options.rating_scale] if options.rating else [])


def _is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def _local_library(root: Path, packages: list[str], folder: Path) -> list[Path]:
    """Copy jsPsych's browser builds and stylesheet from a node_modules folder into the
    experiment, checking the versions are jsPsych 8's (core 8.x, plugins 2.x)."""
    if (root / "node_modules" / "jspsych").is_dir():
        root = root / "node_modules"
    written = []
    for package in packages:
        manifest = root / package / "package.json"
        info = read_json_file(manifest, "package.json") if manifest.is_file() else None
        if not isinstance(info, dict):
            raise InputError(f"--jspsych {root}: no {package} in it; install it there with "
                             f"`npm install --prefix {root.parent if root.name == 'node_modules' else root} "
                             f"{package}@{_version(package)}`")
        major = str(info.get("version", "")).split(".")[0]
        if major != _version(package).split(".")[0]:
            raise InputError(f"--jspsych {root}: {package} is version {info.get('version')}; jsPsych 8 needs "
                             f"{package} {_version(package).split('.')[0]}.x")
        files = [_BROWSER_BUILD] + (["css/jspsych.css"] if package == "jspsych" else [])
        for file in files:
            source, target = root / package / file, folder / LIBRARY / package / file
            if not source.is_file():
                raise InputError(f"--jspsych {root}: {package} has no {file}")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            written.append(target)
    return written


def _version(package: str) -> str:
    return JSPSYCH_VERSION if package == "jspsych" else next(v for p, v, _ in PLUGINS.values() if p == package)


def _index_html(options: JsPsychOptions, packages: list[str], study: dict) -> str:
    """The page: jsPsych and its plugins, the study's settings as JSON, experiment.js."""
    if _is_url(options.jspsych):
        def src(package: str, file: str) -> str:
            return f"{options.jspsych}/{package}@{_version(package)}/{file}"
    else:
        def src(package: str, file: str) -> str:
            return f"{LIBRARY}/{package}/{file}"
    scripts = "\n".join(f'<script src="{html.escape(src(p, _BROWSER_BUILD))}"></script>' for p in packages)
    settings = json.dumps(study, indent=1, ensure_ascii=False).replace("<", "\\u003c")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Study</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{html.escape(src("jspsych", "css/jspsych.css"))}">
<style>.avatar-fixation {{ font-size: 60px; }} .avatar-message {{ max-width: 40em; margin: 3em auto; }}</style>
</head>
<body>
<!-- Written by `avatar trials --format jspsych`: see README.md. The settings below may be edited. -->
<script type="application/json" id="study">
{settings}
</script>
{scripts}
<script src="experiment.js"></script>
</body>
</html>
"""


def _json_lines(timeline: dict) -> str:
    """The timeline as JSON with one trial a line, easy to read beside the CSV list."""
    head = {k: v for k, v in timeline.items() if k != "trials"}
    rows = ",\n".join(" " + json.dumps(row, ensure_ascii=False) for row in timeline["trials"])
    return json.dumps(head, ensure_ascii=False)[:-1] + ', "trials": [\n' + rows + "\n]}"


def write_jspsych(folder: Path, lists: list[list[Trial]], factors: list[str], stimuli_dir: Path,
                  options: JsPsychOptions) -> list[Path]:
    """Fill `folder` (new or staged) with the experiment; the paths of every file written."""
    folder = Path(folder)
    packages = ["jspsych", *(PLUGINS[p][0] for p in _plugins(options))]
    written = [] if _is_url(options.jspsych) else _local_library(Path(options.jspsych), packages, folder)
    names = place_stimuli({t.stimulus.id: t.stimulus for trials in lists for t in trials}.values(),
                          stimuli_dir, folder / STIMULI, options.link)
    written += [folder / STIMULI / name for name in dict.fromkeys(names.values())]
    (folder / "timelines").mkdir(exist_ok=True)
    columns: list[str] = []
    for trials in lists:
        columns, rows = list_table(trials, factors, lambda s: f"{STIMULI}/{names[s.id]}")
        timeline = {"participant": trials[0].participant, "columns": columns,
                    "trials": [dict(zip(columns, row)) for row in rows]}
        path = folder / "timelines" / f"{participant_name(trials[0].participant, len(lists))}.js"
        text = "avatarTimeline(" + _json_lines(timeline) + ");\n"
        atomic_write(path, lambda h, text=text: h.write(text.encode("utf-8")))
        written.append(path)
    study = {"participants": len(lists), "digits": max(3, len(str(len(lists)))), "columns": columns,
             "keys": list(options.response_keys) or "ALL_KEYS", "buttons": list(options.response_buttons) or None,
             "response_window_ms": options.response_window_ms, "fixation_ms": options.fixation_ms,
             "rating": None if not options.rating else {
                 "question": options.rating, "scale": options.rating_scale,
                 "labels": list(options.rating_labels or (_LIKERT_POINTS if options.rating_scale == "likert"
                                                          else _SLIDER_LABELS))},
             "save_url": options.save_url}
    texts = {"index.html": _index_html(options, packages, study), "experiment.js": EXPERIMENT_JS,
             "README.md": FOLDER_README}
    for name, text in texts.items():
        atomic_write(folder / name, lambda h, text=text: h.write(text.encode("utf-8")))
        written.append(folder / name)
    return written


EXPERIMENT_JS = r"""/* One participant's session, written by `avatar trials --format jspsych` (the same for every study).
   The settings are in index.html (the "study" block), the trial lists in timelines/; see README.md. */
"use strict";
const study = JSON.parse(document.getElementById("study").textContent);
const jsPsych = initJsPsych({ on_finish: finish });
let participant = null;
let columns = [];

function escapeHtml(text) {
  const codes = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  return String(text).replace(/[&<>"']/g, (c) => codes[c]);
}

// A data cell a spreadsheet shows as text: as in the CSV lists, text starting with = + - @ tab or CR
// (numbers excepted) gets a leading apostrophe.
function safeCell(value) {
  if (typeof value !== "string" || !/^[=+\-@\t\r]/.test(value)) return value;
  return /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(value) ? value : "'" + value;
}

function showMessage(html) {
  document.body.innerHTML = `<div class="avatar-message">${html}</div>`;
}

function keyName(key) {
  return key === " " ? "the space bar" : key.length === 1 ? key.toUpperCase() : key;
}

function start() {
  const asked = jsPsych.data.getURLVariable("participant");
  const number = Number(asked);
  if (!asked || !Number.isInteger(number) || number < 1 || number > study.participants) {
    showMessage(`<p>Open this page with <code>?participant=N</code>, N from 1 to ${study.participants}: ` +
                `for example <code>index.html?participant=1</code>.</p>`);
    return;
  }
  participant = number;
  const script = document.createElement("script");
  script.src = `timelines/participant_${String(number).padStart(study.digits, "0")}.js`;
  script.onerror = () => showMessage(`<p>Cannot load ${escapeHtml(script.src)}.</p>`);
  document.body.appendChild(script);
}

// The rows of the video trials: the columns of the participant's list, the answer and its time,
// and the rating (filled in when the rating is given); no answer is an empty cell (not "null").
function studyData() {
  const answers = study.rating ? ["response", "rt", "rating", "rating_rt"] : ["response", "rt"];
  const rows = jsPsych.data.get().filter({ phase: "video" }).filterColumns([...columns, ...answers]);
  for (const row of rows.values()) {  // copies: jsPsych's own data stay as they are
    for (const key of Object.keys(row)) if (row[key] === null) row[key] = "";
  }
  return rows;
}

function videoAddress(file) {
  return file.split("/").map(encodeURIComponent).join("/");
}

function videoTrial(row) {
  const data = { phase: "video" };
  for (const column of columns) data[column] = safeCell(row[column]);
  const trial = {
    stimulus: [videoAddress(row.file)],
    trial_duration: study.response_window_ms,
    response_ends_trial: true,
    data: data,
  };
  // width and height null: the clip's own size (the keyboard plugin's default, "", draws a warning)
  if (!study.buttons) return { ...trial, type: jsPsychVideoKeyboardResponse, choices: study.keys, width: null, height: null };
  return {
    ...trial,
    type: jsPsychVideoButtonResponse,
    choices: study.buttons.map(escapeHtml),
    on_finish: (d) => { d.response = d.response === null ? null : safeCell(study.buttons[d.response]); },
  };
}

function addRating(value, rt) {
  jsPsych.data.get().filter({ phase: "video" }).addToLast({ rating: value, rating_rt: rt });
}

function ratingTrial() {
  const rating = study.rating;
  const labels = rating.labels.map(escapeHtml);
  if (rating.scale === "slider") {
    return {
      type: jsPsychHtmlSliderResponse,
      stimulus: `<p>${escapeHtml(rating.question)}</p>`,
      labels: labels, min: 0, max: 100, slider_start: 50, require_movement: true,
      data: { phase: "rating" },
      on_finish: (d) => addRating(Number(d.response), d.rt),
    };
  }
  return {
    type: jsPsychSurveyLikert,
    questions: [{ prompt: escapeHtml(rating.question), labels: labels, required: true, name: "rating" }],
    data: { phase: "rating" },
    on_finish: (d) => addRating(d.response.rating + 1, d.rt),
  };
}

function welcome(count) {
  const answer = study.buttons ? "click the button that fits"
    : study.keys === "ALL_KEYS" ? "press any key"
    : "press " + study.keys.map(keyName).join(" or ");
  const then = study.rating ? " Then answer the question that follows." : "";
  return {
    type: jsPsychHtmlKeyboardResponse,
    stimulus: `<p>You will see ${count} short clips of a face, one at a time.</p>` +
              `<p>After each clip starts, ${answer}.${then}</p><p>Press the space bar to begin.</p>`,
    choices: [" "],
    data: { phase: "welcome" },
  };
}

// Called by timelines/participant_NNN.js with that participant's list.
function avatarTimeline(list) {
  columns = list.columns;
  const trials = list.trials;
  const videos = [...new Set(trials.map((row) => videoAddress(row.file)))];
  const timeline = [
    { type: jsPsychPreload, video: videos, message: "<p>Loading the clips…</p>", show_detailed_errors: true,
      data: { phase: "preload" } },
    welcome(trials.length),
  ];
  for (const row of trials) {
    if (study.fixation_ms > 0) {
      timeline.push({ type: jsPsychHtmlKeyboardResponse, stimulus: '<div class="avatar-fixation">+</div>',
                      choices: "NO_KEYS", trial_duration: study.fixation_ms, data: { phase: "fixation" } });
    }
    timeline.push(videoTrial(row));
    if (study.rating) timeline.push(ratingTrial());
  }
  jsPsych.run(timeline);
}

function showEnd(lines) {
  jsPsych.getDisplayElement().innerHTML = `<div class="avatar-message">${lines.map((l) => `<p>${l}</p>`).join("")}</div>`;
}

// At the end: the data as a CSV download, and POSTed to study.save_url when one is set.
function finish() {
  const data = studyData();
  const name = `participant_${String(participant).padStart(study.digits, "0")}_data.csv`;
  data.localSave("csv", name);
  const lines = ["Thank you! This part of the study is finished.", `The data were saved as ${escapeHtml(name)}.`];
  window.studyDone = true;
  showEnd(lines);
  if (!study.save_url) return;
  const url = new URL(study.save_url, window.location.href);
  url.searchParams.set("participant", participant);
  fetch(url, { method: "POST", headers: { "Content-Type": "text/csv" }, body: data.csv() })
    .then((reply) => reply.ok ? "The data were sent." : `The server did not take the data (${reply.status}).`)
    .catch(() => "The data could not be sent; please keep the downloaded file.")
    .then((line) => { window.studySent = line; showEnd([...lines, escapeHtml(line)]); });
}

start();
"""

FOLDER_README = """# A jsPsych 8 experiment, written by `avatar trials --format jspsych`

- `index.html` the page (its "study" block holds the settings: keys or buttons, response window,
  fixation, rating, save address; edit them there), `experiment.js` the session, `timelines/participant_001.js`, …
  one participant's trial list each (the rows of `avatar trials`' CSV list, as JSON), `stimuli/` the clips.
- Run it: serve this folder, e.g. `python3 -m http.server 8000` here, and open
  `http://localhost:8000/index.html?participant=1` (each participant gets their own number). Opening
  index.html directly from disk also works, but then jsPsych cannot preload the clips.
- Data: at the end the browser downloads `participant_001_data.csv`: one row per clip in the order
  shown, with participant, trial, block, id, file, the factor columns, `response` (the key, or the
  button's label; empty if none came within the response window), `rt` (ms from the clip's start),
  and with a rating `rating` (Likert: the point, 1 = first label; slider: 0–100) and `rating_rt`.
  Text cells that a spreadsheet could run as a formula start with an apostrophe.
- Server: with `--save-url URL` the page also POSTs that CSV (`Content-Type: text/csv`) to
  `URL?participant=N` at the end. A server on another origin must answer CORS preflight requests.
- jsPsych is loaded from the address or folder given with `--jspsych` (see index.html).
"""
