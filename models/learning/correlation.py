"""CSTalk-style correlation module: how facial regions move together under each emotion.

CSTalk (Liang et al. 2024, arXiv 2404.18604) models the correlation among facial regions with
transformer encoders, trains it first, then uses it to supervise the speech-driven generator.
Here every region (mouth, jaw, cheeks, brows, eyes, ...) of every frame is one token, and each
frame adds one emotion token (from its intensities c(t); neutral is c = 0). The summaries of the
paper we could read do not spell out its training objective, so ours is this: a transformer
encoder over the tokens of a short window learns

* masked-region modelling: rebuild the displacements of regions hidden from it out of the other
  regions under the given emotion, so it must learn *emotion-specific* inter-region correlation;
* emotion recognition: name the emotion from the motion alone (the emotion token withheld).

Frozen, it becomes `CorrelationLoss` for the generator. Everything is in blendshape-weight
space: region displacements are linear in the weights (`RegionProjector`), so the loss is one
matrix product away from the generator's output and differentiable in it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.errors import InputError
from models.drivers.checkpoint import CONFIG_FILE, load_checkpoint, restore
from models.learning.training import TrainingRun, train

KIND = "correlation"
_SCALE_FLOOR = 1e-3  # a region that barely moves is scaled as if it moved this share of the most


@dataclass(frozen=True)
class CorrelationConfig:
    """Architecture and training settings; stored in checkpoints (JSON via `asdict`).

    `region_names`, `emotion_names` and `region_sizes` (vertices per region) describe the data;
    `train_correlation` fills them in from its arguments.
    """

    region_names: tuple[str, ...] = ()
    emotion_names: tuple[str, ...] = ()
    region_sizes: tuple[int, ...] = ()
    token_dim: int = 64
    layers: int = 2
    heads: int = 4
    window: int = 8  # frames attended together
    mask_ratio: float = 0.4  # chance that a region is hidden in a training window
    emotion_dropout: float = 0.3  # share of training windows whose emotion is withheld
    recognition_weight: float = 0.1
    batch_size: int = 32  # windows per step
    learning_rate: float = 1e-3

    def __post_init__(self) -> None:
        for key in ("region_names", "emotion_names", "region_sizes"):
            object.__setattr__(self, key, tuple(getattr(self, key)))
        for key in ("token_dim", "layers", "heads", "window", "batch_size"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"correlation config: {key} {value!r} is not a positive integer")
        if self.token_dim % self.heads:
            raise InputError(f"correlation config: token_dim {self.token_dim} is not a multiple of heads {self.heads}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise InputError(f"correlation config: mask_ratio {self.mask_ratio} is not in (0, 1)")
        if not 0.0 <= self.emotion_dropout < 1.0:
            raise InputError(f"correlation config: emotion_dropout {self.emotion_dropout} is not in [0, 1)")
        if not (self.recognition_weight >= 0.0 and self.learning_rate > 0.0):
            raise InputError("correlation config: recognition_weight must be >= 0 and learning_rate > 0")
        for key in ("region_names", "emotion_names"):
            names = getattr(self, key)
            if not all(isinstance(name, str) and name for name in names) or len(set(names)) != len(names):
                raise InputError(f"correlation config: {key} must be distinct non-empty strings")

    def check_complete(self) -> None:
        """A module needs the data's description: >= 2 regions with sizes, >= 1 emotion."""
        if len(self.region_names) < 2:
            raise InputError("correlation config: needs at least two regions to correlate")
        if not self.emotion_names:
            raise InputError("correlation config: needs at least one emotion")
        if len(self.region_sizes) != len(self.region_names) or min(self.region_sizes) < 1:
            raise InputError("correlation config: region_sizes must give a positive vertex count per region")


def _region_indices(region_masks: np.ndarray, region_names: Sequence[str], vertices: int) -> list[np.ndarray]:
    """Vertex indices of each region, after checking the masks are (R, V) and 0/1."""
    masks = np.asarray(region_masks)
    if masks.shape != (len(region_names), vertices):
        raise InputError(
            f"region masks have shape {masks.shape}, expected ({len(region_names)}, {vertices}) "
            f"for regions {', '.join(region_names)}"
        )
    if masks.dtype.kind not in "biuf" or not np.isin(masks, (0, 1)).all():
        raise InputError("region masks must hold only 0 and 1")
    empty = [name for name, row in zip(region_names, masks) if not row.any()]
    if empty:
        raise InputError(f"region(s) without vertices: {', '.join(empty)}")
    return [np.flatnonzero(row) for row in masks]


def _bases(bases: np.ndarray) -> np.ndarray:
    """The stacked blendshapes (K, V, 3) as finite float32."""
    array = np.asarray(bases)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype.kind not in "fiu":
        raise InputError(f"blendshape bases must be a numeric (K, V, 3) array, got {array.dtype} {array.shape}")
    if not np.isfinite(array).all():
        raise InputError("blendshape bases contain NaN or infinite values")
    return array.astype(np.float32)


class RegionProjector(nn.Module):
    """Region displacements straight from weights: region_r(w) = w @ B[:, mask_r], all regions
    packed side by side (region r's vertices in index order, xyz interleaved) in one product."""

    def __init__(self, bases: np.ndarray, region_masks: np.ndarray, region_names: Sequence[str]) -> None:
        super().__init__()
        basis = _bases(bases)
        indices = _region_indices(region_masks, region_names, basis.shape[1])
        self.region_sizes = tuple(len(index) for index in indices)
        packed = np.concatenate([basis[:, index].reshape(len(basis), -1) for index in indices], axis=1)
        self.register_buffer("packed", torch.from_numpy(packed))  # (K, P), P = 3 * sum(sizes)

    def blocks(self) -> tuple[torch.Tensor, ...]:
        """Per-region maps B[:, mask_r] flattened to (K, 3 n_r)."""
        return torch.split(self.packed, [3 * size for size in self.region_sizes], dim=1)

    def forward(self, weights: torch.Tensor) -> torch.Tensor:
        """(..., K) weights -> (..., P) packed region displacements."""
        if weights.shape[-1] != self.packed.shape[0]:
            raise InputError(f"weights have {weights.shape[-1]} blendshapes, the bases {self.packed.shape[0]}")
        return weights @ self.packed


class CorrelationModule(nn.Module):
    """Transformer encoder over region tokens and emotion tokens of a window of frames."""

    def __init__(self, config: CorrelationConfig) -> None:
        super().__init__()
        config.check_complete()
        self.config = config
        d, regions = config.token_dim, len(config.region_names)
        self.widths = [3 * size for size in config.region_sizes]
        self.region_in = nn.ModuleList(nn.Linear(width, d) for width in self.widths)
        self.region_out = nn.ModuleList(nn.Linear(d, width) for width in self.widths)
        self.emotion_in = nn.Linear(len(config.emotion_names), d)
        self.recognizer = nn.Linear(d, len(config.emotion_names))
        self.slot_embedding = nn.Parameter(0.02 * torch.randn(regions + 1, d))  # regions, then emotion
        self.time_embedding = nn.Parameter(0.02 * torch.randn(config.window, d))
        self.mask_token = nn.Parameter(0.02 * torch.randn(d))
        self.unknown_emotion = nn.Parameter(0.02 * torch.randn(d))
        layer = nn.TransformerEncoderLayer(d, config.heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.layers, norm=nn.LayerNorm(d), enable_nested_tensor=False)
        for out in self.region_out:  # start by predicting no motion: relative error 1
            nn.init.zeros_(out.weight)
            nn.init.zeros_(out.bias)
        # RMS norm of each region's displacement (metres), so tokens and errors are scale-free
        self.register_buffer("region_scale", torch.ones(regions))
        column_region = torch.repeat_interleave(torch.arange(regions), torch.tensor(self.widths))
        self.register_buffer("column_region", column_region, persistent=False)

    def embed(self, regions: torch.Tensor) -> torch.Tensor:
        """Region tokens (N, W, R, d) of packed region displacements (N, W, P)."""
        if regions.shape[-1] != sum(self.widths):
            raise InputError(f"correlation module: got {regions.shape[-1]} region values, expects {sum(self.widths)}")
        parts = torch.split(regions, self.widths, dim=-1)
        scale = self.region_scale
        return torch.stack([lin(part / scale[r]) for r, (lin, part) in enumerate(zip(self.region_in, parts))], 2)

    def encode(
        self,
        tokens: torch.Tensor,
        emotion: torch.Tensor | None,
        masked: torch.Tensor | None = None,
        emotion_hidden: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden states (N, W, R+1, d) of region tokens (N, W, R, d), the emotion token last.

        `emotion` (N, W, E) intensities, None to withhold it; `masked` (N, R) bool hides regions for
        the whole window; `emotion_hidden` (N,) bool withholds the emotion of some windows.
        """
        n, w = tokens.shape[:2]
        if w > self.config.window:
            raise InputError(f"correlation module: got {w} frames, attends to at most {self.config.window}")
        if masked is not None:
            tokens = torch.where(masked[:, None, :, None], self.mask_token, tokens)
        unknown = self.unknown_emotion.expand(n, w, -1)
        if emotion is None:
            feeling = unknown
        else:
            if emotion.shape != (n, w, len(self.config.emotion_names)):
                raise InputError(f"correlation module: emotion has shape {tuple(emotion.shape)}, expected "
                                 f"({n}, {w}, {len(self.config.emotion_names)})")
            feeling = self.emotion_in(emotion)
            if emotion_hidden is not None:
                feeling = torch.where(emotion_hidden[:, None, None], unknown, feeling)
        tokens = torch.cat([tokens, feeling[:, :, None]], 2)
        tokens = tokens + self.slot_embedding + self.time_embedding[:w, None]
        hidden = self.encoder(tokens.reshape(n, -1, tokens.shape[-1]))
        return hidden.reshape(tokens.shape)

    def reconstruct(self, hidden: torch.Tensor) -> torch.Tensor:
        """Packed region displacements (N, W, P), in metres, read from the region tokens."""
        return torch.cat(
            [out(hidden[:, :, r]) * self.region_scale[r] for r, out in enumerate(self.region_out)], -1
        )

    def recognize(self, hidden: torch.Tensor) -> torch.Tensor:
        """Per-frame emotion logits (N, W, E) from the emotion token (sigmoid -> intensity)."""
        return self.recognizer(hidden[:, :, -1])

    def forward(
        self,
        regions: torch.Tensor,
        emotion: torch.Tensor | None,
        masked: torch.Tensor | None = None,
        emotion_hidden: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction (N, W, P), emotion logits (N, W, E)) of region displacements (N, W, P);
        see `encode`."""
        hidden = self.encode(self.embed(regions), emotion, masked, emotion_hidden)
        return self.reconstruct(hidden), self.recognize(hidden)

    def region_errors(self, reconstruction: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        """(N, R): squared error norm of each region, mean over frames, relative to the region's
        typical squared displacement norm, so small regions (eyes) count as much as the jaw."""
        squared = (reconstruction - regions).square().mean(1)  # (N, P)
        sums = torch.zeros(len(squared), len(self.widths), device=squared.device, dtype=squared.dtype)
        sums.index_add_(1, self.column_region, squared)
        return sums / self.region_scale.square()


def _windows(sequence: torch.Tensor, window: int) -> torch.Tensor:
    """(B, T, ...) -> (B * n, W, ...) windows of W = min(window, T) frames covering every frame
    (the last one may overlap its neighbour)."""
    frames = sequence.shape[1]
    width = min(window, frames)
    starts = list(range(0, frames - width + 1, width))
    if starts[-1] + width < frames:
        starts.append(frames - width)
    index = torch.tensor(starts, device=sequence.device)[:, None] + torch.arange(width, device=sequence.device)
    return sequence[:, index].flatten(0, 1)


def _region_scale(weights: np.ndarray, projector: RegionProjector) -> np.ndarray:
    """RMS over all frames of each region's displacement norm, from the weights' second moments."""
    moment = weights.T.astype(np.float64) @ weights / len(weights)  # (K, K)
    parts = [block.numpy().astype(np.float64) for block in projector.blocks()]
    rms = np.sqrt(np.maximum([np.sum(moment * (part @ part.T)) for part in parts], 0.0))
    return np.maximum(rms, _SCALE_FLOOR * rms.max() + 1e-12).astype(np.float32)


def _sequences(
    sequences_weights: Sequence[tuple[np.ndarray, np.ndarray]], blendshapes: int, emotions: int, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Concatenated weights (F, K) and emotions (F, E) of the sequences with at least `window`
    frames, with each kept sequence's first frame and number of window starts."""
    kept, starts, counts, total = [], [], [], 0
    for i, pair in enumerate(sequences_weights):
        weights, emotion = (np.asarray(part, dtype=np.float32) for part in pair)
        if weights.ndim != 2 or weights.shape[1] != blendshapes or emotion.shape != (len(weights), emotions):
            raise InputError(
                f"training sequence {i}: weights {weights.shape} and emotions {emotion.shape}, "
                f"expected (T, {blendshapes}) and (T, {emotions})"
            )
        if not np.isfinite(weights).all():
            raise InputError(f"training sequence {i}: weights contain NaN or infinite values")
        if not ((emotion >= 0.0) & (emotion <= 1.0)).all():
            raise InputError(f"training sequence {i}: emotion intensities must lie in [0, 1]")
        if len(weights) >= window:
            kept.append((weights, emotion))
            starts.append(total)
            counts.append(len(weights) - window + 1)
            total += len(weights)
    if not kept:
        raise InputError(f"no training sequence has the {window} frames of one window")
    weights = np.concatenate([w for w, _ in kept])
    emotion = np.concatenate([c for _, c in kept])
    return weights, emotion, np.array(starts), np.array(counts)


def train_correlation(
    sequences_weights: Sequence[tuple[np.ndarray, np.ndarray]],
    bases: np.ndarray,
    region_masks: np.ndarray,
    region_names: Sequence[str],
    emotion_names: Sequence[str],
    config: CorrelationConfig,
    run: TrainingRun,
) -> CorrelationModule:
    """Train on ground-truth (weights (T, K), emotion intensities (T, E)) sequences.

    Each step samples `batch_size` windows of `window` frames (sequences shorter than a window
    are not used), hides random regions and withholds the emotion of some windows; the loss is
    the scale-free error of the hidden regions plus `recognition_weight` times the emotion
    recognition cross-entropy on the withheld windows. The checkpoint config is `run.config`
    with this module's config under "correlation" (what `load_correlation` rebuilds from).
    """
    if run.kind != KIND:
        raise InputError(f"correlation training: run kind {run.kind!r}, expected {KIND!r}")
    projector = RegionProjector(bases, region_masks, region_names)
    for key, given in (("region_names", tuple(region_names)), ("emotion_names", tuple(emotion_names))):
        if getattr(config, key) not in ((), given):
            raise InputError(f"correlation config names {key} {getattr(config, key)}, the data {given}")
    config = replace(config, region_names=tuple(region_names), emotion_names=tuple(emotion_names),
                     region_sizes=projector.region_sizes)
    config.check_complete()
    weights, emotion, starts, counts = _sequences(
        sequences_weights, projector.packed.shape[0], len(emotion_names), config.window
    )
    run = replace(run, config={**run.config, "correlation": asdict(config)})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(run.seed)  # the same initial weights for the same seed
        module = CorrelationModule(config)
    module.region_scale.copy_(torch.from_numpy(_region_scale(weights, projector)))
    all_weights, all_emotion = torch.from_numpy(weights), torch.from_numpy(emotion)
    ends = np.cumsum(counts)
    regions = len(config.region_names)
    optimizer = torch.optim.AdamW(module.parameters(), lr=config.learning_rate)

    def step(_: int, rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        draw = rng.integers(ends[-1], size=config.batch_size)
        sequence = np.searchsorted(ends, draw, side="right")
        first = starts[sequence] + draw - (ends[sequence] - counts[sequence])
        frames = torch.from_numpy(first[:, None] + np.arange(config.window))
        masked = rng.random((config.batch_size, regions)) < config.mask_ratio
        rows = np.flatnonzero(~masked.any(1))  # at least one region hidden ...
        masked[rows, rng.integers(regions, size=len(rows))] = True
        rows = np.flatnonzero(masked.all(1))  # ... and at least one left to infer it from
        masked[rows, rng.integers(regions, size=len(rows))] = False
        hidden = torch.from_numpy(rng.random(config.batch_size) < config.emotion_dropout)
        masked = torch.from_numpy(masked)
        target, feeling = projector(all_weights[frames]), all_emotion[frames]
        reconstruction, logits = module(target, feeling, masked, hidden)
        rebuild = (module.region_errors(reconstruction, target) * masked).sum() / masked.sum()
        recognition = (
            F.binary_cross_entropy_with_logits(logits[hidden], feeling[hidden])
            if hidden.any() else logits.new_zeros(())
        )
        loss = rebuild + config.recognition_weight * recognition
        return loss, {"masked": rebuild.item(), "emotion": recognition.item()}

    train(run, module, optimizer, step)
    module.zero_grad(set_to_none=True)  # the last step's gradients are of no use to callers
    return module.eval()


def load_correlation(directory: str | os.PathLike) -> CorrelationModule:
    """The trained module of a checkpoint written by `train_correlation`, in eval mode."""
    checkpoint = load_checkpoint(directory, KIND)
    path = Path(directory) / CONFIG_FILE
    stored = checkpoint.config.get("correlation")
    if not isinstance(stored, dict):
        raise InputError(f"{path}: holds no 'correlation' settings")
    try:
        config = CorrelationConfig(**stored)
        module = CorrelationModule(config)
    except (TypeError, InputError) as err:
        raise InputError(f"{path}: unusable correlation settings ({err})") from None
    restore(module, checkpoint, str(directory))
    return module.eval()


class CorrelationLoss(nn.Module):
    """Correlation supervision for the generator, with the correlation module frozen.

    For generated weights ŵ, ground truth w and emotion intensities c (all (B, T, ·)), region
    displacements x̂ = P(ŵ), x = P(w) (`RegionProjector`) are cut into windows of the module's
    length (the last window may overlap its neighbour), and

        L = λc · (1/R) Σ_r mean_{windows, frames} ‖D_r(x̂ with region r hidden, c) − x̂_r‖² / s_r²
          + λf · mean_{windows, frames, tokens, channels} (H(x̂, c) − H(x, c))²

    D_r is the module's reconstruction of region r, s_r² the mean squared displacement norm of
    region r in its training data, H the final-layer encoding with nothing hidden, λc and λf
    `consistency_weight` and `feature_weight`. The first term asks every region of the generated
    motion to be what the module infers from the other regions under c (the learned
    emotion-specific correlation holds); the second matches the module's encodings of generated
    and true motion. Gradients reach ŵ only; the module's parameters stay untouched.

    Nothing here touches vertices: the module is frozen, so its region tokens are a (K, d) map
    of the weights per region, and ‖D_r − x̂_r‖ is measured in an orthonormal basis Q_r of the
    span of everything D_r and x̂_r can be (the region's blendshapes and the module's outputs),
    at most K + d + 1 numbers a region, whatever the vertex count.
    """

    def __init__(
        self,
        module: CorrelationModule,
        bases: np.ndarray,
        region_masks: np.ndarray,
        consistency_weight: float = 1.0,
        feature_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.module = module.requires_grad_(False).eval()
        projector = RegionProjector(bases, region_masks, module.config.region_names)
        if projector.region_sizes != module.config.region_sizes:
            raise InputError(
                f"region masks give {projector.region_sizes} vertices per region, the correlation "
                f"module was trained with {module.config.region_sizes}"
            )
        self.consistency_weight = consistency_weight
        self.feature_weight = feature_weight
        span = projector.packed.shape[0] + module.config.token_dim + 1
        token_maps, token_bias, out_maps, out_bias, seen_maps = [], [], [], [], []
        with torch.no_grad():
            for block, scale, lin, out in zip(projector.blocks(), module.region_scale, module.region_in,
                                              module.region_out):
                token_maps.append(block @ lin.weight.T / scale)  # (K, d)
                token_bias.append(lin.bias)
                basis = torch.linalg.qr(torch.cat([block.T, out.weight, out.bias[:, None]], 1)).Q
                basis = F.pad(basis, (0, span - basis.shape[1]))  # (3 n_r, span): zero columns add nothing
                out_maps.append(basis.T @ out.weight)  # (span, d)
                out_bias.append(basis.T @ out.bias)
                seen_maps.append(block @ basis / scale)  # (K, span)
        for name, parts in (("token_maps", token_maps), ("token_bias", token_bias), ("out_maps", out_maps),
                            ("out_bias", out_bias), ("seen_maps", seen_maps)):
            self.register_buffer(name, torch.stack(parts).detach().clone())

    def train(self, mode: bool = True) -> CorrelationLoss:
        """The generator's training loop switches modes; the frozen module stays in eval."""
        super().train(mode)
        self.module.eval()
        return self

    def forward(self, pred_w: torch.Tensor, target_w: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
        """The scalar loss L above for (B, T, K) weights and (B, T, E) intensities."""
        shape = pred_w.shape
        if (pred_w.ndim != 3 or shape[1] == 0 or shape[2] != self.token_maps.shape[1]
                or target_w.shape != shape or emotion.shape[:2] != shape[:2]):
            raise InputError(
                f"correlation loss: predicted {tuple(shape)}, target {tuple(target_w.shape)} and emotion "
                f"{tuple(emotion.shape)} must be (B, T, K), (B, T, K), (B, T, E) with T >= 1, "
                f"K = {self.token_maps.shape[1]}"
            )
        window = self.module.config.window
        generated = _windows(pred_w, window)  # (M, W, K)
        tokens = torch.einsum("mwk,rkd->mwrd", generated, self.token_maps) + self.token_bias
        feeling = _windows(emotion, window)
        loss = generated.new_zeros(())
        if self.consistency_weight:
            regions = len(self.token_maps)
            each = torch.arange(regions, device=generated.device)
            masked = (each[:, None] == each).repeat_interleave(len(generated), 0)  # region r hidden in copy r
            hidden = self.module.encode(tokens.repeat(regions, 1, 1, 1), feeling.repeat(regions, 1, 1), masked)
            hidden = hidden.unflatten(0, (regions, len(generated)))[each, :, :, each]  # (R, M, W, d)
            rebuilt = torch.einsum("rmwd,rqd->rmwq", hidden, self.out_maps) + self.out_bias[:, None, None]
            seen = torch.einsum("mwk,rkq->rmwq", generated, self.seen_maps)
            loss = loss + self.consistency_weight * (rebuilt - seen).square().sum(-1).mean()
        if self.feature_weight:
            with torch.no_grad():
                truth = torch.einsum("mwk,rkd->mwrd", _windows(target_w, window), self.token_maps)
                reference = self.module.encode(truth + self.token_bias, feeling)
            loss = loss + self.feature_weight * (self.module.encode(tokens, feeling) - reference).square().mean()
        return loss
