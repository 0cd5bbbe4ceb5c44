"""A training corpus with planted ground truth: speech, expression and emotional-talking clips
made from known blendshapes, so learning can be checked against the truth it should recover.

The planted model is any `BlendshapeModel` whose speech blendshapes are the synthesizer's
visemes (the demo model is). Every clip's motion is exactly ΔV = B_A·w_A + B_E·w_E with known
weights:
- *speech* clips (VOCASET-like, neutral talking): w_A follows the phoneme timings of the
  built-in synthesizer's audio; w_E is planted secondary motion (small brow and cheek
  movements while talking) with peak `secondary`;
- *expression* clips (Florence-like, silent): onset–apex–offset of one emotion (its profile,
  jittered per clip) or one posed blendshape, so that together they span every expression
  blendshape; w_A is planted secondary lip motion with peak `secondary`;
- *emotional* clips (talking under an emotion at a constant intensity): the emotion reshapes
  the mouth while talking (a planted speaking style), adds its speech profile (the jaw drop,
  lip stretch or pressed lips it makes, held through speech and pauses) and its expression
  swells with loudness, which the speech generator and the correlation module should learn;
- *espeak* clips (optional, `EspeakSpec`): neutral talking spoken by espeak-ng in many languages
  and voices, w_A following its reported phoneme timings (`models.learning.espeak_corpus`), w_E
  planted secondary motion as in the speech clips. They join the speech clips.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from common.atomic import atomic_write
from common.errors import InputError
from models.audio.sources import Audio
from models.audio.synth_voice import (
    SPEECH_NAMES,
    VOICES,
    random_utterance,
    synthesize,
    viseme_weights,
)
from models.learning.datasets import MeshSequence, write_florence, write_vocaset
from models.learning.espeak_corpus import EspeakSpec, espeak_clips
from models.rig.blendshapes import BlendshapeModel

# how each emotion reshapes the visemes while talking: factors at intensity 1 on
# (jaw_open, lips_wide, lips_round, lips_closed)
SPEAKING_STYLE = {
    "happy": (1.0, 1.35, 0.8, 1.0),
    "sad": (0.7, 0.85, 1.0, 1.0),
    "angry": (1.2, 1.1, 0.85, 1.2),
    "surprised": (1.25, 0.9, 1.1, 0.9),
    "fearful": (0.9, 1.25, 0.9, 1.0),
    "disgusted": (0.85, 1.0, 0.8, 1.1),
    "contempt": (0.85, 1.1, 0.9, 1.0),
}


@dataclass(frozen=True)
class CorpusSpec:
    """Sizes and knobs of a synthetic corpus; the same spec and seed give the same corpus."""

    speech_clips: int = 24
    expression_repeats: int = 3  # clips per emotion; every blendshape is also posed once
    emotional_repeats: int = 6  # emotional-talking clips per emotion
    speech_seconds: float = 3.0
    expression_seconds: float = 2.0
    secondary: float = 0.05  # peak of the planted expression weights in speech clips ...
    lip_secondary: float = 0.0  # ... and of the planted speech weights in expression clips
    fps: float = 30.0
    sample_rate: int = 16000
    seed: int = 0


@dataclass
class PlantedCorpus:
    """The clips with the planted model and weights that made them."""

    planted: BlendshapeModel
    speech: list[MeshSequence] = field(default_factory=list)
    expression: list[MeshSequence] = field(default_factory=list)
    emotional: list[MeshSequence] = field(default_factory=list)
    truth: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # name → (w_A, w_E)
    phonemes: dict[str, tuple[tuple[str, float, float], ...]] = field(default_factory=dict)  # espeak clips' IPA


def planted_model(model: BlendshapeModel, distinct: float = 0.5) -> BlendshapeModel:
    """`model` without the expression blendshapes that are mostly speech motion, whose part in
    each emotion moves to its speech profile instead.

    No data can tell which set a direction shared by both belongs to, so recovery is only
    well-posed when the planted subspaces meet at 0: an expression blendshape keeps its place
    if more than `distinct` of its norm lies outside the speech subspace (on the demo model
    this drops lip_stretch, jaw_drop and lips_press, which repeat lips_wide, jaw_open and
    lips_closed). What the dropped ones did in each emotion (fear's lip stretch and jaw drop,
    anger's pressed lips) becomes `emotion_speech_profiles`: its least-squares weights on the
    speech blendshapes, added to whatever the face says under that emotion."""
    speech = model.speech_basis.reshape(len(model.speech_names), -1).T.astype(np.float64)
    expression = model.expression_basis.reshape(len(model.expression_names), -1).T.astype(np.float64)
    q, _ = np.linalg.qr(speech)
    outside = expression - q @ (q.T @ expression)
    keep = np.linalg.norm(outside, axis=0) > distinct * np.linalg.norm(expression, axis=0)
    dropped = model.emotion_profiles[:, ~keep].astype(np.float64) @ expression[:, ~keep].T  # (E, 3V)
    moved = np.linalg.lstsq(speech, dropped.T, rcond=None)[0].T
    return replace(
        model,
        expression_names=tuple(n for n, k in zip(model.expression_names, keep) if k),
        expression_basis=model.expression_basis[keep],
        expression_to_flame=model.expression_to_flame[keep],
        expression_mapping_error=model.expression_mapping_error[keep],
        emotion_profiles=model.emotion_profiles[:, keep],
        emotion_speech_profiles=(model.emotion_speech_profiles + moved).astype(np.float32),
    )


def check_planted(planted: BlendshapeModel) -> None:
    """The planted speech blendshapes must be the synthesizer's visemes, in its order."""
    if planted.speech_names != SPEECH_NAMES:
        raise InputError(
            f"synthetic corpus: the planted model's speech blendshapes {list(planted.speech_names)} "
            f"are not the synthesizer's visemes {list(SPEECH_NAMES)}"
        )


def make_corpus(planted: BlendshapeModel, spec: CorpusSpec = CorpusSpec(),
                espeak: EspeakSpec | None = None) -> PlantedCorpus:
    """Generate every clip of `spec` (and of `espeak`) from `planted` (deterministic under the seeds)."""
    check_planted(planted)
    rng = np.random.default_rng(spec.seed)
    corpus = PlantedCorpus(planted=planted)
    for k in range(spec.speech_clips):
        speech, audio = _talking(rng, spec)
        frames = len(speech)
        expression = spec.secondary * _secondary(rng, frames, len(planted.expression_names), spec.fps)
        _add(corpus, corpus.speech, f"SynthSpeaker{k % len(VOICES):02d}/sentence{k:03d}", speech, expression,
             spec, audio=audio)
    for label, profile in _expression_targets(planted, spec.expression_repeats, rng):
        frames = int(round(spec.expression_seconds * spec.fps))
        expression = _onset_apex_offset(rng, frames)[:, None] * profile
        speech = spec.lip_secondary * _secondary(rng, frames, len(planted.speech_names), spec.fps)
        name = f"SynthFace/{label[0].upper() + label[1:]}_{len(corpus.expression):03d}"
        _add(corpus, corpus.expression, name, speech, expression, spec, emotion=label if label in planted.emotion_names else None)
    for e, emotion in enumerate(planted.emotion_names):
        for r in range(spec.emotional_repeats):
            intensity = float(rng.uniform(0.5, 1.0))
            speech, audio = _talking(rng, spec)
            style = np.asarray(SPEAKING_STYLE.get(emotion, (1.0,) * len(SPEECH_NAMES)), np.float32)
            speech = speech * (1.0 + intensity * (style - 1.0)) + intensity * planted.emotion_speech_profiles[e]
            swell = 0.75 + 0.5 * _smooth(speech[:, 0], int(round(0.3 * spec.fps)))
            expression = intensity * swell[:, None] * planted.emotion_profiles[e]
            name = f"SynthSpeaker{r % len(VOICES):02d}/{emotion}_{r:02d}"
            _add(corpus, corpus.emotional, name, speech, expression, spec, audio=audio,
                 emotion=emotion, intensity=intensity)
    if espeak is not None:
        add_espeak(corpus, espeak, spec)
    return corpus


def add_espeak(corpus: PlantedCorpus, espeak: EspeakSpec, spec: CorpusSpec = CorpusSpec()) -> PlantedCorpus:
    """Add espeak-ng talking clips (`spec.speech_seconds` long) to the corpus's speech clips, with
    planted secondary expression motion of peak `spec.secondary` (seeded by `espeak.seed`)."""
    check_planted(corpus.planted)
    rng = np.random.default_rng([espeak.seed, 1])
    for clip in espeak_clips(espeak, spec.speech_seconds, spec.fps):
        expression = spec.secondary * _secondary(rng, len(clip.visemes), len(corpus.planted.expression_names), spec.fps)
        _add(corpus, corpus.speech, clip.name, clip.visemes, expression, spec, audio=clip.audio)
        corpus.phonemes[clip.name] = clip.phonemes
    return corpus


def _add(corpus: PlantedCorpus, group: list[MeshSequence], name: str, speech: np.ndarray,
         expression: np.ndarray, spec: CorpusSpec, **labels) -> None:
    """Make the clip's vertices from its weights and file it with its truth."""
    speech, expression = speech.astype(np.float32), expression.astype(np.float32)
    motion = corpus.planted.displacements(speech, expression)
    template = corpus.planted.template
    group.append(MeshSequence(name=name, vertices=template + motion, template=template, fps=spec.fps, **labels))
    corpus.truth[name] = (speech, expression)


def _talking(rng: np.random.Generator, spec: CorpusSpec) -> tuple[np.ndarray, Audio]:
    """Viseme weights and synthesized audio of one random utterance."""
    utterance = random_utterance(rng, spec.speech_seconds, rate=float(rng.uniform(0.85, 1.15)))
    voice = VOICES[int(rng.integers(len(VOICES)))]
    samples = synthesize(utterance, voice, spec.sample_rate, seed=int(rng.integers(2**31)))
    frames = int(round(spec.speech_seconds * spec.fps))
    return viseme_weights(utterance, spec.fps, frames), Audio(samples, spec.sample_rate)


def _expression_targets(planted: BlendshapeModel, repeats: int, rng: np.random.Generator):
    """(label, apex weights): jittered emotion profiles, then each blendshape posed alone
    (labelled `pose_<name>`, like Florence's non-emotion expressions)."""
    targets = []
    for e, emotion in enumerate(planted.emotion_names):
        for _ in range(repeats):
            jitter = rng.uniform(0.7, 1.3, planted.emotion_profiles.shape[1])
            extra = rng.uniform(0.0, 0.15, planted.emotion_profiles.shape[1])
            targets.append((emotion, planted.emotion_profiles[e] * jitter + extra * (rng.random(len(extra)) < 0.3)))
    for k, name in enumerate(planted.expression_names):
        targets.append((f"pose_{name}", np.eye(len(planted.expression_names))[k] * rng.uniform(0.7, 1.0)))
    return targets


def _onset_apex_offset(rng: np.random.Generator, frames: int) -> np.ndarray:
    """0 → 1 → 0 with smoothstep ramps at random onset and offset times."""
    t = np.linspace(0.0, 1.0, frames)
    on = rng.uniform(0.05, 0.2), rng.uniform(0.3, 0.45)
    off = rng.uniform(0.6, 0.75), rng.uniform(0.85, 1.0)
    return _smoothstep((t - on[0]) / (on[1] - on[0])) * (1.0 - _smoothstep((t - off[0]) / (off[1] - off[0])))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _secondary(rng: np.random.Generator, frames: int, count: int, fps: float) -> np.ndarray:
    """Slow non-negative motion in [0, 1] on a random third of `count` blendshapes."""
    knots = max(2, int(frames / fps * 2.0) + 2)  # about two movements a second
    out = np.zeros((frames, count), np.float32)
    grid = np.linspace(0.0, knots - 1.0, frames)
    for k in rng.choice(count, size=max(1, count // 3), replace=False):
        values = rng.random(knots) * (rng.random(knots) < 0.6)
        out[:, k] = np.interp(grid, np.arange(knots), values)
    return _smooth(out, max(1, int(round(0.1 * fps))))


def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Moving average over `width` frames along time, edges held."""
    if width <= 1:
        return values
    kernel = np.ones(width) / width
    pad = [(width // 2, width - 1 - width // 2)] + [(0, 0)] * (values.ndim - 1)
    padded = np.pad(values, pad, mode="edge")
    return np.apply_along_axis(lambda column: np.convolve(column, kernel, mode="valid"), 0, padded).astype(np.float32)


def write_corpus(corpus: PlantedCorpus, directory: str | os.PathLike, faces: np.ndarray | None = None) -> None:
    """Write the corpus in the published layouts so training reads it like real data:
    `vocaset/` (speech and emotional talking, with `labels.csv`), `florence/` (expression
    clips), `planted.npz` (the planted model) and `truth.npz` (every clip's planted weights)."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    write_vocaset(root / "vocaset", corpus.speech + corpus.emotional, fps=corpus.speech[0].fps if corpus.speech else 30.0)
    write_florence(root / "florence", corpus.expression, faces=faces)
    corpus.planted.save(root / "planted.npz")
    arrays = {}
    for name, (speech, expression) in corpus.truth.items():
        arrays[f"{name}|speech"], arrays[f"{name}|expression"] = speech, expression
    atomic_write(root / "truth.npz", lambda handle: np.savez(handle, **arrays))
