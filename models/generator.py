"""CSTalk-style speech/emotion generator: audio → per-frame speech and expression weights.

Audio features (a log-mel front-end, or a frozen local wav2vec2) are resampled to exactly
T = round(fps · duration) frames, so one model serves any frame rate. A non-causal dilated TCN
decodes them; the emotion enters EVERY layer as e(t) = c(t) · Emb from per-frame intensities
c(t), so emotion keyframes act frame by frame at inference and neutral (c = 0) is one model
with the emotional ones. Training fits the blendshape model's own bases: its targets are the
least-squares weights of the captured displacements and its loss is their vertex error.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from models.audio import Audio, fit_length, resample
from models.blendshapes import BlendshapeModel
from models.checkpoint import CONFIG_FILE, load_checkpoint, restore, save_checkpoint
from models.datasets import MeshSequence
from models.errors import InputError
from models.speech import speech_input
from models.training import TrainingRun, train

KIND = "speech-generator"
FRONT_ENDS = ("mel", "wav2vec2")
SAMPLE_RATE = 16000  # both front-ends analyse 16 kHz audio (wav2vec2 was trained on it)
_MEL_WINDOW = 400  # 25 ms
_MEL_HOP = 160  # 10 ms: the mel front-end runs at 100 Hz
_MEL_FFT = 512
_WAV2VEC2_CHUNK_S = 20.0  # attention memory grows with the square of the length: long clips go in chunks
_WAV2VEC2_CONTEXT_S = 2.0  # audio each side of a chunk that its frames still see
_RIDGE = 1e-9  # of the mean squared basis norm; see _stacked_bases
_MM2_PER_M2 = 1e6  # the loss in mm²: readable, and its gradients stay well above Adam's epsilon

Auxiliary = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""auxiliary(pred_w [B,T,K], target_w [B,T,K], emotion [B,T,E]) → a scalar added to the loss."""


def _names(key: str, value: Sequence[str]) -> tuple[str, ...]:
    names = tuple(value)
    valid = all(isinstance(name, str) and name for name in names) and len(set(names)) == len(names)
    if isinstance(value, str) or not valid:  # a bare string is not a list of names
        raise InputError(f"generator config: {key} must be distinct non-empty strings, got {value!r}")
    return names


def _positive_int(key: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"generator config: {key} {value!r} is not a positive integer")


@dataclass(frozen=True)
class GeneratorConfig:
    """The generator's architecture; stored in its checkpoint (`asdict` is JSON-able)."""

    speech_names: tuple[str, ...]
    expression_names: tuple[str, ...]
    emotion_names: tuple[str, ...]  # the order of the intensities c(t); neutral = all zeros
    front_end: str = "mel"  # "mel" or "wav2vec2"
    wav2vec2_dir: str | None = None  # a local Wav2Vec2Model directory (save_pretrained layout)
    width: int = 96
    layers: int = 6  # residual TCN layers, dilations 1, 2, 4, ...
    kernel: int = 3
    emotion_dim: int = 32
    mel_bands: int = 80
    mel_fmin: float = 60.0
    mel_fmax: float = 7600.0

    def __post_init__(self) -> None:
        for key in ("speech_names", "expression_names", "emotion_names"):
            object.__setattr__(self, key, _names(key, getattr(self, key)))  # JSON gives lists
        if not self.speech_names:
            raise InputError("generator config: at least one speech blendshape is needed")
        shared = sorted(set(self.speech_names) & set(self.expression_names))
        if shared:
            raise InputError(f"generator config: names used for both speech and expression: {', '.join(shared)}")
        if self.front_end not in FRONT_ENDS:
            raise InputError(f"generator config: front end {self.front_end!r} is not one of {', '.join(FRONT_ENDS)}")
        if (self.front_end == "wav2vec2") != (self.wav2vec2_dir is not None):
            raise InputError("generator config: wav2vec2_dir is needed by, and only by, the wav2vec2 front end")
        if self.wav2vec2_dir is not None:
            object.__setattr__(self, "wav2vec2_dir", os.fspath(self.wav2vec2_dir))
        for key in ("width", "layers", "kernel", "emotion_dim", "mel_bands"):
            _positive_int(key, getattr(self, key))
        if self.kernel % 2 == 0:
            raise InputError(f"generator config: kernel {self.kernel} must be odd for 'same' padding")
        if not 0.0 <= self.mel_fmin < self.mel_fmax <= SAMPLE_RATE / 2:
            raise InputError(
                f"generator config: mel range {self.mel_fmin}–{self.mel_fmax} Hz is not within 0–{SAMPLE_RATE // 2} Hz"
            )

    @classmethod
    def for_model(cls, model: BlendshapeModel, **settings: object) -> GeneratorConfig:
        """A config whose names are the blendshape model's; `settings` are the other fields."""
        names = {"speech_names", "expression_names", "emotion_names"}
        return cls(**{key: getattr(model, key) for key in names}, **settings)

    @classmethod
    def from_dict(cls, data: dict, source: str) -> GeneratorConfig:
        """Parse a stored config; unknown or missing keys raise InputError naming `source`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"{source}: unknown generator setting(s) {', '.join(unknown)}")
        try:
            return cls(**data)
        except TypeError as err:  # a missing key, or a value of the wrong type
            raise InputError(f"{source}: invalid generator config ({err})") from None


def _hz_to_mel(hz: float) -> float:
    """The HTK mel scale."""
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def mel_filterbank(bands: int, n_fft: int, sample_rate: int, fmin: float, fmax: float) -> torch.Tensor:
    """[n_fft // 2 + 1, bands] triangular filters (peak 1) equally spaced on the HTK mel scale."""
    edges_mel = np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), bands + 2)
    edges = 700.0 * (10.0 ** (edges_mel / 2595.0) - 1.0)
    freqs = np.arange(n_fft // 2 + 1)[:, None] * sample_rate / n_fft
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    return torch.from_numpy(np.clip(np.minimum(rising, falling), 0.0, None).astype(np.float32))


def _source_positions(native: int, frames: int) -> torch.Tensor:
    """Where output frame i samples a native-rate sequence under
    F.interpolate(size=frames, mode="linear", align_corners=False)."""
    scale = native / frames
    return ((torch.arange(frames, dtype=torch.float64) + 0.5) * scale - 0.5).clamp(min=0.0)


def _sample_rows(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rows of x [N, C] linearly interpolated at fractional `positions` (clamped at the end)."""
    lo = positions.floor().long().clamp(max=len(x) - 1)
    hi = (lo + 1).clamp(max=len(x) - 1)
    frac = (positions - lo).to(x.dtype)[:, None]
    return x[lo] + frac * (x[hi] - x[lo])


class _FrontEnd(nn.Module):
    """A frozen analysis at a native frame rate, a trainable encoder at that rate, and linear
    resampling to the video frames."""

    margin = 0  # native frames each side of a frame that `encode` reads

    def analyse(self, samples: torch.Tensor) -> torch.Tensor:
        """[n] samples at 16 kHz → [N, C] native-rate features (no trainable part)."""
        raise NotImplementedError

    def encode(self, analysed: torch.Tensor) -> torch.Tensor:
        """[N, C] → [N, width] (trainable)."""
        raise NotImplementedError

    def forward(self, analysed: torch.Tensor, frames: int, start: int = 0, length: int | None = None) -> torch.Tensor:
        """Frames [start, start + length) of the clip's `frames`-frame features [length, width].

        Only the native frames those rows need are encoded, so a training window costs what the
        window costs and still equals the same rows of the whole clip's features.
        """
        length = frames - start if length is None else length
        positions = _source_positions(len(analysed), frames)[start : start + length]
        first = max(int(positions[0]) - self.margin, 0)
        last = min(int(positions[-1]) + 2 + self.margin, len(analysed))
        return _sample_rows(self.encode(analysed[first:last]), positions - first)


class MelFrontEnd(_FrontEnd):
    """Log-mel spectrogram (per-clip normalised) and a small conv stack at 100 Hz."""

    margin = 4  # two k=5 convs, each reading 2 frames each side

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.register_buffer("window", torch.hann_window(_MEL_WINDOW), persistent=False)
        filters = mel_filterbank(config.mel_bands, _MEL_FFT, SAMPLE_RATE, config.mel_fmin, config.mel_fmax)
        self.register_buffer("filters", filters, persistent=False)
        self.conv = nn.Sequential(
            nn.Conv1d(config.mel_bands, config.width, 5, padding=2),
            nn.GELU(),
            nn.Conv1d(config.width, config.width, 5, padding=2),
            nn.GELU(),
        )

    def analyse(self, samples: torch.Tensor) -> torch.Tensor:
        spectrum = torch.stft(
            samples, _MEL_FFT, _MEL_HOP, _MEL_WINDOW, self.window, center=True, pad_mode="constant",
            return_complex=True,
        )
        log_mel = torch.log(spectrum.abs().square().T @ self.filters + 1e-6)
        return (log_mel - log_mel.mean(0)) / (log_mel.std(0, correction=0) + 1e-5)

    def encode(self, analysed: torch.Tensor) -> torch.Tensor:
        return self.conv(analysed.T[None])[0].T


class _FrozenWav2Vec2:
    """A pretrained Wav2Vec2Model kept out of our module tree: frozen, in eval mode, and never
    in our checkpoints (those store its directory)."""

    def __init__(self, directory: str) -> None:
        if not Path(directory).is_dir():
            raise InputError(f"{directory}: wav2vec2 model directory does not exist")
        from transformers import Wav2Vec2Model  # a heavy import that only this front-end needs

        try:
            # float32 whatever the file stores: half-precision checkpoints run slowly or not at all on CPUs
            self.model = Wav2Vec2Model.from_pretrained(directory, local_files_only=True, dtype=torch.float32)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise InputError(f"{directory}: not a usable wav2vec2 model directory ({err})") from None
        self.model.eval().requires_grad_(False)
        config = self.model.config
        self.hidden = int(config.hidden_size)
        self.stride = math.prod(config.conv_stride)
        self.field = 1 + sum((k - 1) * math.prod(config.conv_stride[:i]) for i, k in enumerate(config.conv_kernel))

    def __call__(self, samples: torch.Tensor) -> torch.Tensor:
        """Last hidden state [N, hidden] of 16 kHz samples, normalised per clip as
        Wav2Vec2FeatureExtractor does; chunked, with context, on long clips."""
        x = (samples - samples.mean()) / torch.sqrt(samples.var(correction=0) + 1e-7)
        x = F.pad(x, (0, max(self.field - len(x), 0)))  # even a few samples give one frame
        native = (len(x) - self.field) // self.stride + 1
        chunk = max(1, round(_WAV2VEC2_CHUNK_S * SAMPLE_RATE / self.stride))
        context = round(_WAV2VEC2_CONTEXT_S * SAMPLE_RATE / self.stride)
        parts = []
        with torch.no_grad():
            for begin in range(0, native, chunk):
                first, last = max(begin - context, 0), min(begin + chunk + context, native)
                piece = x[first * self.stride : (last - 1) * self.stride + self.field]
                hidden = self.model(piece[None]).last_hidden_state[0]
                parts.append(hidden[begin - first : begin - first + min(chunk, native - begin)])
        return torch.cat(parts)


class Wav2Vec2FrontEnd(_FrontEnd):
    """A frozen local wav2vec2 (~50 Hz hidden states) and a trainable projection to the TCN width."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.wav2vec2 = _FrozenWav2Vec2(str(config.wav2vec2_dir))
        self.project = nn.Linear(self.wav2vec2.hidden, config.width)

    def analyse(self, samples: torch.Tensor) -> torch.Tensor:
        return self.wav2vec2(samples)

    def encode(self, analysed: torch.Tensor) -> torch.Tensor:
        return self.project(analysed)  # per frame, so it commutes with the resampling


class _Block(nn.Module):
    """Dilated residual conv layer; the emotion embedding is added before the nonlinearity."""

    def __init__(self, width: int, kernel: int, dilation: int, emotion_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(width, width, kernel, dilation=dilation, padding=dilation * (kernel // 2))
        self.emotion = nn.Linear(emotion_dim, width)
        self.mix = nn.Conv1d(width, width, 1)

    def forward(self, x: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
        return x + self.mix(F.gelu(self.conv(x) + self.emotion(emotion).transpose(1, 2)))


class SpeechGenerator(nn.Module):
    """Front-end features [B, T, width] and emotion intensities [B, T, E] → weights [B, T, Ks + Ke]."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        self.front = MelFrontEnd(config) if config.front_end == "mel" else Wav2Vec2FrontEnd(config)
        self.emotion_table = nn.Parameter(torch.randn(len(config.emotion_names), config.emotion_dim))
        self.blocks = nn.ModuleList(
            _Block(config.width, config.kernel, 2**i, config.emotion_dim) for i in range(config.layers)
        )
        self.head = nn.Conv1d(config.width, len(config.speech_names) + len(config.expression_names), 1)

    def analyse(self, audio: Audio) -> torch.Tensor:
        """The front-end's frozen analysis of a clip at any sample rate (no gradients)."""
        with torch.no_grad():
            return self.front.analyse(torch.from_numpy(resample(audio, SAMPLE_RATE).samples))

    def forward(self, features: torch.Tensor, intensities: torch.Tensor) -> torch.Tensor:
        emotion = intensities @ self.emotion_table
        x = features.transpose(1, 2)
        for block in self.blocks:
            x = block(x, emotion)
        return self.head(x).transpose(1, 2)


class LearnedDriver:
    """A trained generator as the app uses it: a `SpeechDriver`, plus emotion-driven expression."""

    def __init__(self, generator: SpeechGenerator) -> None:
        self.generator = generator.eval()
        config = generator.config
        self.speech_names = config.speech_names
        self.expression_names = config.expression_names
        self.emotion_names = config.emotion_names

    @classmethod
    def load(cls, directory: str | os.PathLike) -> LearnedDriver:
        """Read a speech-generator checkpoint; every problem is an InputError naming the file."""
        checkpoint = load_checkpoint(directory, KIND)
        source = str(Path(directory) / CONFIG_FILE)
        stored = checkpoint.config.get("generator")
        if not isinstance(stored, dict):
            raise InputError(f"{source}: no 'generator' settings")
        generator = SpeechGenerator(GeneratorConfig.from_dict(stored, source))
        restore(generator, checkpoint, str(directory))
        return cls(generator)

    def save(self, directory: str | os.PathLike) -> None:
        """Write a checkpoint that `load` reads (without training state)."""
        save_checkpoint(directory, KIND, {"generator": asdict(self.generator.config)}, self.generator)

    def features(self, audio: np.ndarray, sample_rate: int, fps: float) -> torch.Tensor:
        """Front-end features [T, width], T = round(duration · fps); cache them per clip."""
        samples, frames = speech_input(audio, sample_rate, fps, "speech generator")
        if frames == 0:
            return torch.zeros(0, self.generator.config.width)
        analysed = self.generator.analyse(Audio(samples, int(sample_rate)))
        with torch.no_grad():
            return self.generator.front(analysed, frames)

    def generate(self, features: torch.Tensor, intensities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Speech [T, Ks] and expression [T, Ke] weights under per-frame emotion intensities [T, E]."""
        width = self.generator.config.width
        if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[1] != width:
            raise InputError(f"speech generator: features must be a [T, {width}] tensor from features()")
        frames, ks = len(features), len(self.speech_names)
        c = np.asarray(intensities, dtype=np.float32)
        if c.shape != (frames, len(self.emotion_names)) or not np.isfinite(c).all():
            raise InputError(
                f"speech generator: emotion intensities must be finite of shape ({frames}, "
                f"{len(self.emotion_names)}), got {c.shape}"
            )
        if frames == 0:
            return np.zeros((0, ks), np.float32), np.zeros((0, len(self.expression_names)), np.float32)
        with torch.no_grad():
            out = self.generator(features[None], torch.from_numpy(c)[None])[0].numpy()
        return out[:, :ks].copy(), out[:, ks:].copy()

    def weights(self, audio: np.ndarray, sample_rate: int, fps: float) -> np.ndarray:
        """The `SpeechDriver` interface: speech weights [T, Ks] with a neutral emotion."""
        features = self.features(audio, sample_rate, fps)
        return self.generate(features, np.zeros((len(features), len(self.emotion_names)), np.float32))[0]

    def check_model(self, model: BlendshapeModel) -> None:
        """The generator must name exactly the model's blendshapes and emotions, in its order."""
        _check_names(self.generator.config, model)


def _check_names(config: GeneratorConfig, model: BlendshapeModel) -> None:
    for kind in ("speech_names", "expression_names", "emotion_names"):
        ours, theirs = getattr(config, kind), getattr(model, kind)
        if ours != theirs:
            raise InputError(
                f"the speech generator's {kind.replace('_', ' ')} [{', '.join(ours)}] differ from the "
                f"blendshape model's [{', '.join(theirs)}]"
            )


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
) -> LearnedDriver:
    """Train a generator on talking (and emotional, and silent) sequences of `model`'s topology.

    `run` (kind "speech-generator") gives steps, seed, checkpoint directory and resume; its config
    gains the generator config ("generator") and these training settings ("training"), so its
    checkpoints load with `LearnedDriver.load`. Sequences without audio count as silence; their
    emotion label (None = neutral) at their intensity is c(t). Batches are random windows of
    `window_s` seconds (or the shortest sequence, if shorter) from random sequences; the loss is
    the mean squared vertex error in mm², plus `auxiliary` if given.
    """
    if run.kind != KIND:
        raise InputError(f"speech generator: the training run's kind is {run.kind!r}, expected {KIND!r}")
    if not (window_s > 0 and lr > 0):
        raise InputError(f"speech generator: window_s {window_s} and lr {lr} must be positive")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InputError(f"speech generator: batch {batch!r} is not a positive integer")
    _check_names(config, model)
    fps = _check_sequences(sequences, model)
    torch.manual_seed(run.seed)  # the initial weights follow the run's seed
    generator = SpeechGenerator(config)
    bases, gram = _stacked_bases(model)
    examples = _examples(sequences, model, generator, bases, gram, run.progress)
    window = max(1, min(int(round(window_s * fps)), *(e.frames for e in examples)))
    loss_gram = torch.from_numpy(gram.astype(np.float32))
    scale = _MM2_PER_M2 / model.template.size  # mean over the 3V vertex coordinates, in mm²

    aux_name = None if auxiliary is None else getattr(auxiliary, "__qualname__", type(auxiliary).__qualname__)
    training = {"window_s": window_s, "batch": batch, "lr": lr, "auxiliary": aux_name}
    run = replace(run, config={**run.config, "generator": asdict(config), "training": training})

    def step(_: int, rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        features, targets, emotions = [], [], []
        for pick in rng.integers(len(examples), size=batch):
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
        if auxiliary is not None:
            extra = auxiliary(pred, target, emotion)
            loss = loss + extra
            shown["auxiliary"] = extra.item()
        return loss, shown

    optimizer = torch.optim.Adam(generator.parameters(), lr=lr)
    train(run, generator, optimizer, step)
    return LearnedDriver(generator)
