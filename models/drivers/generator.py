"""CSTalk-style speech/emotion generator: audio → per-frame speech and expression weights.

Audio features (a log-mel front-end, or a frozen local wav2vec2) are resampled to exactly
T = round(fps · duration) frames, so one model serves any frame rate. A non-causal dilated TCN
decodes them; the emotion enters EVERY layer as e(t) = c(t) · Emb from per-frame intensities
c(t), so emotion keyframes act frame by frame at inference and neutral (c = 0) is one model
with the emotional ones. Training lives in `models.learning.generator_training`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.errors import InputError, error_detail
from common.files import read_json_file
from models.audio.sources import AudioSource, Resampled, chunks
from models.drivers.checkpoint import (
    CONFIG_FILE,
    check_architecture,
    load_checkpoint,
    restore,
    save_checkpoint,
)
from models.drivers.contract import clip_frames, frame_range
from models.rig.blendshapes import BlendshapeModel

KIND = "speech-generator"
FRONT_ENDS = ("mel", "wav2vec2")
SAMPLE_RATE = 16000  # both front-ends analyse 16 kHz audio (wav2vec2 was trained on it)
_MEL_WINDOW = 400  # 25 ms
_MEL_HOP = 160  # 10 ms: the mel front-end runs at 100 Hz
_MEL_FFT = 512
_WAV2VEC2_CHUNK_S = 20.0  # attention memory grows with the square of the length: long clips go in chunks
_WAV2VEC2_CONTEXT_S = 2.0  # audio each side of a chunk that its frames still see
_ANALYSIS_FRAMES = 1024  # native frames analysed at once (10 s of mel): bounds memory on long clips
_GENERATE_FRAMES = 2048  # video frames decoded at once, plus the TCN's reach each side
_FEATURE_CACHE = 8  # windows of features a clip keeps, so a slider move reruns only the decoder
_MAX_SETTINGS = {"width": 2048, "layers": 16, "kernel": 31, "emotion_dim": 1024, "mel_bands": 256}
_MAX_NAMES = 1024

"""auxiliary(pred_w [B,T,K], target_w [B,T,K], emotion [B,T,E]) → a scalar added to the loss."""


def _names(key: str, value: Sequence[str]) -> tuple[str, ...]:
    names = tuple(value)
    valid = all(isinstance(name, str) and 0 < len(name) <= 256 for name in names) and len(set(names)) == len(names)
    valid = valid and len(names) <= _MAX_NAMES
    if isinstance(value, str) or not valid:  # a bare string is not a list of names
        raise InputError(f"generator config: {key} must be distinct non-empty strings, got {value!r}")
    return names


def _setting(key: str, value: object) -> None:
    """A positive integer within its bound: a config file must not make us build a network of
    any size it likes."""
    limit = _MAX_SETTINGS[key]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise InputError(f"generator config: {key} {value!r} is not an integer in 1..{limit}")


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
        for key in _MAX_SETTINGS:
            _setting(key, getattr(self, key))
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


def _source_positions(native: int, frames: int, start: int, stop: int) -> torch.Tensor:
    """Where output frames start..stop-1 sample a native-rate sequence under
    F.interpolate(size=frames, mode="linear", align_corners=False)."""
    scale = native / frames
    return ((torch.arange(start, stop, dtype=torch.float64) + 0.5) * scale - 0.5).clamp(min=0.0)


def _sample_rows(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rows of x [N, C] linearly interpolated at fractional `positions` (clamped at the end)."""
    lo = positions.floor().long().clamp(max=len(x) - 1)
    hi = (lo + 1).clamp(max=len(x) - 1)
    frac = (positions - lo).to(x.dtype)[:, None]
    return x[lo] + frac * (x[hi] - x[lo])


class _FrontEnd(nn.Module):
    """A frozen analysis at a native frame rate, a trainable encoder at that rate, and linear
    resampling to the video frames. The analysis is normalised per clip: `statistics` reads the
    clip once, then `analyse` computes any range of native frames on its own, equal to the same
    rows of the whole clip's analysis."""

    margin = 0  # native frames each side of a frame that `encode` reads

    def native_frames(self, samples: int) -> int:
        """How many native frames `samples` samples at 16 kHz make."""
        raise NotImplementedError

    def statistics(self, signal: AudioSource) -> tuple[torch.Tensor, torch.Tensor]:
        """The clip's normalisation (mean, std), streaming through it once."""
        raise NotImplementedError

    def analyse(self, signal: AudioSource, stats: tuple[torch.Tensor, torch.Tensor], first: int, last: int) -> torch.Tensor:
        """Native frames first..last-1 [last - first, C] of a 16 kHz signal (no trainable part)."""
        raise NotImplementedError

    def encode(self, analysed: torch.Tensor) -> torch.Tensor:
        """[N, C] → [N, width] (trainable)."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Load what the analysis needs, so a problem shows when a model is loaded."""

    def span(self, native: int, frames: int, start: int, stop: int) -> tuple[torch.Tensor, int, int]:
        """Positions of output frames start..stop-1 and the native frames first..last-1 whose
        encoding they need (with the encoder's margin, so those rows are exact)."""
        positions = _source_positions(native, frames, start, stop)
        first = max(int(positions[0]) - self.margin, 0)
        last = min(int(positions[-1]) + 2 + self.margin, native)
        return positions, first, last

    def forward(self, analysed: torch.Tensor, frames: int, start: int = 0, length: int | None = None) -> torch.Tensor:
        """Frames [start, start + length) of the clip's `frames`-frame features [length, width],
        from its whole analysis. Only the native frames those rows need are encoded, so a training
        window costs what the window costs and still equals the same rows of the whole clip."""
        length = frames - start if length is None else length
        positions, first, last = self.span(len(analysed), frames, start, start + length)
        return _sample_rows(self.encode(analysed[first:last]), positions - first)


def _merge_moments(moments: tuple[int, torch.Tensor, torch.Tensor], x: torch.Tensor) -> tuple[int, torch.Tensor, torch.Tensor]:
    """(count, mean, sum of squared deviations) with the rows of `x` added (Chan et al.)."""
    count, mean, m2 = moments
    n = len(x)
    part_mean = x.mean(0)
    delta = part_mean - mean
    total = count + n
    return total, mean + delta * (n / total), m2 + ((x - part_mean) ** 2).sum(0) + delta**2 * (count * n / total)


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

    def native_frames(self, samples: int) -> int:
        return samples // _MEL_HOP + 1  # centred frames every hop, as torch.stft(center=True)

    def _log_mel(self, signal: AudioSource, first: int, last: int) -> torch.Tensor:
        """Unnormalised log-mel of native frames first..last-1; frame j is centred on sample
        j·hop, with silence outside the clip."""
        begin = first * _MEL_HOP - _MEL_FFT // 2
        segment = torch.from_numpy(signal.read(begin, (last - 1 - first) * _MEL_HOP + _MEL_FFT))
        spectrum = torch.stft(segment, _MEL_FFT, _MEL_HOP, _MEL_WINDOW, self.window, center=False, return_complex=True)
        return torch.log(spectrum.abs().square().T @ self.filters + 1e-6)

    def statistics(self, signal: AudioSource) -> tuple[torch.Tensor, torch.Tensor]:
        total = self.native_frames(signal.num_samples)
        moments = (0, torch.zeros(self.filters.shape[1], dtype=torch.float64), torch.zeros(self.filters.shape[1], dtype=torch.float64))
        for first in range(0, total, _ANALYSIS_FRAMES):
            moments = _merge_moments(moments, self._log_mel(signal, first, min(first + _ANALYSIS_FRAMES, total)).double())
        count, mean, m2 = moments
        return mean.float(), (m2 / count).sqrt().float()

    def analyse(self, signal: AudioSource, stats: tuple[torch.Tensor, torch.Tensor], first: int, last: int) -> torch.Tensor:
        mean, std = stats
        return (self._log_mel(signal, first, last) - mean) / (std + 1e-5)

    def encode(self, analysed: torch.Tensor) -> torch.Tensor:
        return self.conv(analysed.T[None])[0].T


class _FrozenWav2Vec2:
    """A pretrained Wav2Vec2Model kept out of our module tree: frozen, in eval mode, and never
    in our checkpoints (those store its directory). Its config is read at once (the hidden
    size shapes our projection); its weights when first needed, or by `load`."""

    def __init__(self, directory: str) -> None:
        if not Path(directory).is_dir():
            raise InputError(f"{directory}: wav2vec2 model directory does not exist")
        from transformers import (
            Wav2Vec2Config,  # a heavy import that only this front-end needs
        )

        self.directory = directory
        try:
            config = Wav2Vec2Config.from_dict(read_json_file(Path(directory) / "config.json", "wav2vec2 config"))
            self.hidden = int(config.hidden_size)
            self.stride = math.prod(config.conv_stride)
            kernels = config.conv_kernel
            self.field = 1 + sum((k - 1) * math.prod(config.conv_stride[:i]) for i, k in enumerate(kernels))
        except Exception as err:  # noqa: BLE001 - whatever a broken config raises, the folder is unusable
            raise InputError(f"{directory}: not a usable wav2vec2 model directory ({error_detail(err)})") from None
        if not (0 < self.hidden <= 8192 and 0 < self.stride <= SAMPLE_RATE and 0 < self.field <= 10 * SAMPLE_RATE):
            raise InputError(f"{directory}: wav2vec2 config sizes (hidden {self.hidden}, stride {self.stride}) are implausible")
        self._model = None
        self._chunks: dict[int, tuple[AudioSource, torch.Tensor]] = {}

    def load(self):
        """The model, loaded once; any problem with its files is one InputError."""
        if self._model is None:
            from transformers import Wav2Vec2Model

            try:
                # float32 whatever the file stores: half precision runs slowly or not at all on CPUs
                model = Wav2Vec2Model.from_pretrained(self.directory, local_files_only=True, dtype=torch.float32)
            except Exception as err:  # noqa: BLE001 - weights that refuse to load make the folder unusable
                raise InputError(f"{self.directory}: not a usable wav2vec2 model directory ({error_detail(err)})") from None
            self._model = model.eval().requires_grad_(False)
        return self._model

    def native_frames(self, samples: int) -> int:
        return (max(samples, self.field) - self.field) // self.stride + 1  # a few samples give one frame

    def statistics(self, signal: AudioSource) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of the samples, as Wav2Vec2FeatureExtractor normalises."""
        moments = (0, torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))
        for part in chunks(signal):
            moments = _merge_moments(moments, torch.from_numpy(part).double()[:, None])
        count, mean, m2 = moments
        return mean.float(), torch.sqrt(m2 / max(count, 1) + 1e-7).float()

    def analyse(self, signal: AudioSource, stats: tuple[torch.Tensor, torch.Tensor], first: int, last: int) -> torch.Tensor:
        """Last hidden states [last - first, hidden]: computed in fixed chunks with context each
        side (attention memory grows with the square of the length), the last two kept."""
        chunk = max(1, round(_WAV2VEC2_CHUNK_S * SAMPLE_RATE / self.stride))
        parts = []
        for begin in range(first // chunk * chunk, last, chunk):
            hidden = self._chunk(signal, stats, begin, chunk)
            parts.append(hidden[max(first, begin) - begin : min(last, begin + chunk) - begin])
        return torch.cat(parts)

    def _chunk(self, signal: AudioSource, stats: tuple[torch.Tensor, torch.Tensor], begin: int, chunk: int) -> torch.Tensor:
        cached = self._chunks.get(begin)
        if cached is not None and cached[0] is signal:
            return cached[1]
        native = self.native_frames(signal.num_samples)
        context = round(_WAV2VEC2_CONTEXT_S * SAMPLE_RATE / self.stride)
        first, last = max(begin - context, 0), min(begin + chunk + context, native)
        start, count = first * self.stride, (last - 1) * self.stride + self.field - first * self.stride
        mean, std = stats
        piece = (torch.from_numpy(signal.read(start, count)) - mean) / std
        piece[max(signal.num_samples - start, 0):] = 0.0  # past the clip: silence after normalising
        with torch.no_grad():
            hidden = self.load()(piece[None]).last_hidden_state[0]
        hidden = hidden[begin - first : begin - first + min(chunk, native - begin)]
        self._chunks = {key: value for key, value in self._chunks.items() if key == begin - chunk} | {begin: (signal, hidden)}
        return hidden


class Wav2Vec2FrontEnd(_FrontEnd):
    """A frozen local wav2vec2 (~50 Hz hidden states) and a trainable projection to the TCN width."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.wav2vec2 = _FrozenWav2Vec2(str(config.wav2vec2_dir))
        self.project = nn.Linear(self.wav2vec2.hidden, config.width)

    def native_frames(self, samples: int) -> int:
        return self.wav2vec2.native_frames(samples)

    def statistics(self, signal: AudioSource) -> tuple[torch.Tensor, torch.Tensor]:
        return self.wav2vec2.statistics(signal)

    def analyse(self, signal: AudioSource, stats: tuple[torch.Tensor, torch.Tensor], first: int, last: int) -> torch.Tensor:
        return self.wav2vec2.analyse(signal, stats, first, last)

    def prepare(self) -> None:
        self.wav2vec2.load()

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

    @property
    def radius(self) -> int:
        """Frames each side of a frame that its output depends on (the dilated convs' reach)."""
        return (self.config.kernel // 2) * (2**self.config.layers - 1)

    def analyse(self, audio: AudioSource) -> torch.Tensor:
        """The front-end's frozen analysis of a whole clip at any sample rate (no gradients)."""
        signal = Resampled(audio, SAMPLE_RATE)
        with torch.no_grad():
            return self.front.analyse(signal, self.front.statistics(signal), 0, self.front.native_frames(signal.num_samples))

    def forward(self, features: torch.Tensor, intensities: torch.Tensor) -> torch.Tensor:
        emotion = intensities @ self.emotion_table
        x = features.transpose(1, 2)
        for block in self.blocks:
            x = block(x, emotion)
        return self.head(x).transpose(1, 2)


class ClipFeatures:
    """A clip's front-end features [T, width], computed a window of rows at a time: only the
    per-clip normalisation needs the whole clip, and it is measured once, when this is made.
    The last few windows are kept, so rerunning the decoder (a slider move) costs no analysis."""

    def __init__(self, generator: SpeechGenerator, audio: AudioSource, frames: int) -> None:
        self.front, self.frames, self.width = generator.front, frames, generator.config.width
        self.signal = Resampled(audio, SAMPLE_RATE)
        self.native = self.front.native_frames(self.signal.num_samples)
        self.stats = self.front.statistics(self.signal) if frames else None
        self._windows: dict[tuple[int, int], torch.Tensor] = {}

    def __len__(self) -> int:
        return self.frames

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Features [stop - start, width] of frames start..stop-1, equal to those rows of the
        whole clip's features; analysed in groups of frames that span at most _ANALYSIS_FRAMES
        native frames (at a low frame rate, few frames span much audio)."""
        cached = self._windows.get((start, stop))
        if cached is not None:
            return cached
        per_frame = self.native / max(self.frames, 1)
        group = max(1, int((_ANALYSIS_FRAMES - 2 * self.front.margin - 2) / max(per_frame, 1e-9)))
        parts = []
        for first_frame in range(start, stop, group):
            positions, first, last = self.front.span(self.native, self.frames, first_frame, min(first_frame + group, stop))
            with torch.no_grad():
                encoded = self.front.encode(self.front.analyse(self.signal, self.stats, first, last))
            parts.append(_sample_rows(encoded, positions - first))
        rows = torch.cat(parts) if parts else torch.zeros(0, self.width)
        while len(self._windows) >= _FEATURE_CACHE:
            self._windows.pop(next(iter(self._windows)))
        self._windows[(start, stop)] = rows
        return rows


class LearnedDriver:
    """A trained generator as the app uses it: a `SpeechDriver` (`models.drivers.contract`) whose
    expression comes from the emotions through the network."""

    def __init__(self, generator: SpeechGenerator) -> None:
        self.generator = generator.eval()
        generator.front.prepare()
        config = generator.config
        self.speech_names = config.speech_names
        self.expression_names = config.expression_names
        self.emotion_names = config.emotion_names

    @classmethod
    def load(cls, directory: str | os.PathLike) -> LearnedDriver:
        """Read a speech-generator checkpoint; every problem is an InputError naming the file.
        The stored config is checked against the stored weights on a network without memory
        (the meta device) before the real one is built."""
        checkpoint = load_checkpoint(directory, KIND)
        source = str(Path(directory) / CONFIG_FILE)
        stored = checkpoint.config.get("generator")
        if not isinstance(stored, dict):
            raise InputError(f"{source}: no 'generator' settings")
        config = GeneratorConfig.from_dict(stored, source)
        with torch.device("meta"):
            check_architecture(SpeechGenerator(config), checkpoint, str(directory))
        generator = SpeechGenerator(config)
        restore(generator, checkpoint, str(directory))
        return cls(generator)

    def save(self, directory: str | os.PathLike) -> None:
        """Write a checkpoint that `load` reads (without training state)."""
        save_checkpoint(directory, KIND, {"generator": asdict(self.generator.config)}, self.generator)

    def analyse(self, audio: AudioSource, fps: float) -> ClipFeatures:
        """The clip's front-end features, T = round(duration · fps) rows; keep them per clip."""
        return ClipFeatures(self.generator, audio, clip_frames(audio, fps, "speech generator"))

    def weights(self, features: ClipFeatures, intensities: np.ndarray, start: int = 0,
                stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Speech [n, Ks] and expression [n, Ke] weights of frames start..stop-1 (default: all)
        under the clip's per-frame emotion intensities [T, E]. Decoded `_GENERATE_FRAMES` at a
        time with the network's reach each side, so the result equals decoding the whole clip
        at once while memory stays bounded."""
        if not isinstance(features, ClipFeatures) or features.width != self.generator.config.width:
            raise InputError("speech generator: features must come from this generator's analyse()")
        frames, ks = len(features), len(self.speech_names)
        stop = frame_range(frames, start, stop, "speech generator")
        c = np.asarray(intensities, dtype=np.float32)
        if c.shape != (frames, len(self.emotion_names)) or not np.isfinite(c).all():
            raise InputError(
                f"speech generator: emotion intensities must be finite of shape ({frames}, "
                f"{len(self.emotion_names)}), got {c.shape}"
            )
        parts = [np.zeros((0, ks + len(self.expression_names)), np.float32)]
        reach = self.generator.radius
        for first in range(start, stop, _GENERATE_FRAMES):
            last = min(first + _GENERATE_FRAMES, stop)
            lo, hi = max(first - reach, 0), min(last + reach, frames)
            with torch.no_grad():
                out = self.generator(features.rows(lo, hi)[None], torch.from_numpy(c[lo:hi])[None])[0]
            parts.append(out[first - lo : last - lo].numpy())
        out = np.concatenate(parts)
        return out[:, :ks].copy(), out[:, ks:].copy()

    def check_model(self, model: BlendshapeModel) -> None:
        """The generator must name exactly the model's blendshapes and emotions, in its order."""
        check_names(self.generator.config, model)


def check_names(config: GeneratorConfig, model: BlendshapeModel) -> None:
    for kind in ("speech_names", "expression_names", "emotion_names"):
        ours, theirs = getattr(config, kind), getattr(model, kind)
        if ours != theirs:
            raise InputError(
                f"the speech generator's {kind.replace('_', ' ')} [{', '.join(ours)}] differ from the "
                f"blendshape model's [{', '.join(theirs)}]"
            )
