"""What the study commands do: `avatar stimuli` (a design in, clips and a manifest out) and
`avatar trials` (a manifest in, one trial list per participant out). Imported only when one of
them runs; their arguments are in `stimuli.cli`."""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import time
from pathlib import Path

from common.atomic import atomic_write
from common.errors import InputError
from models.audio.loudness import LoudnessTarget

from ..outputs import holds_only, staged_folder
from .batch import STATE, Engine, check_study_folder, run_batch, sha256_file, software
from .design import (
    Design,
    expand_factorial,
    merged_defaults,
    parse_assignments,
    read_design,
    write_design,
)
from .jspsych import JSPSYCH_NAMES, JsPsychOptions, jspsych_options, write_jspsych
from .render import Outputs
from .resolve import resolve
from .trial_formats import write_csv_lists, write_gorilla, write_psychopy
from .trials import (
    factor_levels,
    read_manifest,
    trial_lists,
    varying_factors,
    williams_square,
)

EXPANDED_DESIGN = "design.csv"
TRIAL_SETTINGS = "settings.json"  # beside the trial lists: what made them


def ray_engine(args: argparse.Namespace) -> Engine | None:
    """With --ray: the Ray engine, connected to its cluster (Ray, an optional extra, imported only then)."""
    if args.ray is None:
        if args.ray_cpus is not None or args.ray_gpus is not None:
            raise InputError("--ray-cpus and --ray-gpus: only with --ray")
        return None
    if args.workers != 1:
        raise InputError("--workers: not with --ray (Ray runs as many tasks as the cluster has CPUs or GPUs for)")
    if args.ray_cpus is not None and args.ray_cpus < 1:
        raise InputError(f"--ray-cpus {args.ray_cpus}: must be at least 1")
    if args.ray_gpus is not None and not 0 < args.ray_gpus <= 64:
        raise InputError(f"--ray-gpus {args.ray_gpus:g}: must be more than 0 (a fraction packs tasks on a GPU)")
    try:
        from . import ray_batch
    except ImportError as err:
        if err.name != "ray":
            raise
        raise InputError('--ray needs Ray, an optional extra: pip install -e ".[ray]"') from None
    ray_batch.connect(args.ray)
    return ray_batch.RayEngine(cpus=args.ray_cpus or 1, gpus=args.ray_gpus or 1.0)


def cmd_stimuli(args: argparse.Namespace) -> int:
    if args.design is None and not args.factorial:
        raise InputError("give a design file, --factorial, or both")
    if args.workers < 1:
        raise InputError(f"--workers {args.workers}: must be at least 1")
    design = read_design(args.design) if args.design else Design(Path.cwd())
    command_line = parse_assignments(args.set, "--set")
    if args.factorial:
        design = expand_factorial(design, args.factorial)
    loudness = None if args.loudness.strip().lower() == "off" else LoudnessTarget.parse(args.loudness)
    stimuli = resolve(design, merged_defaults(design, command_line), loudness)
    output = check_study_folder(Path(args.output))
    design_file = Path(args.design) if args.design else None
    if args.factorial:
        (output / STATE).mkdir(parents=True, exist_ok=True)  # marks the folder ours for run_batch's check
        design_file = output / EXPANDED_DESIGN
        write_design(design, {**design.defaults, **command_line}, design_file)
        print(f"wrote the expanded design ({len(stimuli)} rows) to {design_file}")
    if args.check:
        print(f"{len(stimuli)} stimuli; the design has no problems")
        return 0
    started = time.perf_counter()
    result = run_batch(stimuli, output, Outputs(args.png, args.weights_csv), backend=args.backend,
                       workers=args.workers, progress=not args.quiet, design=design_file, engine=ray_engine(args))
    seconds = time.perf_counter() - started
    print(f"{output}: {result.made} made, {result.skipped} skipped, {len(result.failed)} failed "
          f"in {seconds:.1f} s ({result.made / max(seconds, 1e-9) * 60:.1f} stimuli/min, "
          f"{result.frames / max(seconds, 1e-9):.1f} frames/s); manifest.csv and manifest.json written")
    clipped = [r for r in result.records if r.get("clipped_samples")]
    for r in clipped:
        print(f"warning: {r['id']}: {r['clipped_samples']} audio samples clipped at full scale after a gain of "
              f"{r['gain_db']:+.1f} dB to reach {r['parameters']['loudness_target']}")
    for r in result.failed:
        print(f"failed: {r['id']}: {r['error']}")
    if result.others:
        print(f"note: {output} also holds {len(result.others)} stimuli made earlier that are not in this design "
              f"(nor in the manifest): {', '.join(result.others[:10])}{' …' if len(result.others) > 10 else ''}")
    return 1 if result.failed else 0


JSPSYCH_ONLY = ("jspsych", "response_keys", "response_buttons", "response_window_ms", "rating", "rating_labels",
                "save_url")  # the trials options only --format jspsych reads (all None unless given)
TRIAL_FILES = rf"participant_\d+\.(csv|xlsx)|list_\d+\.csv|{JSPSYCH_NAMES}|{re.escape(TRIAL_SETTINGS)}"


def trial_format_options(args: argparse.Namespace) -> dict | JsPsychOptions:
    """The options of `args.format`, refusing those of another format (they would do nothing)."""
    given = [name for name in JSPSYCH_ONLY if getattr(args, name) is not None]
    if args.format != "jspsych" and given:
        raise InputError(f"--{given[0].replace('_', '-')}: only for --format jspsych")
    if args.absolute_paths and args.format != "csv":
        raise InputError(f"--absolute-paths: only for --format csv (--format {args.format} copies the clips "
                         "into its folder and names them relative to it)")
    if args.link and args.format == "csv":
        raise InputError("--link: only for --format jspsych, psychopy or gorilla (csv lists name the clips where "
                         "they are)")
    if args.format == "jspsych":
        return jspsych_options(args)
    return {"absolute_paths": args.absolute_paths} if args.format == "csv" else {"link": args.link}


def cmd_trials(args: argparse.Namespace) -> int:
    stimuli, pending = read_manifest(args.manifest)
    lists = trial_lists(stimuli, args.participants, args.seed, args.latin_square, args.repeats)
    factors = varying_factors(stimuli)
    folder = Path(args.output) if args.output else Path(args.manifest).parent / "trials"
    options = trial_format_options(args)
    settings = {"manifest": str(args.manifest), "manifest_sha256": sha256_file(Path(args.manifest)),
                "format": args.format, "participants": args.participants, "seed": args.seed,
                "latin_square": args.latin_square, "repeats": args.repeats,
                "options": options if isinstance(options, dict) else dataclasses.asdict(options),
                "pending": pending, "software": software()}
    stimuli_dir = Path(args.manifest).parent
    with staged_folder(folder, "trial lists", holds_only(TRIAL_FILES)) as staged:
        if args.format == "csv":
            write_csv_lists(staged, lists, factors, stimuli_dir, folder, args.absolute_paths)
        elif args.format == "jspsych":
            write_jspsych(staged, lists, factors, stimuli_dir, options)
        else:
            write = write_psychopy if args.format == "psychopy" else write_gorilla
            write(staged, lists, factors, stimuli_dir, args.link)
        settings["files"] = {p.relative_to(staged).as_posix(): sha256_file(p)
                             for p in sorted(staged.rglob("[!.]*")) if p.is_file() and p.name != TRIAL_SETTINGS}
        text = json.dumps(settings, indent=1) + "\n"
        atomic_write(staged / TRIAL_SETTINGS, lambda handle: handle.write(text.encode("utf-8")))
    what = {"csv": "trial lists", "jspsych": "jsPsych timelines", "psychopy": "PsychoPy conditions files",
            "gorilla": "Gorilla spreadsheets"}[args.format]
    print(f"wrote {len(lists)} {what} of {len(lists[0])} trials to {folder} (factors: {', '.join(factors) or 'none'})")
    if pending:
        print(f"warning: {args.manifest}: {len(pending)} of {len(stimuli) + len(pending)} stimuli are not made yet "
              f"(the batch is running or was stopped): {', '.join(pending[:5])}{' …' if len(pending) > 5 else ''}; "
              f"these lists hold only the {len(stimuli)} made so far: make them again when `avatar stimuli` has "
              "finished")
    if args.latin_square:
        cycle = len(williams_square(len(factor_levels(stimuli, args.latin_square))))
        if args.participants % cycle:
            print(f"warning: the Latin square over '{args.latin_square}' balances block order over every {cycle} "
                  f"participants; {args.participants} is not a multiple of {cycle}")
    return 0
