"""The training loop and checkpoints: exact resume, determinism, refusals naming the problem."""

import json

import numpy as np
import pytest
import torch

from common.errors import InputError
from models.drivers.checkpoint import (
    CHECKPOINT_VERSION,
    load_checkpoint,
    load_training_state,
    restore,
    save_checkpoint,
)
from models.learning.training import TrainingRun, train

KIND = "test-model"
CONFIG = {"hidden": 4, "lr": 0.05, "layers": [1, 2]}
_TARGET = torch.tensor([[1.0, -2.0, 0.5, 0.0], [0.0, 1.0, -1.0, 2.0]])


class Tiny(torch.nn.Module):
    def __init__(self, inputs: int = 4) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(inputs, 2)
        self.dropout = torch.nn.Dropout(0.3)  # uses torch's generator, so resume must restore it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(x))


def make(seed: int = 0) -> tuple[Tiny, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    module = Tiny()
    return module, torch.optim.Adam(module.parameters(), lr=CONFIG["lr"])


def make_step(module: Tiny, interrupt_at: int | None = None):
    def step(i: int, rng: np.random.Generator):
        x = torch.from_numpy(rng.standard_normal((8, 4)).astype(np.float32))
        loss = (module(x) - x @ _TARGET.T).square().mean()
        if i == interrupt_at:
            raise KeyboardInterrupt
        return loss, {"loss": np.float64(loss.item())}  # numpy scalars are stored as floats

    return step


def run(directory=None, steps=10, resume=False, config=CONFIG, seed=0, save_every=3) -> TrainingRun:
    return TrainingRun(kind=KIND, config=config, steps=steps, seed=seed, directory=directory,
                       save_every=save_every, resume=resume, progress=False)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


def test_interrupted_and_resumed_run_equals_straight_run(tmp_path):
    straight, optimizer = make()
    shown = train(run(), straight, optimizer, make_step(straight))
    assert shown["loss"] > 0

    interrupted, optimizer = make()
    with pytest.raises(KeyboardInterrupt):
        train(run(tmp_path), interrupted, optimizer, make_step(interrupted, interrupt_at=5))
    assert load_training_state(tmp_path)["step"] == 5

    resumed, optimizer = make(seed=123)  # fresh weights: everything must come from the checkpoint
    resumed_shown = train(run(tmp_path, resume=True), resumed, optimizer, make_step(resumed))
    assert_same_weights(straight, resumed)
    assert resumed_shown == shown
    assert load_training_state(tmp_path)["step"] == 10
    assert not any(path.name.endswith(".tmp") for path in tmp_path.iterdir())


def test_periodic_checkpoints_resume_exactly(tmp_path):
    straight, optimizer = make()
    train(run(steps=7), straight, optimizer, make_step(straight))
    first, optimizer = make()
    train(run(tmp_path, steps=6), first, optimizer, make_step(first))  # checkpoints at 3 and 6
    resumed, optimizer = make()
    train(run(tmp_path, steps=7, resume=True), resumed, optimizer, make_step(resumed))
    assert_same_weights(straight, resumed)


def test_same_seed_is_deterministic_and_other_seed_differs():
    a, optimizer = make()
    train(run(seed=7), a, optimizer, make_step(a))
    b, optimizer = make()
    train(run(seed=7), b, optimizer, make_step(b))
    c, optimizer = make()
    train(run(seed=8), c, optimizer, make_step(c))
    assert_same_weights(a, b)
    assert not torch.equal(a.linear.weight, c.linear.weight)


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    straight, optimizer = make()
    train(run(), straight, optimizer, make_step(straight))
    resumed, optimizer = make()
    train(run(tmp_path / "new", resume=True), resumed, optimizer, make_step(resumed))
    assert_same_weights(straight, resumed)
    assert (tmp_path / "new" / "model.safetensors").is_file()


def test_resume_with_other_config_names_the_keys(tmp_path):
    module, optimizer = make()
    train(run(tmp_path, steps=2), module, optimizer, make_step(module))
    other = dict(CONFIG, hidden=8, extra=True)
    with pytest.raises(InputError, match=r"config\.json.*extra.*hidden") as err:
        train(run(tmp_path, resume=True, config=other), module, optimizer, make_step(module))
    assert "lr" not in str(err.value)


@pytest.mark.parametrize("field, value", [("kind", "speech-generator"), ("version", CHECKPOINT_VERSION + 1),
                                          ("format", "something else")])
def test_checkpoint_of_other_kind_version_or_format_is_refused(tmp_path, field, value):
    module, optimizer = make()
    train(run(tmp_path, steps=1), module, optimizer, make_step(module))
    header = json.loads((tmp_path / "config.json").read_text())
    header[field] = value
    (tmp_path / "config.json").write_text(json.dumps(header))
    with pytest.raises(InputError, match="config.json"):
        train(run(tmp_path, resume=True), module, optimizer, make_step(module))
    with pytest.raises(InputError, match="config.json"):
        load_checkpoint(tmp_path, KIND)


def test_other_architecture_is_refused_naming_key_and_shapes(tmp_path):
    save_checkpoint(tmp_path, KIND, CONFIG, Tiny(inputs=4))
    wider = Tiny(inputs=5)
    with pytest.raises(InputError, match=r"different architecture.*linear\.weight.*\(2, 4\).*\(2, 5\)"):
        restore(wider, load_checkpoint(tmp_path, KIND), str(tmp_path))
    extra = torch.nn.Sequential(Tiny(), torch.nn.Linear(2, 2))
    with pytest.raises(InputError, match=r"different architecture.*0\.linear\.weight is missing"):
        restore(extra, load_checkpoint(tmp_path, KIND), str(tmp_path))


def test_missing_or_broken_files_are_refused(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere", KIND)
    with pytest.raises(InputError, match="config.json: missing"):
        load_checkpoint(tmp_path, KIND)
    module, optimizer = make()
    train(run(tmp_path, steps=1), module, optimizer, make_step(module))
    (tmp_path / "training_state.pt").write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="training_state.pt"):
        load_checkpoint(tmp_path, KIND)
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 40)
    with pytest.raises(InputError, match="model.safetensors"):
        load_checkpoint(tmp_path, KIND)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(InputError, match="model.safetensors: missing"):
        train(run(tmp_path, resume=True), module, optimizer, make_step(module))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="config.json: .*not valid JSON"):
        load_checkpoint(tmp_path, KIND)


def test_checkpoint_round_trip_without_training_state(tmp_path):
    module = Tiny()
    save_checkpoint(tmp_path, KIND, {"a": (1, 2)}, module)
    checkpoint = load_checkpoint(tmp_path, KIND)
    assert checkpoint.config == {"a": [1, 2]} and checkpoint.training_state is None
    copy = Tiny(inputs=4)
    restore(copy, checkpoint, "here")
    assert_same_weights(module, copy)
    with pytest.raises(InputError, match="not JSON-serialisable"):
        save_checkpoint(tmp_path, KIND, {"a": object()}, module)
