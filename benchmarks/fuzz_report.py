"""Fuzz the `avatar` command's inputs and count what happens, by format and outcome.

Writes the seeded mutants of every input format (tests/fuzz_inputs.py) into a fresh folder, runs
them against a source tree in one process at a time (tests/fuzz_runner.py) and prints a table:
one row per format, one column per outcome (ok, clean_error, multi_line_error, traceback, signal,
hang, blank_video, bad_output, bad_exit, leftover_temp). The original code before the hardening:

    mkdir -p /tmp/baseline && git archive 672ee47 | tar -x -C /tmp/baseline
    python benchmarks/fuzz_report.py --tree /tmp/baseline --list traceback hang

Without --tree it runs this checkout. --subset runs what tests/test_fuzz.py runs. --causes groups
the offenders by where they fail; --json keeps every result.
"""
from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fuzz_inputs import FORMATS, generate, select  # noqa: E402
from fuzz_runner import ACCEPTED, OUTCOMES, cause, describe, run_cases, table  # noqa: E402

SUBSET_RENDERS = 2  # renders per format in tests/test_fuzz.py, besides the base and wrong-type ones


def causes(results: list[dict]) -> str:
    """Offenders grouped by format, outcome and root cause, largest groups first."""
    groups = collections.Counter((r["format"], r["outcome"], cause(r)) for r in results if r["outcome"] not in ACCEPTED)
    examples = {}
    for r in results:
        examples.setdefault((r["format"], r["outcome"], cause(r)), r["mutation"])
    return "\n".join(f"{n:4d}  {fmt:12s} {outcome:16s} {key}   (e.g. {examples[fmt, outcome, key]})"
                     for (fmt, outcome, key), n in sorted(groups.items(), key=lambda item: (item[0][0], -item[1])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", type=Path, default=REPO, help="source tree to run (default: this checkout)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subset", action="store_true", help="only what tests/test_fuzz.py runs")
    parser.add_argument("--no-heavy", action="store_true", help="leave out the large and slow mutants")
    parser.add_argument("--formats", nargs="+", choices=FORMATS, help="only these formats")
    parser.add_argument("--mem-gib", type=float, default=3.0, help="address-space limit of the runner")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every case's timeout")
    parser.add_argument("--folder", type=Path, help="where to write the mutants (default: a temporary folder)")
    parser.add_argument("--list", nargs="+", metavar="CLASS", choices=OUTCOMES, default=[],
                        help="print the cases with these outcomes")
    parser.add_argument("--causes", action="store_true", help="group the offenders by root cause")
    parser.add_argument("--json", type=Path, help="write every result to this file")
    parser.add_argument("-v", "--verbose", action="store_true", help="a line per case as it finishes")
    args = parser.parse_args()

    scratch = None if args.folder else Path(tempfile.mkdtemp(prefix="avatar-fuzz-"))
    folder = args.folder or scratch / "mutants"
    try:
        started = time.perf_counter()
        cases = generate(folder, args.seed, heavy=not (args.no_heavy or args.subset))
        made = time.perf_counter() - started
        if args.subset:
            cases = select(cases, SUBSET_RENDERS, args.seed)
        if args.formats:
            cases = [c for c in cases if c["format"] in args.formats]
        print(f"{len(cases)} cases ({len({(c['format'], c['mutation']) for c in cases})} mutants, seed {args.seed}) "
              f"made in {made:.1f} s; running them on {args.tree.resolve()}", flush=True)
        started = time.perf_counter()
        show = (lambda r: print(f"{r['outcome']:16s} {r['id']}  {r['detail'][:120]}", flush=True)) if args.verbose else None
        results = run_cases(cases, folder, args.tree, mem_gib=args.mem_gib, scale=args.scale, progress=show)
        ran = time.perf_counter() - started
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"\n{table(results, [f for f in FORMATS if any(r['format'] == f for r in results)])}\n")
    print(f"ran in {ran:.0f} s; commands: {dict(collections.Counter(r['command'] for r in results))}")
    seconds = collections.defaultdict(list)
    for r in results:
        if r["seconds"] is not None and r["outcome"] in ACCEPTED:
            seconds[r["command"]].append(r["seconds"])
    print("median seconds per accepted case: " + ", ".join(
        f"{k} {sorted(v)[len(v) // 2]:.2f}" for k, v in sorted(seconds.items())))
    if args.causes:
        print("\noffenders by root cause:\n" + (causes(results) or "none"))
    for outcome in args.list:
        print(f"\n{outcome}:")
        for r in results:
            if r["outcome"] == outcome:
                print(describe(r))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
