"""What the learning commands do (`make-corpus`, `train-blendshapes`, `train-speech`,
`evaluate`; their arguments are in `learn_cli`): gather clips (VOCASET and Florence 4D folders,
or a synthetic corpus with planted truth), call the trainers in `models.learning`, and write
models in the formats the player loads."""
from __future__ import annotations

import argparse
import json
import re
import time
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from assets import DEMO_BLENDSHAPES, DEMO_FLAME
from avatar_app.demo.blendshapes import EMOTIONS
from common.errors import InputError
from models.drivers.checkpoint import CONFIG_FILE, STATE_FILE, WEIGHTS_FILE
from models.drivers.contract import SpeechDriver
from models.drivers.generator import KIND as GENERATOR_KIND
from models.drivers.generator import GeneratorConfig
from models.drivers.signal import SignalSpeechDriver
from models.learning.blendshape_learner import KIND as LEARNER_KIND
from models.learning.blendshape_learner import (
    LearnerConfig,
    build_model,
    train_blendshapes,
)
from models.learning.correlation import (
    CorrelationConfig,
    CorrelationLoss,
    train_correlation,
)
from models.learning.datasets import MeshSequence, load_florence, load_vocaset
from models.learning.espeak_corpus import HELDOUT, EspeakSpec
from models.learning.evaluation import (
    evaluation_regions,
    face_metrics,
    intensities,
    leakage,
    least_squares_weights,
    lipsync_metrics,
    subspace_angles,
)
from models.learning.generator_training import pause_speech_profiles, train_generator
from models.learning.metrics import mapping_error
from models.learning.synthetic_corpus import (
    CorpusSpec,
    PlantedCorpus,
    add_espeak,
    make_corpus,
    planted_model,
    write_corpus,
)
from models.learning.training import TrainingRun
from models.rig.blendshapes import BlendshapeModel
from models.rig.flame import load_flame
from models.rig.mapping import MappingRig, refit_mapping

from .avatar import GENERATOR_MODEL, load_learned
from .outputs import check_output_file, check_output_folder, holds_only, staged_folder


def synthetic_corpus(args: argparse.Namespace) -> PlantedCorpus:
    planted = planted_model(BlendshapeModel.load(DEMO_BLENDSHAPES))
    clips = getattr(args, "espeak", 0)
    if clips < 0:
        raise InputError(f"--espeak {clips}: the number of espeak-ng clips must be at least 0")
    espeak = EspeakSpec(clips=clips, seed=args.corpus_seed) if clips else None
    return make_corpus(planted, CorpusSpec(speech_clips=args.speech_clips, seed=args.corpus_seed), espeak)


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
    count = args.expression_blendshapes or (len(corpus.planted.expression_names) if corpus is not None else 9)
    config = LearnerConfig(speech_blendshapes=args.speech_blendshapes, expression_blendshapes=count,
                           sparsity=args.sparsity if args.sparsity is not None else LearnerConfig.sparsity)
    check_output_file(args.output, is_our_npz, "blendshape model")
    checkpoint = check_output_folder(args.checkpoint or f"{args.output}.checkpoint", holds_only(CHECKPOINT_FILES),
                                     "checkpoints")
    run = TrainingRun(kind=LEARNER_KIND, config={"corpus_seed": args.corpus_seed if args.synthetic else None},
                      steps=args.steps, seed=args.seed, directory=checkpoint, resume=args.resume,
                      progress=not args.quiet, description="blendshapes")
    learner = train_blendshapes(speech, expression, config, run)
    flame = MappingRig.of(load_flame(args.flame or DEMO_FLAME))
    model = build_model(learner, speech, expression, flame, emotions, source=str(args.output),
                        progress=lambda text: None if args.quiet else print(text),
                        reference=corpus.planted if corpus is not None else None)
    model.save(args.output)
    summary = {"seconds": time.perf_counter() - started,
               "speech_mapping_error_mm": float(model.speech_mapping_error.max() * 1e3),
               "expression_mapping_error_mm": float(model.expression_mapping_error.max() * 1e3)}
    if corpus is not None:
        summary.update(subspace_angles(model, corpus.planted))
    print(f"wrote {args.output}: " + ", ".join(f"{k} {v:.3g}" for k, v in summary.items()))
    return 0


def cmd_fit_mapping(args: argparse.Namespace) -> int:
    """Refit a blendshape model's FLAME mapping to another FLAME file of the same mesh (FLAME
    2020 ↔ 2023): the displacements stay, the mapping, its errors and the FLAME record are new."""
    model = BlendshapeModel.load(args.blendshapes)
    flame = MappingRig.of(load_flame(args.flame))
    check_output_file(args.output, is_our_npz, "blendshape model")
    refitted = refit_mapping(model, flame, source=str(args.output))
    print(f"FLAME mapping of {args.blendshapes} refitted to {flame.name} (fingerprint {flame.fingerprint}); "
          "RMS vertex error in mm:")
    rows = [("blendshape", "kind", f"old mapping on {flame.name}", "refitted")]
    for kind in ("speech", "expression"):
        basis, old = getattr(model, f"{kind}_basis"), getattr(model, f"{kind}_to_flame")
        before = mapping_error(basis, old, flame.forward, flame.neutral) * 1e3
        after = getattr(refitted, f"{kind}_mapping_error") * 1e3
        names = getattr(model, f"{kind}_names")
        rows += [(name, kind, f"{b:.4f}", f"{a:.4f}") for name, b, a in zip(names, before, after)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1]), *(c.rjust(w) for c, w in zip(row[2:], widths[2:]))]))
    refitted.save(args.output)
    print(f"wrote {args.output}")
    return 0


def cmd_train_speech(args: argparse.Namespace) -> int:
    if args.espeak and not args.synthetic:
        raise InputError("--espeak adds espeak-ng clips to the synthetic corpus: give --synthetic too")
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
    driver = train_generator(sequences, model, config, run, auxiliary=auxiliary, velocity=args.velocity)
    profiles = pause_speech_profiles(driver, model, sequences)
    replace(model, emotion_speech_profiles=profiles).save(output / GENERATOR_MODEL)
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
    if args.espeak_heldout:
        return evaluate_heldout(args)
    speech, expression, emotional, corpus = gather(args)
    talking = [*speech, *emotional]
    regions = evaluation_regions(talking)
    rows = {}
    for name, model, drive in drivers(args):
        row = face_metrics(model, drive, talking, regions)
        row.update(leakage(model, speech, expression))
        row["mapping_error_mm"] = float(max(model.speech_mapping_error.max(), model.expression_mapping_error.max()) * 1e3)
        if args.flame:
            flame = MappingRig.of(load_flame(args.flame))
            row["remeasured_mapping_error_mm"] = float(max(
                mapping_error(model.speech_basis, model.speech_to_flame, flame.forward, model.template).max(),
                mapping_error(model.expression_basis, model.expression_to_flame, flame.forward,
                              model.template).max()) * 1e3)
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


def heldout_corpus(clips: int, seed: int = HELDOUT.seed) -> PlantedCorpus:
    """`clips` espeak-ng talking clips in the held-out languages and voices, planted on the demo head."""
    if clips < 1:
        raise InputError(f"--espeak-heldout {clips}: give at least 1 clip")
    planted = planted_model(BlendshapeModel.load(DEMO_BLENDSHAPES))
    return add_espeak(PlantedCorpus(planted=planted), replace(HELDOUT, clips=clips, seed=seed))


def evaluate_heldout(args: argparse.Namespace) -> int:
    """The lip-sync table on held-out espeak-ng clips: every driver and the planted truth."""
    corpus = heldout_corpus(args.espeak_heldout, args.corpus_seed + HELDOUT.seed)
    rows = {name: lipsync_metrics(corpus.planted, model, drive, corpus.speech, corpus.phonemes)
            for name, model, drive in drivers(args)}
    rows["planted truth"] = lipsync_metrics(corpus.planted, corpus.planted, lambda s: corpus.truth[s.name],
                                            corpus.speech, corpus.phonemes)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows)
    return 0


def drivers(args: argparse.Namespace) -> list[tuple[str, BlendshapeModel, Callable[[MeshSequence], tuple[np.ndarray, np.ndarray]]]]:
    """(name, model, drive) for each driver under test."""
    out = [(f"learned {Path(directory).name}", *load_learned(directory)[::-1]) for directory in args.generator or []]
    if args.signal:
        model = BlendshapeModel.load(args.signal_blendshapes or DEMO_BLENDSHAPES)
        out.append(("signal", model, SignalSpeechDriver.for_model(model)))

    if not out:
        raise InputError("nothing to evaluate: give --generator DIR and/or --signal")

    def drive(driver: SpeechDriver, model: BlendshapeModel) -> Callable[[MeshSequence], tuple[np.ndarray, np.ndarray]]:
        return lambda s: driver.weights(driver.analyse(s.audio, s.fps), intensities(model, s))
    return [(name, model, drive(driver, model)) for name, model, driver in out]


def print_table(rows: dict[str, dict[str, float]]) -> None:
    keys = list(dict.fromkeys(k for row in rows.values() for k in row))
    width = max(len(name) for name in rows)
    print(" | ".join(["driver".ljust(width), *keys]))
    for name, row in rows.items():
        print(" | ".join([name.ljust(width), *(f"{row[k]:.4g}".rjust(len(k)) if k in row else "-".rjust(len(k))
                                              for k in keys)]))
