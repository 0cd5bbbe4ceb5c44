"""Ablation of the blendshape learner's disentangling terms, at equal training steps.

Each configuration trains on the same synthetic corpus (planted truth on the demo head) with
the same seed and steps, and is measured on a held-out corpus (another seed):
- cross/own: held-out cross-domain weight energy over own-domain energy (w_E on neutral
  talking plus w_A on expression clips, over w_A on talking plus w_E on expressions);
- the largest principal angles between the learned and planted speech and expression subspaces;
- the held-out relative RMS reconstruction error.

    python benchmarks/sparsity_ablation.py [--steps 1500] [--threads 2]
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

from assets import DEMO_BLENDSHAPES
from models.learning.blendshape_learner import LearnerConfig, train_blendshapes
from models.learning.evaluation import subspace_angles
from models.learning.synthetic_corpus import CorpusSpec, make_corpus, planted_model
from models.learning.training import TrainingRun
from models.rig.blendshapes import BlendshapeModel

CONFIGS = {  # name: (sparsity, decoupling, initial)
    "full (shipped)": (0.3, 1.0, "domains"),
    "no sparsity": (0.0, 1.0, "domains"),
    "no decoupling": (0.3, 0.0, "domains"),
    "neither": (0.0, 0.0, "domains"),
    "random start": (0.3, 1.0, "random"),
    "random start, no sparsity": (0.0, 1.0, "random"),
    "random start, neither": (0.0, 0.0, "random"),
}


def measure(learner, corpus, planted) -> dict[str, float]:
    cross = own = error = total = 0.0
    speech_basis, expression_basis = learner.full_bases()
    for group, k in ((corpus.speech, 0), (corpus.expression, 1)):
        for s in group:
            w = learner.encode(s.displacements)
            own += float(np.square(w[k]).sum())
            cross += float(np.square(w[1 - k]).sum())
            recon = np.tensordot(w[0], speech_basis, 1) + np.tensordot(w[1], expression_basis, 1)
            error += float(np.square(recon - s.displacements).sum())
            total += float(np.square(s.displacements).sum())
    angles = subspace_angles(replace(planted, speech_basis=speech_basis, expression_basis=expression_basis), planted)
    return {"cross_own": cross / own, "speech_deg": angles["speech_angle_deg"],
            "expression_deg": angles["expression_angle_deg"], "error": (error / total) ** 0.5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    planted = planted_model(BlendshapeModel.load(DEMO_BLENDSHAPES))
    train = make_corpus(planted, CorpusSpec())
    held_out = make_corpus(planted, CorpusSpec(seed=1, speech_clips=8, expression_repeats=1, emotional_repeats=0))
    print(f"{len(train.speech)} talking + {len(train.expression)} expression clips; held out "
          f"{len(held_out.speech)} + {len(held_out.expression)}; {args.steps} steps each, seed 0\n")
    print("| configuration | sparsity | decoupling | start | cross/own (held out) | speech ∠ | expression ∠ "
          "| rel. error | train s |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for name, (sparsity, decoupling, initial) in CONFIGS.items():
        config = LearnerConfig(expression_blendshapes=len(planted.expression_names), sparsity=sparsity,
                               decoupling=decoupling, initial=initial)
        run = TrainingRun(kind="blendshape-learner", config={}, steps=args.steps, seed=0, progress=False)
        started = time.perf_counter()
        learner = train_blendshapes(train.speech, train.expression, config, run)
        seconds = time.perf_counter() - started
        m = measure(learner, held_out, planted)
        print(f"| {name} | {sparsity:g} | {decoupling:g} | {initial} | {m['cross_own']:.2e} | "
              f"{m['speech_deg']:.1f}° | {m['expression_deg']:.1f}° | {m['error']:.3f} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
