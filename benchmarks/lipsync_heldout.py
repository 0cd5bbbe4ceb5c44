"""Lip sync on voices and languages never trained on: the learned generator against the
signal-based driver (and the planted truth, the ceiling), on espeak-ng clips in the held-out
languages (fr, nl, pt) and voice variants (m7, f4, f5) with viseme targets planted at espeak's
own phoneme timings (`models.learning.espeak_corpus`). The same table as
`avatar evaluate --espeak-heldout N --generator DIR --signal`, as markdown.

    python benchmarks/lipsync_heldout.py [--generator assets/model] [--clips 24]
"""
from __future__ import annotations

import argparse

from avatar_app.learn_commands import drivers, heldout_corpus
from models.learning.espeak_corpus import is_bilabial
from models.learning.evaluation import lipsync_metrics

COLUMNS = {  # key: (heading, better)
    "lve_mm2": ("LVE mm²", "lower"),
    "fdd_mm2": ("FDD mm²", "nearer 0"),
    "jaw_envelope_r_median": ("jaw–envelope r, median", "higher"),
    "jaw_envelope_r_min": ("jaw–envelope r, lowest", "higher"),
    "jaw_f2_envelope_r_median": ("jaw–F2-envelope r, median", "higher"),
    "jaw_f2_envelope_r_min": ("jaw–F2-envelope r, lowest", "higher"),
    "bilabial_closed_pct": ("/p b m/ closed %", "higher"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", default="assets/model", help="the learned generator folder")
    parser.add_argument("--clips", type=int, default=24, help="held-out clips")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (as evaluate's --corpus-seed)")
    args = parser.parse_args()
    corpus = heldout_corpus(args.clips, args.seed + 1)
    under_test = drivers(argparse.Namespace(generator=[args.generator], signal=True, signal_blendshapes=None))
    rows = {name: lipsync_metrics(corpus.planted, model, drive, corpus.speech, corpus.phonemes)
            for name, model, drive in under_test}
    rows["planted truth"] = lipsync_metrics(corpus.planted, corpus.planted, lambda s: corpus.truth[s.name],
                                            corpus.speech, corpus.phonemes)
    bilabials = sum(is_bilabial(name) for phonemes in corpus.phonemes.values() for name, _, _ in phonemes)
    print(f"{len(corpus.speech)} held-out clips, {bilabials} bilabial phonemes\n")
    print("| metric (better) | " + " | ".join(rows) + " |")
    print("|---|" + "---:|" * len(rows))
    for key, (heading, better) in COLUMNS.items():
        print(f"| {heading} ({better}) | " + " | ".join(f"{row[key]:.3g}" for row in rows.values()) + " |")


if __name__ == "__main__":
    main()
