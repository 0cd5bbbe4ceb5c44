"""Weights fixed in advance (a weights file, a still, the signal driver's analysis) read as a
driver reads its features: the speech as recorded (plus what the emotions move along the speech
blendshapes), the expression from the emotions."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from common.errors import InputError
from models.drivers.contract import frame_range
from models.rig.blendshapes import BlendshapeModel


@dataclass(frozen=True)
class RecordedWeights:
    """Per-frame speech weights (T, Ks), and expression weights (T, Ke) added on top of the
    emotions' (None: the emotions alone)."""

    speech: np.ndarray
    expression: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.speech)

    @classmethod
    def silent(cls, frames: int, speech_names: Sequence[str]) -> RecordedWeights:
        """No speech for `frames` frames: a still or a FLAME-motion clip."""
        return cls(np.zeros((frames, len(speech_names)), np.float32))


class RecordedDriver:
    """Reads `RecordedWeights`: the expression is the blendshape model's emotion profiles mixed by
    the intensities (none without a model), plus the recorded expression; the speech is the
    recorded speech plus the model's emotion speech profiles mixed the same way."""

    def __init__(self, speech_names: Sequence[str], model: BlendshapeModel | None = None) -> None:
        self.speech_names = tuple(speech_names)
        if len(set(self.speech_names)) != len(self.speech_names):
            raise InputError(f"speech driver: duplicate speech names in {list(self.speech_names)}")
        self.model = model
        self.emotion_names = model.emotion_names if model is not None else ()

    @classmethod
    def for_model(cls, model: BlendshapeModel) -> RecordedDriver:
        return cls(model.speech_names, model)

    def weights(self, features: RecordedWeights, intensities: np.ndarray, start: int = 0,
                stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The `WeightReader` contract (see `models.drivers.contract`)."""
        if not isinstance(features, RecordedWeights):
            raise InputError("speech driver: features must come from this driver's analyse()")
        stop = frame_range(len(features), start, stop, "speech driver")
        frames = stop - start
        speech = features.speech[start:stop]
        if self.model is None:
            expression = np.zeros((frames, 0), np.float32)
        else:
            mix = np.asarray(intensities)[start:stop]
            expression = self.model.expression_weights(mix, frames)
            speech = speech + self.model.emotion_speech_weights(mix, frames)
        if features.expression is not None:
            expression = expression + features.expression[start:stop]
        return speech, expression
