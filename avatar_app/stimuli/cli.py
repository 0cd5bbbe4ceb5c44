"""The study commands' arguments: `avatar stimuli` and `avatar trials`. What they do is in
`stimuli.commands`, imported only when one of them runs."""
from __future__ import annotations

import argparse

from renderer.backends import BACKEND_HELP, BACKENDS

from ..arguments import lazy_command
from .design import COLUMNS


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
    t.set_defaults(run=lazy_command("avatar_app.stimuli.commands", "cmd_trials"))
