"""Learning disentangled speech and expression blendshapes (Mao et al.) from mesh sequences.

Motion is modelled as ΔV = B_A·w_A + B_E·w_E. Two encoders regress the weights from a window of
displacements, E_a → w_A and E_e → w_E; the decoder is the two linear bases. Both encoders see
every clip, so nothing but the loss says which set explains what:
- reconstruction of the displacements;
- the sparsity constraint: an L1 penalty on the cross-domain weights (w_E on neutral talking,
  w_A on expression clips). Without it the split between the sets is arbitrary; with it each
  set takes its own domain's motion, while the other set may still explain the small secondary
  motion (a sparse penalty allows a little use);
- each basis vector is kept at a fixed norm, so the L1 penalty cannot be dodged by growing a
  basis and shrinking its weights (the weights themselves are unconstrained, of either sign).
Only the vertices that move somewhere in the data are learned; the others stay still. The
encoders and the decoder work in the data's principal subspace, whitened: every principal
direction of the motion gets unit spread, so a 1-mm eyelid movement is learned as carefully
as a 3-cm jaw opening (in vertex units its error would be ten thousand times smaller), and a
training step costs the same for any mesh.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from common.errors import InputError
from models.learning.blendshape_names import name_blendshapes
from models.learning.datasets import MeshSequence
from models.learning.training import TrainingRun, train
from models.rig.blendshapes import BlendshapeModel
from models.rig.mapping import MappingRig, fit_flame_mapping
from models.rig.regions import geometric_regions

KIND = "blendshape-learner"
_MOVING = 1e-4  # a vertex moves if its largest displacement exceeds this fraction of the data's
_SAME_RAY = 0.99  # cosine between weight vectors taken as the same pose at another strength ...
_PUREST = 20  # ... of which this many frames make a learned blendshape


@dataclass(frozen=True)
class LearnerConfig:
    """Sizes and loss weights of the learner; stored in its checkpoint."""

    speech_blendshapes: int = 4
    expression_blendshapes: int = 12
    hidden: int = 128
    components: int = 64  # at most this many principal directions of the motion ...
    floor: float = 1e-3  # ... each with at least this fraction of the largest one's spread
    sparsity: float = 0.3  # weight of the L1 penalty on cross-domain weights
    decoupling: float = 1.0  # weight of the penalty on cross-domain weights moving with own ones
    learning_rate: float = 1e-3
    basis_rate: float = 10.0  # the bases' learning rate relative to the encoders'
    window: int = 24  # frames per training window
    batch: int = 16  # windows per domain and step
    initial: str = "domains"  # bases start at each domain's principal directions, or "random"


class _Encoder(nn.Module):
    """Displacement window (B, T, D) → non-negative weights (B, T, K)."""

    def __init__(self, inputs: int, hidden: int, outputs: int) -> None:
        super().__init__()
        self.project = nn.Linear(inputs, hidden)
        self.temporal = nn.Conv1d(hidden, hidden, kernel_size=5, padding=2)
        self.out = nn.Linear(hidden, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.gelu(self.project(x))
        h = h + nn.functional.gelu(self.temporal(h.transpose(1, 2))).transpose(1, 2)
        return self.out(h)


class BlendshapeLearner(nn.Module):
    """Encoders E_a, E_e and the linear decoder [B_A; B_E] in the motion's principal subspace.

    The buffers `moving` (learned vertex indices), `principal` (3M, P) orthonormal directions
    and `spread` (P,) (their RMS in metres) make a checkpoint hold everything needed to apply
    the learner to new sequences."""

    def __init__(self, config: LearnerConfig, moving: np.ndarray, principal: torch.Tensor, spread: torch.Tensor,
                 vertices: int) -> None:
        super().__init__()
        self.vertices = vertices
        self.register_buffer("moving", torch.as_tensor(moving, dtype=torch.int64))
        self.register_buffer("principal", principal.float())
        self.register_buffer("spread", spread.float())
        components = principal.shape[1]
        self.speech_encoder = _Encoder(components, config.hidden, config.speech_blendshapes)
        self.expression_encoder = _Encoder(components, config.hidden, config.expression_blendshapes)
        self.speech_raw = nn.Parameter(torch.randn(config.speech_blendshapes, components))
        self.expression_raw = nn.Parameter(torch.randn(config.expression_blendshapes, components))

    def bases(self) -> tuple[torch.Tensor, torch.Tensor]:
        """B_A, B_E (whitened coordinates), every row at unit RMS: the weights carry the amplitude."""
        norm = self.principal.shape[1] ** 0.5
        return (nn.functional.normalize(self.speech_raw, dim=1) * norm,
                nn.functional.normalize(self.expression_raw, dim=1) * norm)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """w_A, w_E and the reconstruction of the window x (principal coordinates)."""
        speech_basis, expression_basis = self.bases()
        w_a, w_e = self.speech_encoder(x), self.expression_encoder(x)
        return w_a, w_e, w_a @ speech_basis + w_e @ expression_basis

    def coordinates(self, displacements: np.ndarray) -> torch.Tensor:
        """(T, V, 3) metres → (T, P) whitened principal coordinates."""
        flat = displacements[:, self.moving.numpy()].reshape(len(displacements), -1)
        return torch.from_numpy(np.ascontiguousarray(flat, dtype=np.float32)) @ self.principal / self.spread

    @torch.no_grad()
    def encode(self, displacements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """w_A (T, Ks), w_E (T, Ke) of one (T, V, 3) displacement sequence, in the learner's units."""
        w_a, w_e, _ = self(self.coordinates(displacements)[None])
        return w_a[0].numpy(), w_e[0].numpy()

    @torch.no_grad()
    def full_bases(self) -> tuple[np.ndarray, np.ndarray]:
        """B_A (Ks, V, 3), B_E (Ke, V, 3) in metres per unit weight, zero off the moving vertices."""
        out = []
        for basis in self.bases():
            full = np.zeros((basis.shape[0], self.vertices, 3), np.float32)
            moving = ((basis * self.spread) @ self.principal.T).numpy()
            full[:, self.moving.numpy()] = moving.reshape(basis.shape[0], -1, 3)
            out.append(full)
        return out[0], out[1]


def _check_domains(speech: Sequence[MeshSequence], expression: Sequence[MeshSequence], window: int) -> None:
    for kind, group in (("speech", speech), ("expression", expression)):
        if not group:
            raise InputError(f"blendshape learner: no {kind} sequences to learn from")
        short = [s.name for s in group if len(s.vertices) < window]
        if short:
            raise InputError(f"blendshape learner: {kind} sequences shorter than the {window}-frame window: "
                             f"{', '.join(short[:5])}")
    shapes = {s.vertices.shape[1:] for s in [*speech, *expression]}
    if len(shapes) != 1:
        raise InputError(f"blendshape learner: sequences have different vertex counts {sorted(shapes)}")


def train_blendshapes(speech: Sequence[MeshSequence], expression: Sequence[MeshSequence],
                      config: LearnerConfig, run: TrainingRun) -> BlendshapeLearner:
    """Learn B_A, B_E and the encoders from neutral talking and expression clips."""
    _check_domains(speech, expression, config.window)
    if config.initial not in ("domains", "random"):
        raise InputError(f"blendshape learner: initial {config.initial!r} is not 'domains' or 'random'")
    vertices = speech[0].vertices.shape[1]
    peak = np.zeros(vertices)
    for s in [*speech, *expression]:
        peak = np.maximum(peak, np.linalg.norm(s.displacements, axis=2).max(axis=0))
    moving = np.flatnonzero(peak > _MOVING * peak.max())
    torch.manual_seed(run.seed)
    principal, spread = _principal_subspace([*speech, *expression], moving, config)
    learner = BlendshapeLearner(config, moving, principal, spread, vertices)
    data = [[learner.coordinates(s.displacements) for s in group] for group in (speech, expression)]
    if config.initial == "domains":  # otherwise the seeded random start stays
        with torch.no_grad():
            start = _initial_bases(torch.cat(data[0]), torch.cat(data[1]), config)
            learner.speech_raw.copy_(start[0])
            learner.expression_raw.copy_(start[1])
    encoders = [p for name, p in learner.named_parameters() if not name.endswith("_raw")]
    optimizer = torch.optim.Adam([  # the bases are few numbers that must travel far
        {"params": encoders, "scale": 1.0},
        {"params": [learner.speech_raw, learner.expression_raw], "scale": config.basis_rate},
    ])
    run.config = {**run.config, "learner": asdict(config), "vertices": vertices, "moving": len(moving)}

    def step(i: int, rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        for group in optimizer.param_groups:  # cosine decay: a function of the step, so resumable
            group["lr"] = group["scale"] * config.learning_rate * 0.5 * (1.0 + np.cos(np.pi * i / max(run.steps, 1)))
        losses = {}
        for domain, group in zip(("speech", "expression"), data):
            batch = torch.stack([_window(group, config.window, rng) for _ in range(config.batch)])
            w_a, w_e, recon = learner(batch)
            own, cross = (w_a, w_e) if domain == "speech" else (w_e, w_a)
            losses[f"{domain}_recon"] = (recon - batch).square().mean()
            losses[f"{domain}_cross"] = cross.abs().mean()
            losses[f"{domain}_coupling"] = _coupling(own, cross)
        total = sum(v for k, v in losses.items() if k.endswith("recon"))
        total = total + config.sparsity * (losses["speech_cross"] + losses["expression_cross"])
        total = total + config.decoupling * (losses["speech_coupling"] + losses["expression_coupling"])
        return total, {k: float(v.detach()) for k, v in losses.items()}

    train(run, learner, optimizer, step)
    return learner


def _principal_subspace(sequences: Sequence[MeshSequence], moving: np.ndarray,
                        config: LearnerConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The principal directions (3M, P) of the uncentred motion that matter, and their RMS (P,)."""
    frames = torch.cat([torch.from_numpy(np.ascontiguousarray(
        s.displacements[:, moving].reshape(len(s.vertices), -1), dtype=np.float32)) for s in sequences])
    rank = min(config.components, *frames.shape)
    _, values, directions = torch.svd_lowrank(frames, q=min(rank + 8, *frames.shape), niter=4)  # seeded
    spread = values[:rank] / len(frames) ** 0.5
    keep = spread >= config.floor * spread[0]
    return torch.linalg.qr(directions[:, :rank][:, keep]).Q, spread[keep]


def _top_directions(frames: torch.Tensor, count: int, away: torch.Tensor) -> torch.Tensor:
    """(count, P) leading principal directions of (frames, P) outside the rows of `away`."""
    q = torch.linalg.qr(away.T).Q
    _, _, vh = torch.linalg.svd(frames - frames @ q @ q.T, full_matrices=False)
    return vh[:count]


def _initial_bases(speech: torch.Tensor, expression: torch.Tensor,
                   config: LearnerConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Each set starts at its own domain's principal directions, found away from the other
    set's: each domain's small secondary motion then cannot claim a place in its own set.
    A few alternations settle it."""
    empty = torch.zeros(0, speech.shape[1])
    b_a = _top_directions(speech, config.speech_blendshapes, empty)
    for _ in range(3):
        b_e = _top_directions(expression, config.expression_blendshapes, b_a)
        b_a = _top_directions(speech, config.speech_blendshapes, b_e)
    return b_a, b_e


def _coupling(own: torch.Tensor, cross: torch.Tensor) -> torch.Tensor:
    """Σ cov(cross_i, own_j)² / var(own_j) over a batch: secondary motion is independent of the
    primary motion, so a set that absorbs part of the other's motion (whose weights then move
    with the own weights) is penalised. L1 alone cannot see this: non-negative secondary
    motion is cheapest to explain partly through the own set."""
    own = own.reshape(-1, own.shape[-1])
    cross = cross.reshape(-1, cross.shape[-1])
    own, cross = own - own.mean(0), cross - cross.mean(0)
    covariance = cross.T @ own / len(own)
    return (covariance.square() / (own.var(0) + 1e-6)).sum()


def _window(group: list[torch.Tensor], length: int, rng: np.random.Generator) -> torch.Tensor:
    sequence = group[int(rng.integers(len(group)))]
    start = int(rng.integers(len(sequence) - length + 1))
    return sequence[start:start + length]


def build_model(learned: BlendshapeLearner, speech: Sequence[MeshSequence], expression: Sequence[MeshSequence],
                flame: MappingRig, emotion_names: Sequence[str],
                source: str = "learned blendshapes",
                progress: Callable[[str], None] = lambda _: None,
                reference: BlendshapeModel | None = None) -> BlendshapeModel:
    """The blendshape model (docs/architecture.md §Formats) with readable blendshapes: each set
    re-based on its data's extreme rays (`_extreme_rays`), normalised (`normalise`) and named
    (`models.learning.blendshape_names`; after `reference`'s blendshapes where they match, e.g.
    a synthetic corpus's planted model), the FLAME mapping fitted through `flame` around its
    neutral (and `flame` recorded), emotion profiles from the labelled expression clips and
    geometric region masks."""
    template = flame.neutral
    bases = list(learned.full_bases())
    encoded = [[learned.encode(s.displacements)[k] for s in group] for k, group in ((0, speech), (1, expression))]
    transforms = []
    for k in range(2):
        frames = np.concatenate(encoded[k])
        rays = _extreme_rays(frames, bases[k])
        bases[k] = np.tensordot(rays, bases[k], 1)
        unmix = np.linalg.inv(rays)
        own = frames @ unmix
        bases[k], scale = normalise(bases[k], own)
        transforms.append(unmix / scale)  # learner weights → model weights
    moving = np.zeros(learned.vertices, bool)
    moving[learned.moving.numpy()] = True
    regions = geometric_regions(template, moving)
    names: list[tuple[str, ...]] = []
    for k, kind in enumerate(("speech", "expression")):
        given = name_blendshapes(bases[k], template, regions, _names_of(reference, kind), taken=sum(names, ()))
        order = _reading_order(given, bases[k], getattr(reference, f"{kind}_names", ()))
        bases[k], transforms[k] = bases[k][order], transforms[k][:, order]
        names.append(tuple(given[i] for i in order))
    speech_names, expression_names = names

    progress("fitting the FLAME mapping")
    fits = [fit_flame_mapping(basis, flame.forward, template) for basis in bases]
    profiles = emotion_profiles(learned, expression, emotion_names) @ transforms[1]
    return BlendshapeModel(
        speech_names=speech_names, expression_names=expression_names,
        emotion_names=tuple(emotion_names),
        speech_basis=bases[0], expression_basis=bases[1],
        speech_to_flame=fits[0].coeffs, expression_to_flame=fits[1].coeffs,
        emotion_profiles=profiles.astype(np.float32), template=template,
        speech_mapping_error=fits[0].error, expression_mapping_error=fits[1].error,
        region_names=tuple(regions), region_masks=np.stack([regions[name] for name in regions]).astype(np.float32),
        flame_fingerprint=flame.fingerprint, flame_name=flame.name, source=source,
    )


def normalise(basis: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(basis', scale): each blendshape k flipped so its typical activation in `weights` (T, K),
    its own domain's training weights, is positive (the larger of the 1st and 99th percentile
    tails) and scaled so a weight of 1 is that tail's 99th percentile: basis' = basis·scale,
    weights' = weights / scale, so weights'·basis' = weights·basis."""
    high, low = np.percentile(weights, 99, axis=0), np.percentile(weights, 1, axis=0)
    scale = np.where(high >= -low, high, low)
    scale = np.where(np.abs(scale) > 1e-9, scale, 1.0)
    return (basis * scale[:, None, None]).astype(np.float32), scale


def _extreme_rays(frames: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """(K, K) weight vectors of the data's most extreme poses, each used as a new blendshape
    (identity when they are badly conditioned); `frames` (T, K) are weights of `basis` (K, V, 3).
    The encoders' weights are any invertible mix of the true ones; where the true weights are
    non-negative (talking, poses, emotions) the frames fill a cone whose extreme rays are the
    purest poses in the data: the true blendshapes where some frames show one alone (separable
    NMF), else the poses that come closest. The frames that move (over 0.3 of the
    99th-percentile norm) are scaled onto the plane x·d = 1, d the cone's centre
    (`_cone_centre`), and the successive projection algorithm (Gillis & Vavasis 2014) picks the
    vertices of the polygon they form. The most extreme frame is also the noisiest, so each ray
    is the mean of the `_PUREST` frames along it (cosine ≥ `_SAME_RAY`) that move the face least
    per unit along it: a frame with a little of a larger blendshape in it moves more, and a
    blendshape 20 times smaller than its neighbours (lips_closed beside jaw_open) needs their
    share in it well below a percent."""
    count = len(basis)
    norm = np.linalg.norm(frames, axis=1)
    moving = frames[norm > 0.3 * np.percentile(norm, 99)].astype(np.float64)
    if len(moving) < count:
        return np.eye(count)
    unit = moving / np.linalg.norm(moving, axis=1, keepdims=True)
    height = unit @ _cone_centre(unit)
    inside = height > 0.02
    if inside.sum() < count:
        return np.eye(count)
    rest, chosen = unit[inside] / height[inside, None], []
    for _ in range(count):
        j = int(np.argmax(np.linalg.norm(rest, axis=1)))
        chosen.append(j)
        axis = rest[j] / max(float(np.linalg.norm(rest[j])), 1e-12)
        rest = rest - np.outer(rest @ axis, axis)
    flat = basis.reshape(count, -1).astype(np.float64)
    gram = flat @ flat.T
    rays = []
    for ray in unit[np.flatnonzero(inside)[chosen]]:
        along = moving[unit @ ray >= _SAME_RAY]
        motion = np.sqrt(np.einsum("ij,jk,ik->i", along, gram, along)) / (along @ ray)
        rays.append(along[np.argsort(motion)[:_PUREST]].mean(axis=0))
    rays = np.stack(rays)
    return rays if np.linalg.cond(rays) < 1e3 else np.eye(count)


def _cone_centre(unit: np.ndarray, iterations: int = 200) -> np.ndarray:
    """The unit direction d that (approximately) maximises the smallest cosine to the unit rows
    `unit`: the centre of their smallest enclosing ball (Badoiu & Clarkson 2003), so that every
    ray of the cone, however few its frames, lies on the positive side of x·d = 1."""
    d = unit.mean(axis=0)
    for t in range(1, iterations + 1):
        d = d + (unit[np.argmin(unit @ d)] - d) / (t + 1)
    return d / max(float(np.linalg.norm(d)), 1e-12)


def _reading_order(names: Sequence[str], basis: np.ndarray, reference: Sequence[str]) -> list[int]:
    """The blendshapes named after the reference in its order, then the others by their peak
    displacement, largest first."""
    peak = np.linalg.norm(basis, axis=2).max(axis=1)
    return sorted(range(len(names)), key=lambda k: (reference.index(names[k]) if names[k] in reference
                                                    else len(reference), -peak[k]))


def _names_of(model: BlendshapeModel | None, kind: str) -> tuple[np.ndarray, tuple[str, ...]] | None:
    return None if model is None else (getattr(model, f"{kind}_basis"), getattr(model, f"{kind}_names"))


def emotion_profiles(learned: BlendshapeLearner, expression: Sequence[MeshSequence],
                     emotion_names: Sequence[str]) -> np.ndarray:
    """(E, Ke): per emotion, the mean w_E over the apex frames (the top fifth of each clip's
    expression energy) of its labelled clips, divided by their intensity."""
    profiles = []
    for emotion in emotion_names:
        apexes = []
        for s in expression:
            if s.emotion != emotion or s.intensity <= 0:
                continue
            w_e = learned.encode(s.displacements)[1]
            energy = np.linalg.norm(w_e, axis=1)
            apexes.append(w_e[energy >= np.percentile(energy, 80)].mean(axis=0) / s.intensity)
        if not apexes:
            raise InputError(f"blendshape learner: no expression clip is labelled '{emotion}'")
        profiles.append(np.mean(apexes, axis=0))
    return np.asarray(profiles, np.float32)
