"""The learning commands' arguments. What they do is in `learn_commands`, imported only when
one of them runs, so rendering and the app never load the training code."""
from __future__ import annotations

import argparse

from .arguments import lazy_command

COMMANDS = "avatar_app.learn_commands"


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """The training data: recorded datasets, or the synthetic corpus."""
    p.add_argument("--vocaset", metavar="DIR", help="VOCASET folder (data_verts.npy, *.pkl; labels.csv optional)")
    p.add_argument("--subjects", metavar="NAMES", help="comma-separated VOCASET subjects (default: all)")
    p.add_argument("--florence", metavar="DIR", help="Florence 4D folder (<identity>/<Expression>/*.ply)")
    p.add_argument("--synthetic", action="store_true",
                   help="a synthetic corpus with planted truth on the demo head (generated in memory)")
    add_synthetic_arguments(p)


def add_synthetic_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus-seed", type=int, default=0, metavar="N", help="seed of the synthetic corpus")
    p.add_argument("--speech-clips", type=int, default=24, metavar="N", help="synthetic neutral talking clips")


def add_run_arguments(p: argparse.ArgumentParser, steps: int) -> None:
    p.add_argument("--steps", type=int, default=steps, metavar="N", help="optimisation steps")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the initialisation and batches")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_learning_commands(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("make-corpus", help="write a synthetic corpus in the VOCASET and Florence layouts")
    c.add_argument("output", metavar="DIR", help="folder to write the corpus into (vocaset/, florence/ and the planted truth)")
    add_synthetic_arguments(c)
    c.set_defaults(run=lazy_command(COMMANDS, "cmd_make_corpus"))

    b = sub.add_parser("train-blendshapes", help="learn disentangled speech/expression blendshapes")
    add_data_arguments(b)
    add_run_arguments(b, steps=1500)
    b.add_argument("-o", "--output", required=True, metavar="NPZ", help="blendshape model to write")
    b.add_argument("--flame", metavar="FILE", help="FLAME model for the mapping (default: the demo head's)")
    b.add_argument("--speech-blendshapes", type=int, default=4, metavar="N", help="speech blendshapes to learn")
    b.add_argument("--expression-blendshapes", type=int, default=None, metavar="N",
                   help="expression blendshapes to learn (default: with --synthetic as many as the planted model "
                        "has, else 9)")
    b.add_argument("--sparsity", type=float, default=None, help="weight of the L1 penalty on cross-domain weights (default 0.3)")
    b.add_argument("--checkpoint", metavar="DIR", help="checkpoint folder (default: OUTPUT.checkpoint)")
    b.set_defaults(run=lazy_command(COMMANDS, "cmd_train_blendshapes"))

    m = sub.add_parser("fit-mapping", help="refit a blendshape model's FLAME mapping to another FLAME file of the "
                       "same mesh (FLAME 2020 <-> 2023), printing each blendshape's error")
    m.add_argument("--blendshapes", required=True, metavar="NPZ", help="the blendshape model")
    m.add_argument("--flame", required=True, metavar="FILE", help="the FLAME model to fit to (.pkl or .npz)")
    m.add_argument("-o", "--output", required=True, metavar="NPZ", help="the refitted blendshape model to write")
    m.set_defaults(run=lazy_command(COMMANDS, "cmd_fit_mapping"))

    s = sub.add_parser("train-speech", help="train the audio+emotion → weights generator")
    add_data_arguments(s)
    add_run_arguments(s, steps=2000)
    s.add_argument("--blendshapes", required=True, metavar="NPZ", help="the blendshape model it drives")
    s.add_argument("-o", "--output", required=True, metavar="DIR", help="generator folder (checkpoints too)")
    s.add_argument("--front-end", choices=("mel", "wav2vec2"), default="mel",
                   help="audio features: log-mel spectrogram, or a frozen local wav2vec2 (needs --wav2vec2)")
    s.add_argument("--wav2vec2", metavar="DIR", help="local wav2vec2 model folder (save_pretrained layout)")
    s.add_argument("--correlation", action="store_true", help="supervise with the CSTalk correlation module")
    s.add_argument("--correlation-steps", type=int, default=600, metavar="N",
                   help="training steps of the correlation module (with --correlation)")
    s.add_argument("--espeak", type=int, default=0, metavar="N",
                   help="add N talking clips spoken by espeak-ng (5 languages, 8 voices) to --synthetic")
    s.add_argument("--velocity", type=float, default=100.0, metavar="W",
                   help="weight of the expression stream's velocity loss, against jitter in the slow expression "
                        "motion (default: %(default)s; 0 turns it off)")
    s.set_defaults(run=lazy_command(COMMANDS, "cmd_train_speech"))

    e = sub.add_parser("evaluate", help="LVE, FDD, leakage, mapping error (and subspace angles on synthetic data)")
    add_data_arguments(e)
    e.add_argument("--generator", action="append", metavar="DIR", help="a trained generator folder (repeatable)")
    e.add_argument("--signal", action="store_true", help="also evaluate the signal-based driver")
    e.add_argument("--signal-blendshapes", metavar="NPZ", help="its blendshape model (default: the demo's)")
    e.add_argument("--flame", metavar="FILE", help="re-measure the FLAME mapping error through this model")
    e.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    e.add_argument("--espeak-heldout", type=int, default=0, metavar="N",
                   help="instead: lip sync on N espeak-ng clips in languages and voices never trained on "
                        "(LVE, FDD, jaw-envelope r, bilabial closures)")
    e.set_defaults(run=lazy_command(COMMANDS, "cmd_evaluate"))

