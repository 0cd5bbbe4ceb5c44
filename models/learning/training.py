"""The one training loop of our learned modules: seeding, progress, checkpoints and exact resume.

An interrupted run that is resumed ends with the same weights as an uninterrupted one: the
checkpoint keeps the module, the optimizer, the step counter and both random generators
(torch's and the numpy Generator the step function samples its batches from).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from common.errors import InputError
from models.drivers.checkpoint import (
    CONFIG_FILE,
    load_checkpoint,
    restore,
    save_checkpoint,
)

Step = Callable[[int, np.random.Generator], tuple[torch.Tensor, dict[str, float]]]
"""step(i, rng) → (loss to minimise, losses to show); batches are sampled from rng."""


@dataclass
class TrainingRun:
    """What to train for how long, and where its checkpoints live."""

    kind: str  # checkpoint kind, e.g. "speech-generator"
    config: dict  # JSON-able; stored in the checkpoint; resume requires the same config
    steps: int
    seed: int = 0
    directory: Path | None = None  # checkpoint directory (None: no checkpoints)
    save_every: int = 200
    resume: bool = False
    progress: bool = True  # tqdm bar with the losses as postfix
    description: str = "training"


def _rng_states(rng: np.random.Generator) -> dict:
    """Both generators' states as they are now (CUDA's too once CUDA is in use)."""
    states = {"torch_rng": torch.get_rng_state(), "numpy_rng": rng.bit_generator.state}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda_rng"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(rng: np.random.Generator, state: dict) -> None:
    torch.set_rng_state(state["torch_rng"])
    rng.bit_generator.state = state["numpy_rng"]
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])


def _config_differences(saved: dict, current: dict) -> list[str]:
    missing = object()
    return [
        f"{key}: {saved.get(key, '(absent)')!r} in the checkpoint, {current.get(key, '(absent)')!r} now"
        for key in sorted(saved.keys() | current.keys())
        if saved.get(key, missing) != current.get(key, missing)
    ]


def _resume(run: TrainingRun, module: torch.nn.Module, optimizer: torch.optim.Optimizer,
            rng: np.random.Generator) -> tuple[int, dict[str, float]]:
    """Restore the run's checkpoint; returns its step and last shown losses (0, {} if none)."""
    if run.directory is None or not (Path(run.directory) / CONFIG_FILE).exists():
        return 0, {}
    directory = Path(run.directory)
    checkpoint = load_checkpoint(directory, run.kind)
    try:  # compare as stored: JSON turns tuples into lists
        current = json.loads(json.dumps(run.config))
    except (TypeError, ValueError) as err:
        raise InputError(f"training config is not JSON-serialisable ({err})") from None
    differences = _config_differences(checkpoint.config, current)
    if differences:
        raise InputError(
            f"{directory / CONFIG_FILE}: cannot resume, the checkpoint was trained with another "
            f"config ({'; '.join(differences)}); train without resume to start afresh"
        )
    state = checkpoint.training_state
    if state is None:
        raise InputError(f"{directory}: the checkpoint holds no training state to resume from")
    restore(module, checkpoint, str(directory))
    try:
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_states(rng, state)
        return int(state["step"]), dict(state.get("shown", {}))
    except (KeyError, ValueError, TypeError, RuntimeError) as err:
        raise InputError(f"{directory}: training state does not fit this run ({err})") from None


def train(run: TrainingRun, module: torch.nn.Module, optimizer: torch.optim.Optimizer,
          step: Step) -> dict[str, float]:
    """Run steps [start, run.steps) of `step`; returns the last step's shown losses.

    The caller sets the module's train/eval modes (a frozen submodule may need eval)."""
    if int(run.steps) != run.steps or run.steps < 0:
        raise InputError(f"training: steps {run.steps} is not a non-negative integer")
    if int(run.save_every) != run.save_every or run.save_every < 1:
        raise InputError(f"training: save_every {run.save_every} is not a positive integer")
    torch.manual_seed(run.seed)
    rng = np.random.default_rng(run.seed)
    start, shown = _resume(run, module, optimizer, rng) if run.resume else (0, {})

    completed = start
    states = _rng_states(rng)  # the generators as they were after the last completed step

    def save() -> None:
        if run.directory is not None:
            state = {"step": completed, "optimizer": optimizer.state_dict(), "shown": shown, **states}
            save_checkpoint(run.directory, run.kind, run.config, module, state)

    with tqdm(total=run.steps, initial=start, desc=run.description, disable=not run.progress) as bar:
        try:
            for i in range(start, run.steps):
                optimizer.zero_grad(set_to_none=True)
                loss, step_shown = step(i, rng)
                loss.backward()
                optimizer.step()
                completed, shown = i + 1, {key: float(value) for key, value in step_shown.items()}
                if run.directory is not None:
                    states = _rng_states(rng)
                bar.set_postfix({key: f"{value:.4g}" for key, value in shown.items()}, refresh=False)
                bar.update(1)
                if completed % run.save_every == 0 and completed < run.steps:
                    save()
        except KeyboardInterrupt:
            save()
            raise
    if completed > start:
        save()
    return shown
