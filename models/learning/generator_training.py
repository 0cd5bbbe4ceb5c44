"""Training the speech/emotion generator on talking, emotional and silent mesh sequences.

The generator fits the blendshape model's own bases: its targets are the least-squares
weights of the captured displacements and its loss is their vertex error (in mm²).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from tqdm import tqdm

from common.errors import InputError
from models.audio.loudness import frame_levels
from models.audio.sources import Audio, fit_length
from models.drivers.generator import (
    KIND,
    SAMPLE_RATE,
    GeneratorConfig,
    LearnedDriver,
    SpeechGenerator,
    check_names,
)
from models.learning.datasets import MeshSequence
from models.learning.training import TrainingRun, train
from models.rig.blendshapes import BlendshapeModel

_RIDGE = 1e-9  # of the mean squared basis norm; see _stacked_bases
_MM2_PER_M2 = 1e6  # the loss in mm²: readable, and its gradients stay well above Adam's epsilon
Auxiliary = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

@dataclass
class _Example:
    """One training sequence, precomputed: frozen features, weight targets, emotion."""

    analysed: torch.Tensor  # [N, C] at the front-end's native rate
    frames: int
    target: torch.Tensor  # [T, Ks + Ke] least-squares weights of the displacements
    intensities: torch.Tensor  # [E] constant over the sequence


def _stacked_bases(model: BlendshapeModel) -> tuple[np.ndarray, np.ndarray]:
    """[speech; expression] bases as [K, 3V] float64 and their Gram matrix + a tiny ridge [K, K].

    The ridge settles weight directions the bases cannot tell apart (a speech and an expression
    shape that move the same vertices the same way) at the least-norm split, and is far too
    small to bias any direction the vertices do determine.
    """
    bases = np.concatenate([model.speech_basis, model.expression_basis]).reshape(-1, model.template.size)
    bases = bases.astype(np.float64)
    gram = bases @ bases.T
    return bases, gram + _RIDGE * np.trace(gram) / len(gram) * np.eye(len(gram))


def _examples(
    sequences: Sequence[MeshSequence],
    model: BlendshapeModel,
    generator: SpeechGenerator,
    bases: np.ndarray,
    gram: np.ndarray,
    progress: bool,
) -> list[_Example]:
    """Frozen features and least-squares weight targets (normal equations), once per sequence."""
    examples = []
    for seq in tqdm(sequences, desc="generator features", disable=not progress):
        frames = len(seq.vertices)
        duration = frames / seq.fps
        audio = Audio(np.zeros(0, np.float32), SAMPLE_RATE) if seq.audio is None else seq.audio
        displacements = seq.displacements.reshape(frames, -1).astype(np.float64)
        target = np.linalg.solve(gram, bases @ displacements.T).T
        intensities = np.zeros(len(model.emotion_names), np.float32)
        if seq.emotion is not None:
            if seq.emotion not in model.emotion_names:
                raise InputError(
                    f"{seq.name}: unknown emotion '{seq.emotion}'; the model's emotions: {', '.join(model.emotion_names)}"
                )
            intensities[model.emotion_names.index(seq.emotion)] = seq.intensity
        examples.append(
            _Example(
                analysed=generator.analyse(fit_length(audio, duration)),
                frames=frames,
                target=torch.from_numpy(target.astype(np.float32)),
                intensities=torch.from_numpy(intensities),
            )
        )
    return examples


def _balanced_odds(examples: Sequence[_Example]) -> np.ndarray:
    """How often each example is drawn: clips under an emotion and neutral ones half the time
    each (uniform within each), so that many neutral talking clips (an espeak-ng corpus) do not
    drown the few emotional ones the emotion embedding learns from; uniform when one kind is
    missing."""
    emotional = np.array([bool(e.intensities.any()) for e in examples])
    counts = np.bincount(emotional.astype(int), minlength=2)
    if counts.min() == 0:
        return np.full(len(examples), 1.0 / len(examples))
    return np.where(emotional, 0.5 / counts[1], 0.5 / counts[0])


def _check_sequences(sequences: Sequence[MeshSequence], model: BlendshapeModel) -> float:
    """The sequences' common fps, after checking they fit the model."""
    if not sequences:
        raise InputError("speech generator: no training sequences")
    wrong = [s.name for s in sequences if s.vertices.shape[1:] != model.template.shape]
    if wrong:
        raise InputError(
            f"speech generator: sequences without the model's {len(model.template)} vertices: {', '.join(wrong[:5])}"
        )
    rates = sorted({float(s.fps) for s in sequences})
    if len(rates) != 1:
        raise InputError(f"speech generator: sequences have different frame rates {rates}; resample them to one")
    return rates[0]


def train_generator(
    sequences: Sequence[MeshSequence],
    model: BlendshapeModel,
    config: GeneratorConfig,
    run: TrainingRun,
    auxiliary: Auxiliary | None = None,
    window_s: float = 2.0,
    batch: int = 8,
    lr: float = 1e-3,
    velocity: float = 0.0,
) -> LearnedDriver:
    """Train a generator on talking (and emotional, and silent) sequences of `model`'s topology.

    `run` (kind "speech-generator") gives steps, seed, checkpoint directory and resume; its config
    gains the generator config ("generator") and these training settings ("training"), so its
    checkpoints load with `LearnedDriver.load`. Sequences without audio count as silence; their
    emotion label (None = neutral) at their intensity is c(t). Batches are random windows of
    `window_s` seconds (or the shortest sequence, if shorter) from random sequences; the loss is
    the mean squared vertex error in mm², plus `velocity` × the mean squared error of the
    expression stream's frame-to-frame vertex motion (FaceFormer's velocity loss, on the stream
    whose motion is slow: it costs the jitter that per-frame errors barely see, while speech keeps
    its fast closures), plus `auxiliary` if given.
    """
    if run.kind != KIND:
        raise InputError(f"speech generator: the training run's kind is {run.kind!r}, expected {KIND!r}")
    if not (window_s > 0 and lr > 0 and velocity >= 0):
        raise InputError(f"speech generator: window_s {window_s} and lr {lr} must be positive, velocity {velocity} not negative")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InputError(f"speech generator: batch {batch!r} is not a positive integer")
    check_names(config, model)
    fps = _check_sequences(sequences, model)
    torch.manual_seed(run.seed)  # the initial weights follow the run's seed
    generator = SpeechGenerator(config)
    bases, gram = _stacked_bases(model)
    examples = _examples(sequences, model, generator, bases, gram, run.progress)
    window = max(1, min(int(round(window_s * fps)), *(e.frames for e in examples)))
    loss_gram = torch.from_numpy(gram.astype(np.float32))
    speech = len(model.speech_names)
    expression_gram = loss_gram[speech:, speech:]
    scale = _MM2_PER_M2 / model.template.size  # mean over the 3V vertex coordinates, in mm²

    aux_name = None if auxiliary is None else getattr(auxiliary, "__qualname__", type(auxiliary).__qualname__)
    training = {"window_s": window_s, "batch": batch, "lr": lr, "velocity": velocity, "auxiliary": aux_name}
    run = replace(run, config={**run.config, "generator": asdict(config), "training": training})

    odds = _balanced_odds(examples)

    def step(_: int, rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        features, targets, emotions = [], [], []
        for pick in rng.choice(len(examples), size=batch, p=odds):
            example = examples[pick]
            start = int(rng.integers(example.frames - window + 1))
            features.append(generator.front(example.analysed, example.frames, start, window))
            targets.append(example.target[start : start + window])
            emotions.append(example.intensities.expand(window, -1))
        target, emotion = torch.stack(targets), torch.stack(emotions)
        pred = generator(torch.stack(features), emotion)
        error = pred - target
        mse = ((error @ loss_gram) * error).sum(-1).mean() * scale
        shown = {"mse_mm2": mse.item()}
        loss = mse
        if velocity and window > 1:
            jump = error[:, 1:, speech:] - error[:, :-1, speech:]
            motion = ((jump @ expression_gram) * jump).sum(-1).mean() * scale
            loss = loss + velocity * motion
            shown["velocity_mm2"] = motion.item()
        if auxiliary is not None:
            extra = auxiliary(pred, target, emotion)
            loss = loss + extra
            shown["auxiliary"] = extra.item()
        return loss, shown

    optimizer = torch.optim.Adam(generator.parameters(), lr=lr)
    train(run, generator, optimizer, step)
    return LearnedDriver(generator)


def pause_speech_profiles(driver: LearnedDriver, model: BlendshapeModel, sequences: Sequence[MeshSequence],
                          clips: int = 32, quiet_db: float = 40.0) -> np.ndarray:
    """(E, Ks) what the trained generator adds to the speech weights in the pauses of talking
    (the frames more than `quiet_db` below their clip's loudest frame) under each emotion alone at
    intensity 1, against the same frames at neutral; over up to `clips` of the neutral talking
    `sequences`, spread evenly. These are the model's `emotion_speech_profiles`, so that stills
    and weights files (read by a `RecordedDriver`) show an emotion's jaw drop or lip stretch as
    the generator shows it when nobody speaks. Pauses inside talking, not a silent clip: the
    front-end normalises each clip's features, so digital silence alone is not a pause to it."""
    talking = [s for s in sequences if s.audio is not None and s.emotion is None]
    picked = [talking[i] for i in np.unique(np.linspace(0, len(talking) - 1, clips).round().astype(int))] if talking else []
    emotions = np.eye(len(model.emotion_names), dtype=np.float32)
    added: list[list[np.ndarray]] = [[] for _ in emotions]
    for sequence in picked:
        frames = len(sequence.vertices)
        levels = frame_levels(sequence.audio, sequence.fps, frames)
        quiet = levels < levels.max() - quiet_db
        if not quiet.any():
            continue
        features = driver.analyse(fit_length(sequence.audio, frames / sequence.fps), sequence.fps)
        neutral = driver.weights(features, np.zeros((frames, len(emotions)), np.float32))[0][quiet]
        for e, one in enumerate(emotions):
            added[e].append(driver.weights(features, np.tile(one, (frames, 1)))[0][quiet] - neutral)
    if not all(added):
        raise InputError(f"speech generator: no neutral talking clip has a pause (a frame {quiet_db:g} dB below its "
                         "loudest) to measure the emotions' speech profiles in")
    return np.stack([np.concatenate(frames).mean(axis=0) for frames in added]).astype(np.float32)
