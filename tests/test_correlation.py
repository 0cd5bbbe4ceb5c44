"""The correlation module on a planted emotion-specific correlation, its loss and checkpoints.

Synthetic blendshapes on the demo head: regions are height bands of the template; blendshape 1
(region 1) moves as +0.8 × blendshape 0 (region 0) under "happy" and −0.8 × under "angry".
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from common.errors import InputError
from models.drivers.checkpoint import save_checkpoint
from models.learning.correlation import (
    CorrelationConfig,
    CorrelationLoss,
    CorrelationModule,
    RegionProjector,
    load_correlation,
    train_correlation,
)
from models.learning.training import TrainingRun
from models.rig.blendshapes import BlendshapeModel

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo" / "blendshapes.npz"
REGIONS = ("lower", "middle", "upper")
EMOTIONS = ("happy", "angry")
SIGN = {0: 0.8, 1: -0.8}  # region 1 follows region 0 with this gain, per emotion index
CONFIG = CorrelationConfig(token_dim=32, layers=2, heads=4, window=4, batch_size=32, learning_rate=2e-3)


def _masks(template: np.ndarray) -> np.ndarray:
    """Every 8th vertex (to stay fast) of three height bands; the chin, the top of the head and
    the other vertices belong to no region."""
    y = template[:, 1]
    sampled = np.arange(len(template)) % 8 == 0
    bands = [(-0.10, -0.05), (-0.05, 0.0), (0.0, 0.05)]
    return np.stack([(y >= lo) & (y < hi) & sampled for lo, hi in bands]).astype(np.float32)


def _bases(template: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """b0..b2 move one region each, b3 regions 0 and 2, b4 only vertices outside every region."""
    rng = np.random.default_rng(7)
    supports = [masks[0], masks[1], masks[2], masks[0] + masks[2], 1.0 - masks.max(0)]
    bases = []
    for support in supports:
        phase, freq = rng.uniform(0, np.pi, 2), rng.uniform(20, 40, 2)
        pattern = 1.2 + np.sin(freq[0] * template[:, 0] + phase[0]) * np.cos(freq[1] * template[:, 2] + phase[1])
        bases.append(0.01 * support[:, None] * pattern[:, None] * rng.standard_normal(3))
    return np.stack(bases).astype(np.float32)


def _weights(rng: np.random.Generator, emotion: int, frames: int) -> np.ndarray:
    weights = rng.standard_normal((frames, 5)).astype(np.float32)
    weights[:, 1] = SIGN[emotion] * weights[:, 0]
    return weights


def _onehot(emotion: int, frames: int) -> np.ndarray:
    intensity = np.zeros((frames, len(EMOTIONS)), dtype=np.float32)
    intensity[:, emotion] = 1.0
    return intensity


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.set_num_threads(1)
    template = BlendshapeModel.load(DEMO).template
    masks = _masks(template)
    bases = _bases(template, masks)
    rng = np.random.default_rng(0)
    data = [(_weights(rng, e, 48), _onehot(e, 48)) for e in (0, 1) for _ in range(6)]
    directory = tmp_path_factory.mktemp("correlation")
    run = TrainingRun(kind="correlation", config={"corpus": "planted"}, steps=600, seed=3,
                      directory=directory, progress=False)
    module = train_correlation(data, bases, masks, REGIONS, EMOTIONS, CONFIG, run)
    return {"module": module, "bases": bases, "masks": masks, "template": template, "directory": directory}


def _test_windows(emotion: int, count: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out (count, 4, 5) weights and (count, 4, 2) emotions."""
    rng = np.random.default_rng(100 + emotion)
    weights = np.stack([_weights(rng, emotion, 4) for _ in range(count)])
    return torch.from_numpy(weights), torch.from_numpy(np.stack([_onehot(emotion, 4)] * count))


def test_projector_matches_blendshape_displacements(setup):
    bases, masks = setup["bases"], setup["masks"]
    weights = np.random.default_rng(1).standard_normal((6, 5)).astype(np.float32)
    displacement = np.tensordot(weights, bases, 1)  # (T, V, 3)
    expected = np.concatenate([displacement[:, mask > 0].reshape(6, -1) for mask in masks], axis=1)
    packed = RegionProjector(bases, masks, REGIONS)(torch.from_numpy(weights)).numpy()
    np.testing.assert_allclose(packed, expected, rtol=1e-5, atol=1e-9)


def test_hidden_region_is_rebuilt_only_under_the_right_emotion(setup):
    module = setup["module"]
    projector = RegionProjector(setup["bases"], setup["masks"], REGIONS)
    masked = torch.tensor([[False, True, False]]).expand(64, -1)
    for emotion in (0, 1):
        weights, right = _test_windows(emotion)
        regions = projector(weights)
        with torch.no_grad():
            baseline = module.region_errors(torch.zeros_like(regions), regions)[:, 1].mean()
            rebuilt, _ = module(regions, right, masked)
            wrong, _ = module(regions, right.flip(-1), masked)
            right_error = module.region_errors(rebuilt, regions)[:, 1].mean() / baseline
            wrong_error = module.region_errors(wrong, regions)[:, 1].mean() / baseline
        assert right_error < 0.3, (emotion, right_error)
        assert wrong_error > 1.0, (emotion, wrong_error)  # it predicts the other emotion's sign


def test_loss_matches_its_formula_on_vertices(setup):
    """The loss works in weight space; here it is recomputed from region displacements."""
    module, bases, masks = setup["module"], setup["bases"], setup["masks"]
    projector = RegionProjector(bases, masks, REGIONS)
    rng = np.random.default_rng(11)
    weights = torch.from_numpy(np.stack([_weights(rng, 1, 6) for _ in range(2)]))
    emotion = torch.from_numpy(rng.uniform(0, 1, (2, 6, 2)).astype(np.float32))
    pred = weights + torch.from_numpy(0.3 * rng.standard_normal(weights.shape).astype(np.float32))

    def windows(x: torch.Tensor) -> torch.Tensor:  # 6 frames, window 4: frames 0-3 and 2-5
        return torch.cat([x[:, 0:4], x[:, 2:6]])

    generated, truth, feeling = windows(projector(pred)), windows(projector(weights)), windows(emotion)
    with torch.no_grad():
        consistency = 0.0
        for r in range(3):
            masked = torch.zeros(len(generated), 3, dtype=torch.bool)
            masked[:, r] = True
            rebuilt, _ = module(generated, feeling, masked)
            consistency += module.region_errors(rebuilt, generated)[:, r].mean() / 3
        features = [module.encode(module.embed(x), feeling) for x in (generated, truth)]
        expected = 2.0 * consistency + 0.5 * (features[0] - features[1]).square().mean()
        loss = CorrelationLoss(module, bases, masks, consistency_weight=2.0, feature_weight=0.5)
        assert torch.allclose(loss(pred, weights, emotion), expected, rtol=1e-4)


def test_loss_gradient_reaches_prediction_only(setup):
    loss_fn = CorrelationLoss(setup["module"], setup["bases"], setup["masks"])
    weights, emotion = _test_windows(0, count=4)
    pred = (weights + 0.3).requires_grad_(True)
    loss = loss_fn(pred, weights, emotion)
    loss.backward()
    assert loss.item() > 0 and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    for name, parameter in loss_fn.module.named_parameters():
        assert not parameter.requires_grad and parameter.grad is None, name
    loss_fn.train()
    assert not loss_fn.module.training  # the generator's loop switching modes leaves it frozen


@pytest.mark.parametrize("feature_weight", [0.0, 1.0])
def test_loss_prefers_motion_that_keeps_the_correlation(setup, feature_weight):
    loss_fn = CorrelationLoss(setup["module"], setup["bases"], setup["masks"], feature_weight=feature_weight)
    for emotion in (0, 1):
        weights, intensity = _test_windows(emotion, count=8)
        broken = weights.clone()
        broken[..., 1] = -broken[..., 1]  # region 1 follows the other emotion's rule
        with torch.no_grad():
            truth = loss_fn(weights, weights, intensity)
            wrong = loss_fn(broken, weights, intensity)
        assert truth < 0.5 * wrong, (emotion, truth, wrong)


def test_loss_ignores_vertices_outside_every_region(setup):
    bases, masks = setup["bases"], setup["masks"]
    outside = masks.max(0) == 0
    changed = bases.copy()
    changed[:, outside] += np.random.default_rng(5).standard_normal((5, int(outside.sum()), 3)).astype(np.float32)
    weights, emotion = _test_windows(1, count=4)
    pred = weights + 0.2
    invisible = pred.clone()
    invisible[..., 4] += 3.0  # blendshape 4 moves only vertices outside every region
    with torch.no_grad():
        reference = CorrelationLoss(setup["module"], bases, masks)(pred, weights, emotion)
        other_bases = CorrelationLoss(setup["module"], changed, masks)(pred, weights, emotion)
        other_weight = CorrelationLoss(setup["module"], bases, masks)(invisible, weights, emotion)
    assert torch.equal(reference, other_bases)
    assert torch.allclose(reference, other_weight, rtol=1e-5)


def test_checkpoint_round_trip_gives_identical_outputs(setup):
    module, loaded = setup["module"], load_correlation(setup["directory"])
    assert loaded.config == module.config
    projector = RegionProjector(setup["bases"], setup["masks"], REGIONS)
    weights, emotion = _test_windows(0, count=8)
    regions = projector(weights)
    masked = torch.rand(8, 3, generator=torch.Generator().manual_seed(0)) < 0.5
    with torch.no_grad():
        for a, b in zip(module(regions, emotion, masked), loaded(regions, emotion, masked)):
            assert torch.equal(a, b)


def test_refusals_name_the_problem(setup, tmp_path):
    bases, masks, module = setup["bases"], setup["masks"], setup["module"]
    with pytest.raises(InputError, match="only 0 and 1"):
        RegionProjector(bases, masks * 0.5, REGIONS)
    empty = masks.copy()
    empty[2] = 0
    with pytest.raises(InputError, match="without vertices: upper"):
        RegionProjector(bases, empty, REGIONS)
    with pytest.raises(InputError, match="expected \\(2, "):
        RegionProjector(bases, masks, REGIONS[:2])
    fewer = masks.copy()
    fewer[0, np.flatnonzero(fewer[0])[:10]] = 0
    with pytest.raises(InputError, match="was trained with"):
        CorrelationLoss(module, bases, fewer)
    with pytest.raises(InputError, match="multiple of heads"):
        CorrelationConfig(token_dim=30, heads=4)
    data = [(np.zeros((8, 5), np.float32), np.full((8, 2), 2.0, np.float32))]
    run = TrainingRun(kind="correlation", config={}, steps=1, progress=False)
    with pytest.raises(InputError, match="sequence 0: emotion intensities"):
        train_correlation(data, bases, masks, REGIONS, EMOTIONS, CONFIG, run)
    with pytest.raises(InputError, match="run kind"):
        train_correlation(data, bases, masks, REGIONS, EMOTIONS, CONFIG, TrainingRun(kind="other", config={}, steps=1))
    save_checkpoint(tmp_path, "correlation", {}, CorrelationModule(module.config))
    with pytest.raises(InputError, match="no 'correlation' settings"):
        load_correlation(tmp_path)
