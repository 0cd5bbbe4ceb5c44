"""The study commands' arguments: `avatar stimuli` and `avatar trials`. What they do is in
`stimuli.commands`, imported only when one of them runs."""
from __future__ import annotations

import argparse

from renderer.backends import BACKEND_HELP, BACKENDS

from ..arguments import lazy_command
from .columns import COLUMNS
from .trial_formats import FORMATS


def add_stimulus_commands(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("stimuli", help="make a set of study stimuli from a design file (CSV or YAML)",
                       description="One MP4 per design row (and optionally its apex PNG and weights CSV), "
                                   "manifest.csv and manifest.json. Columns: " + ", ".join(COLUMNS) + ".")
    s.add_argument("design", nargs="?", help="design.csv or design.yaml (optional with --factorial)")
    s.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    s.add_argument("--set", nargs="+", default=[], metavar="COLUMN=VALUE",
                   help="defaults for columns (override the design's header block)")
    s.add_argument("--factorial", nargs="+", metavar="COLUMN=A,B",
                   help="cross every row with every combination of these levels, e.g. emotion=happy,sad "
                        "intensity=0.5,1 audio=a.wav,b.wav")
    s.add_argument("--loudness", default="-23LUFS", metavar="TARGET",
                   help="bring every clip's audio to this level: -23LUFS (BS.1770, default), -20dBFS (RMS) or off")
    s.add_argument("--png", action="store_true", help="also write a PNG of each clip's apex frame")
    s.add_argument("--weights-csv", action="store_true", help="also write each clip's weights as CSV")
    s.add_argument("--workers", type=int, default=1, metavar="N", help="local processes rendering in parallel")
    s.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="make each stimulus as a task on a Ray cluster (pip install -e \".[ray]\"): alone, a Ray "
                        "instance on this machine; auto, host:port or ray://host:port joins a running cluster. "
                        "The output folder and the inputs must be on a file system every node shares")
    s.add_argument("--ray-cpus", type=int, metavar="N", help="with --ray: CPUs (and threads) per task (default 1)")
    s.add_argument("--ray-gpus", type=float, metavar="F", help="with --ray on a cluster with GPUs: GPUs per task; "
                   "a fraction such as 0.25 packs several tasks on one GPU (default 1)")
    s.add_argument("--backend", default="auto", choices=BACKENDS, help=BACKEND_HELP)
    s.add_argument("--check", action="store_true", help="check the design and stop")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(run=lazy_command("avatar_app.stimuli.commands", "cmd_stimuli"))

    t = sub.add_parser("trials", help="randomized, counterbalanced trial lists from a stimulus manifest")
    t.add_argument("manifest", help="manifest.json or manifest.csv written by `avatar stimuli`")
    t.add_argument("--participants", type=int, required=True, metavar="N", help="how many trial lists to write")
    t.add_argument("--seed", type=int, required=True, metavar="N",
                   help="seed of the shuffles (required, so a study's lists can be made again)")
    t.add_argument("--latin-square", metavar="FACTOR",
                   help="present the levels of this design column in blocks whose order follows a balanced Latin square")
    t.add_argument("--repeats", type=int, default=1, metavar="N", help="times each participant sees each stimulus")
    t.add_argument("-o", "--output", metavar="DIR", help="folder for the lists (default: trials/ beside the manifest)")
    t.add_argument("--format", default="csv", choices=FORMATS,
                   help="csv: one list per participant (default); jspsych: a folder that runs the study in a browser; "
                        "psychopy: a conditions file per participant for a Builder loop; gorilla: a task spreadsheet "
                        "per list. The last three copy the clips into the folder")
    t.add_argument("--absolute-paths", action="store_true",
                   help="csv: absolute `file` paths (default: relative to the lists' folder)")
    t.add_argument("--link", action="store_true",
                   help="jspsych, psychopy, gorilla: hard-link the clips into the folder where the file system "
                        "allows, instead of copying them")
    t.add_argument("--jspsych", metavar="URL|PATH", help="where the jsPsych folder loads jsPsych 8 from: a CDN base "
                   "address (default https://unpkg.com, pinned versions) or a node_modules folder holding jspsych and "
                   "@jspsych/plugin-* (its files are copied into the folder, so it runs offline)")
    t.add_argument("--response-keys", nargs="+", metavar="KEY", help="jsPsych: keys that answer a clip, e.g. f j "
                   "(default: any key; names: space, enter, arrowleft, ...)")
    t.add_argument("--response-buttons", nargs="+", metavar="LABEL", help="jsPsych: answer with buttons instead of keys")
    t.add_argument("--response-window-ms", type=int, metavar="MS", help="jsPsych: end a trial this long after its "
                   "clip starts, answered or not (default: wait for the answer)")
    t.add_argument("--fixation-ms", type=int, default=500, metavar="MS", help="jsPsych: fixation cross before each "
                   "clip (default 500; 0: none)")
    t.add_argument("--rating", metavar="QUESTION", help="jsPsych: ask this after each clip, e.g. \"How happy did the "
                   "face look?\"")
    t.add_argument("--rating-scale", choices=("likert", "slider"), default="likert", help="jsPsych: the rating's "
                   "scale: likert (points, default 1..7) or slider (0..100)")
    t.add_argument("--rating-labels", nargs="+", metavar="LABEL", help="jsPsych: likert: one label per point; "
                   "slider: labels spread under it (default: not at all, very)")
    t.add_argument("--save-url", metavar="URL", help="jsPsych: also POST each participant's data (text/csv) here "
                   "when the study ends")
    t.set_defaults(run=lazy_command("avatar_app.stimuli.commands", "cmd_trials"))
