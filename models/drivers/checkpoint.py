"""Checkpoints of our trained modules: a directory of config.json, model.safetensors and,
while training, training_state.pt.

Weights are safetensors (no code runs on load); the optional training state (optimizer,
step, RNG states) is read with `torch.load(weights_only=True)`, which only builds tensors and
plain containers. config.json is written last, so a directory holding it is complete.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from common.atomic import atomic_write
from common.errors import InputError, error_detail
from common.files import check_input_file, read_json_file
from models.rig.npz import check_array_bytes

CHECKPOINT_VERSION = 1
FORMAT = "talking-head-studio checkpoint"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "training_state.pt"


@dataclass
class Checkpoint:
    """What a checkpoint directory holds: the module's config, its weights, the training state."""

    config: dict
    tensors: dict[str, torch.Tensor]
    training_state: dict | None


def save_checkpoint(
    directory: str | os.PathLike,
    kind: str,
    config: dict,
    module: torch.nn.Module,
    training_state: dict | None = None,
) -> None:
    """Write `module`'s weights (and the training state, if given) and then config.json."""
    directory = Path(directory)
    try:
        header = json.dumps(
            {"format": FORMAT, "kind": kind, "version": CHECKPOINT_VERSION, "config": config},
            indent=2,
            sort_keys=True,
        )
    except (TypeError, ValueError) as err:
        raise InputError(f"{directory / CONFIG_FILE}: config is not JSON-serialisable ({err})") from None
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{directory}: cannot create the checkpoint directory ({err.strerror})") from None
    # safetensors refuses tensors that share memory or are not contiguous: store plain copies
    tensors = {key: value.detach().cpu().contiguous().clone() for key, value in module.state_dict().items()}
    blob = save(tensors)
    atomic_write(directory / WEIGHTS_FILE, lambda handle: handle.write(blob))
    if training_state is not None:
        buffer = io.BytesIO()
        torch.save(training_state, buffer)
        atomic_write(directory / STATE_FILE, lambda handle: handle.write(buffer.getvalue()))
    else:
        (directory / STATE_FILE).unlink(missing_ok=True)  # a stale state must not resume this one
    atomic_write(directory / CONFIG_FILE, lambda handle: handle.write(header.encode("utf-8")))


def _existing_file(path: Path, what: str) -> Path:
    """`path` checked to be a regular file, with the message checkpoints give for a missing one."""
    if not path.exists():
        raise InputError(f"{path}: missing; {path.parent} is not a (complete) checkpoint")
    return check_input_file(path, what)


def read_header(directory: str | os.PathLike, kind: str) -> dict:
    """config.json's config after checking it is our format, this kind and this version."""
    path = Path(directory) / CONFIG_FILE
    if not Path(directory).is_dir():
        raise InputError(f"{directory}: checkpoint directory does not exist")
    header = read_json_file(_existing_file(path, "checkpoint config"), "checkpoint config")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise InputError(f"{path}: not a {FORMAT} config")
    if header.get("kind") != kind:
        raise InputError(f"{path}: a {header.get('kind')!r} checkpoint, expected {kind!r}")
    if header.get("version") != CHECKPOINT_VERSION:
        raise InputError(
            f"{path}: checkpoint version {header.get('version')!r}, this program reads {CHECKPOINT_VERSION}"
        )
    if not isinstance(header.get("config"), dict):
        raise InputError(f"{path}: 'config' is not an object")
    return header["config"]


def load_checkpoint(directory: str | os.PathLike, kind: str) -> Checkpoint:
    """Read a checkpoint of `kind`; any problem is an InputError naming the file."""
    config = read_header(directory, kind)
    path = _existing_file(Path(directory) / WEIGHTS_FILE, "weights file")
    try:
        check_array_bytes(path.stat().st_size, str(path), "a checkpoint's weights")
        tensors = load_file(path)
    except InputError:
        raise
    except Exception as err:  # safetensors: header too large, bad JSON or dtype, truncated; I/O
        raise InputError(f"{path}: not a readable safetensors file ({error_detail(err)})") from None
    return Checkpoint(config=config, tensors=tensors, training_state=load_training_state(directory))


def load_training_state(directory: str | os.PathLike) -> dict | None:
    """training_state.pt (tensors and plain containers only), or None when there is none."""
    path = Path(directory) / STATE_FILE
    if not path.exists():
        return None
    check_input_file(path, "training state")
    try:
        check_array_bytes(path.stat().st_size, str(path), "a training state")
        state: Any = torch.load(path, map_location="cpu", weights_only=True)
    except InputError:
        raise
    except Exception as err:  # any unpickling failure means the file is unusable
        # torch explains a refused global in a long text; the line naming it is what helps
        named = [line for line in str(err).splitlines() if "GLOBAL" in line]
        detail = error_detail(type(err)(named[0]) if named else err)
        raise InputError(f"{path}: not a readable training state ({detail})") from None
    if not isinstance(state, dict):
        raise InputError(f"{path}: training state is a {type(state).__name__}, expected a dict")
    return state


def check_architecture(module: torch.nn.Module, checkpoint: Checkpoint, source: str) -> None:
    """Refuse any difference in keys or shapes between the module and the checkpoint. The
    module may live on the meta device, so a config is checked before memory is spent on it."""
    own = module.state_dict()
    saved = checkpoint.tensors
    problems = [f"{key} is missing" for key in sorted(own.keys() - saved.keys())]
    problems += [f"{key} is unexpected" for key in sorted(saved.keys() - own.keys())]
    problems += [
        f"{key} is {str(saved[key].dtype).removeprefix('torch.')} of shape {tuple(saved[key].shape)}, "
        f"the module {str(own[key].dtype).removeprefix('torch.')} of shape {tuple(own[key].shape)}"
        for key in sorted(own.keys() & saved.keys())
        if saved[key].shape != own[key].shape or saved[key].dtype != own[key].dtype
    ]
    if problems:
        raise InputError(f"{source} was saved by a different architecture: {'; '.join(problems)}")


def restore(module: torch.nn.Module, checkpoint: Checkpoint, source: str) -> None:
    """Load the checkpoint's weights into `module`, refusing any difference in keys or shapes."""
    check_architecture(module, checkpoint, source)
    module.load_state_dict(checkpoint.tensors, strict=True)
