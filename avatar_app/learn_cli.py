"""The learning commands: `make-corpus`, `train-blendshapes`, `train-speech`, `evaluate`.

They gather clips (VOCASET and Florence 4D folders, or a synthetic corpus with planted truth),
call the trainers in `models`, and write models in the formats the player loads.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

from assets import DEMO_BLENDSHAPES, DEMO_FLAME
from models.blendshape_learner import KIND as LEARNER_KIND, LearnerConfig, build_model, train_blendshapes
from models.blendshapes import BlendshapeModel
from models.checkpoint import CONFIG_FILE, STATE_FILE, WEIGHTS_FILE
from models.correlation import CorrelationConfig, CorrelationLoss, train_correlation
from models.datasets import MeshSequence, load_florence, load_vocaset
from models.demo_blendshapes import EMOTIONS
from models.errors import InputError
from models.evaluation import (evaluation_regions, face_metrics, intensities, leakage,
                               least_squares_weights, subspace_angles)
from models.flame import FlameRig, load_flame
from models.generator import KIND as GENERATOR_KIND, GeneratorConfig, train_generator
from models.mapping import rig_forward
from models.metrics import mapping_error
from models.speech import SignalSpeechDriver
from models.synthetic_corpus import CorpusSpec, PlantedCorpus, make_corpus, planted_model, write_corpus
from models.training import TrainingRun

from .avatar import GENERATOR_MODEL, load_learned
from .outputs import check_output_file, check_output_folder, holds_only, staged_folder

def add_data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vocaset", metavar="DIR", help="VOCASET folder (data_verts.npy, *.pkl; labels.csv optional)")
    p.add_argument("--subjects", metavar="NAMES", help="comma-separated VOCASET subjects (default: all)")
    p.add_argument("--florence", metavar="DIR", help="Florence 4D folder (<identity>/<Expression>/*.ply)")
    p.add_argument("--synthetic", action="store_true",
                   help="a synthetic corpus with planted truth on the demo head (generated in memory)")
    p.add_argument("--corpus-seed", type=int, default=0, help="seed of the synthetic corpus")
    p.add_argument("--speech-clips", type=int, default=24, help="synthetic neutral talking clips")


def synthetic_corpus(args: argparse.Namespace) -> PlantedCorpus:
    planted = planted_model(BlendshapeModel.load(DEMO_BLENDSHAPES))
    return make_corpus(planted, CorpusSpec(speech_clips=args.speech_clips, seed=args.corpus_seed))


def gather(args: argparse.Namespace) -> tuple[list[MeshSequence], list[MeshSequence], list[MeshSequence],
                                              PlantedCorpus | None]:
    """(neutral talking, expression clips, emotional talking, the synthetic corpus if any)."""
    if args.synthetic:
        corpus = synthetic_corpus(args)
        return corpus.speech, corpus.expression, corpus.emotional, corpus
    if not (args.vocaset or args.florence):
        raise InputError("no data: give --vocaset DIR and/or --florence DIR, or --synthetic")
    subjects = args.subjects.split(",") if args.subjects else None
    talking = load_vocaset(args.vocaset, subjects) if args.vocaset else []
    expression = load_florence(args.florence) if args.florence else []
    return ([s for s in talking if s.emotion is None], expression,
            [s for s in talking if s.emotion is not None], None)


def add_run_arguments(p: argparse.ArgumentParser, steps: int) -> None:
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


CHECKPOINT_FILES = "|".join(re.escape(name) for name in (CONFIG_FILE, WEIGHTS_FILE, STATE_FILE, GENERATOR_MODEL)) \
    + "|correlation"


def is_our_npz(path: Path) -> bool:
    """A blendshape model file: an .npz archive with our keys."""
    try:
        with zipfile.ZipFile(path) as archive:
            return {"speech_basis.npy", "format_version.npy"} <= set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def cmd_make_corpus(args: argparse.Namespace) -> int:
    is_ours = holds_only(r"vocaset|florence|planted\.npz|truth\.npz")
    check_output_folder(args.output, is_ours, "corpus")
    corpus = synthetic_corpus(args)
    faces = load_flame(DEMO_FLAME).faces
    with staged_folder(Path(args.output), "corpus", is_ours) as staged:
        write_corpus(corpus, staged, faces)
    print(f"wrote {len(corpus.speech)} talking, {len(corpus.expression)} expression and "
          f"{len(corpus.emotional)} emotional clips to {args.output}")
    return 0


def cmd_train_blendshapes(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    speech, expression, _, corpus = gather(args)
    labels = {s.emotion for s in expression}
    emotions = [e for e in EMOTIONS if e in labels]
    if not emotions:
        raise InputError("no expression clip is labelled with an emotion "
                         f"({', '.join(EMOTIONS)}): emotion profiles cannot be estimated")
    config = LearnerConfig(speech_blendshapes=args.speech_blendshapes,
                           expression_blendshapes=args.expression_blendshapes, sparsity=args.sparsity)
    check_output_file(args.output, is_our_npz, "blendshape model")
    checkpoint = check_output_folder(args.checkpoint or f"{args.output}.checkpoint", holds_only(CHECKPOINT_FILES),
                                     "checkpoints")
    run = TrainingRun(kind=LEARNER_KIND, config={"corpus_seed": args.corpus_seed if args.synthetic else None},
                      steps=args.steps, seed=args.seed, directory=checkpoint, resume=args.resume,
                      progress=not args.quiet, description="blendshapes")
    learner = train_blendshapes(speech, expression, config, run)
    rig = FlameRig(load_flame(args.flame or DEMO_FLAME))
    forward = rig_forward(rig)
    with torch.no_grad():
        neutral = forward(torch.zeros(1, 100), torch.zeros(1, 3))[0].numpy()
    model = build_model(learner, speech, expression, neutral, forward, emotions, source=str(args.output),
                        progress=lambda text: None if args.quiet else print(text))
    model.save(args.output)
    summary = {"seconds": time.perf_counter() - started,
               "speech_mapping_error_mm": float(model.speech_mapping_error.max() * 1e3),
               "expression_mapping_error_mm": float(model.expression_mapping_error.max() * 1e3)}
    if corpus is not None:
        summary.update(subspace_angles(model, corpus.planted))
    print(f"wrote {args.output}: " + ", ".join(f"{k} {v:.3g}" for k, v in summary.items()))
    return 0


def cmd_train_speech(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    output = check_output_folder(args.output, holds_only(CHECKPOINT_FILES), "generator")
    model = BlendshapeModel.load(args.blendshapes)
    speech, _, emotional, _ = gather(args)
    sequences = [s for s in [*speech, *emotional] if s.audio is not None]
    if not sequences:
        raise InputError("no talking clip with audio to learn from")
    auxiliary = None
    if args.correlation:
        auxiliary = correlation_loss(model, sequences, args, output / "correlation")
    config = GeneratorConfig.for_model(model, front_end=args.front_end, wav2vec2_dir=args.wav2vec2)
    run = TrainingRun(kind=GENERATOR_KIND, config={}, steps=args.steps, seed=args.seed, directory=output,
                      resume=args.resume, progress=not args.quiet, description="speech generator")
    train_generator(sequences, model, config, run, auxiliary=auxiliary)
    shutil.copyfile(args.blendshapes, output / GENERATOR_MODEL)
    print(f"wrote {output} in {time.perf_counter() - started:.0f} s")
    return 0


def correlation_loss(model: BlendshapeModel, sequences: list[MeshSequence], args: argparse.Namespace,
                     directory: Path) -> CorrelationLoss:
    """Train the CSTalk correlation module on the clips' own motion, then freeze it as a loss."""
    if not model.region_names:
        raise InputError(f"{args.blendshapes}: the model has no region masks for the correlation module")
    truth = [(np.concatenate(least_squares_weights(model, s), axis=1), intensities(model, s)) for s in sequences]
    bases = np.concatenate([model.speech_basis, model.expression_basis])
    run = TrainingRun(kind="correlation", config={}, steps=args.correlation_steps, seed=args.seed,
                      directory=directory, resume=args.resume, progress=not args.quiet, description="correlation")
    module = train_correlation(truth, bases, model.region_masks, model.region_names, model.emotion_names,
                               CorrelationConfig(), run)
    return CorrelationLoss(module, bases, model.region_masks)


def cmd_evaluate(args: argparse.Namespace) -> int:
    speech, expression, emotional, corpus = gather(args)
    talking = [*speech, *emotional]
    regions = evaluation_regions(talking)
    rows = {}
    for name, model, drive in drivers(args):
        row = face_metrics(model, drive, talking, regions)
        row.update(leakage(model, speech, expression))
        row["mapping_error_mm"] = float(max(model.speech_mapping_error.max(), model.expression_mapping_error.max()) * 1e3)
        if args.flame:
            forward = rig_forward(FlameRig(load_flame(args.flame)))
            neutral = model.template
            row["remeasured_mapping_error_mm"] = float(max(
                mapping_error(model.speech_basis, model.speech_to_flame, forward, neutral).max(),
                mapping_error(model.expression_basis, model.expression_to_flame, forward, neutral).max()) * 1e3)
        if corpus is not None:
            row.update(subspace_angles(model, corpus.planted))
        rows[name] = row
    if corpus is not None:
        rows["planted truth"] = {**leakage(corpus.planted, speech, expression),
                                 **face_metrics(corpus.planted, lambda s: corpus.truth[s.name], talking, regions)}
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows)
    return 0


def drivers(args: argparse.Namespace):
    """(name, model, drive) for each driver under test."""
    out = []
    for directory in args.generator or []:
        driver, model = load_learned(directory)

        def drive(s: MeshSequence, driver=driver, model=model):
            features = driver.features(s.audio, s.fps)
            return driver.generate(features, intensities(model, s))
        out.append((f"learned {Path(directory).name}", model, drive))
    if args.signal:
        model = BlendshapeModel.load(args.signal_blendshapes or DEMO_BLENDSHAPES)
        signal = SignalSpeechDriver(model.speech_names)

        def drive(s: MeshSequence, model=model):
            speech = signal.weights(s.audio, s.fps)
            return speech, model.expression_weights(intensities(model, s), len(speech))
        out.append(("signal", model, drive))
    if not out:
        raise InputError("nothing to evaluate: give --generator DIR and/or --signal")
    return out


def print_table(rows: dict[str, dict[str, float]]) -> None:
    keys = list(dict.fromkeys(k for row in rows.values() for k in row))
    width = max(len(name) for name in rows)
    print(" | ".join(["driver".ljust(width), *keys]))
    for name, row in rows.items():
        print(" | ".join([name.ljust(width), *(f"{row[k]:.4g}".rjust(len(k)) if k in row else "-".rjust(len(k))
                                              for k in keys)]))


def add_learning_commands(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("make-corpus", help="write a synthetic corpus in the VOCASET and Florence layouts")
    c.add_argument("output", metavar="DIR")
    add_data_arguments(c)
    c.set_defaults(run=cmd_make_corpus)

    b = sub.add_parser("train-blendshapes", help="learn disentangled speech/expression blendshapes")
    add_data_arguments(b)
    add_run_arguments(b, steps=1500)
    b.add_argument("-o", "--output", required=True, metavar="NPZ", help="blendshape model to write")
    b.add_argument("--flame", metavar="FILE", help="FLAME model for the mapping (default: the demo head's)")
    b.add_argument("--speech-blendshapes", type=int, default=4)
    b.add_argument("--expression-blendshapes", type=int, default=9)
    b.add_argument("--sparsity", type=float, default=LearnerConfig.sparsity)
    b.add_argument("--checkpoint", metavar="DIR", help="checkpoint folder (default: OUTPUT.checkpoint)")
    b.set_defaults(run=cmd_train_blendshapes)

    s = sub.add_parser("train-speech", help="train the audio+emotion → weights generator")
    add_data_arguments(s)
    add_run_arguments(s, steps=2000)
    s.add_argument("--blendshapes", required=True, metavar="NPZ", help="the blendshape model it drives")
    s.add_argument("-o", "--output", required=True, metavar="DIR", help="generator folder (checkpoints too)")
    s.add_argument("--front-end", choices=("mel", "wav2vec2"), default="mel")
    s.add_argument("--wav2vec2", metavar="DIR", help="local wav2vec2 model folder (save_pretrained layout)")
    s.add_argument("--correlation", action="store_true", help="supervise with the CSTalk correlation module")
    s.add_argument("--correlation-steps", type=int, default=600)
    s.set_defaults(run=cmd_train_speech)

    e = sub.add_parser("evaluate", help="LVE, FDD, leakage, mapping error (and subspace angles on synthetic data)")
    add_data_arguments(e)
    e.add_argument("--generator", action="append", metavar="DIR", help="a trained generator folder (repeatable)")
    e.add_argument("--signal", action="store_true", help="also evaluate the signal-based driver")
    e.add_argument("--signal-blendshapes", metavar="NPZ", help="its blendshape model (default: the demo's)")
    e.add_argument("--flame", metavar="FILE", help="re-measure the FLAME mapping error through this model")
    e.add_argument("--json", action="store_true")
    e.set_defaults(run=cmd_evaluate)

