"""What the study commands do: `avatar stimuli` (a design in, clips and a manifest out) and
`avatar trials` (a manifest in, one trial list per participant out). Imported only when one of
them runs; their arguments are in `stimuli.cli`."""
from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from common.atomic import atomic_write
from common.errors import InputError
from models.audio.loudness import LoudnessTarget

from ..outputs import holds_only, staged_folder
from .batch import check_study_folder, run_batch, sha256_file, software
from .design import (
    Design,
    expand_factorial,
    merged_defaults,
    parse_assignments,
    read_design,
    write_design,
)
from .render import Outputs
from .resolve import resolve
from .trials import (
    factor_levels,
    read_manifest,
    trial_lists,
    varying_factors,
    williams_square,
    write_trial_lists,
)

EXPANDED_DESIGN = "design.csv"
TRIAL_SETTINGS = "settings.json"  # beside the trial lists: what made them


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
        output.mkdir(parents=True, exist_ok=True)
        design_file = output / EXPANDED_DESIGN
        write_design(design, {**design.defaults, **command_line}, design_file)
        print(f"wrote the expanded design ({len(stimuli)} rows) to {design_file}")
    if args.check:
        print(f"{len(stimuli)} stimuli; the design has no problems")
        return 0
    started = time.perf_counter()
    result = run_batch(stimuli, output, Outputs(args.png, args.weights_csv), backend=args.backend,
                       workers=args.workers, progress=not args.quiet, design=design_file)
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


def cmd_trials(args: argparse.Namespace) -> int:
    stimuli, pending = read_manifest(args.manifest)
    lists = trial_lists(stimuli, args.participants, args.seed, args.latin_square, args.repeats)
    factors = varying_factors(stimuli)
    folder = Path(args.output) if args.output else Path(args.manifest).parent / "trials"
    settings = {"manifest": str(args.manifest), "manifest_sha256": sha256_file(Path(args.manifest)),
                "participants": args.participants, "seed": args.seed, "latin_square": args.latin_square,
                "repeats": args.repeats, "pending": pending, "software": software()}
    text = json.dumps(settings, indent=1) + "\n"
    with staged_folder(folder, "trial lists", holds_only(r"participant_\d+\.csv|" + re.escape(TRIAL_SETTINGS))) as staged:
        paths = [folder / p.name for p in write_trial_lists(lists, staged, factors)]
        atomic_write(staged / TRIAL_SETTINGS, lambda handle: handle.write(text.encode("utf-8")))
    print(f"wrote {len(paths)} trial lists of {len(lists[0])} trials to {folder} "
          f"(factors: {', '.join(factors) or 'none'})")
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
