"""What a checkpoint folder of ours holds (`models/drivers/checkpoint.py`): a speech generator
(`avatar train-speech`, the shipped assets/model) told from its config alone, without loading
its weights, or another module's training checkpoint."""
from __future__ import annotations

from pathlib import Path

from common.errors import InputError
from common.files import read_json_file
from models.drivers.checkpoint import CONFIG_FILE, FORMAT, STATE_FILE, WEIGHTS_FILE, load_training_state, read_header
from models.drivers.generator import KIND as GENERATOR_KIND
from models.drivers.generator import GeneratorConfig, check_names
from models.rig.blendshapes import BlendshapeModel

from ..avatar import GENERATOR_MODEL


def is_checkpoint_folder(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file()


def _pretrained(path: Path, header: dict) -> str:
    """A Hugging Face model folder (save_pretrained layout), such as the wav2vec2 a generator's
    front-end may use."""
    kind = str(header["model_type"])
    use = "; `avatar train-speech --front-end wav2vec2 --wav2vec2 DIR` takes it" if kind == "wav2vec2" else ""
    size = ", ".join(f"{key} {header[key]}" for key in ("hidden_size", "num_hidden_layers") if key in header)
    return f"{path}: a Hugging Face {kind} model folder (save_pretrained layout){use}" + (f"\n  {size}" if size else "")


def _kind(path: Path) -> str:
    """The checkpoint kind config.json names (read_header then checks everything else)."""
    header = read_json_file(path / CONFIG_FILE, "checkpoint config")
    if isinstance(header, dict) and "model_type" in header and "format" not in header:
        return "pretrained"
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise InputError(f"{path / CONFIG_FILE}: not a {FORMAT} config (a generator folder holds {CONFIG_FILE}, "
                         f"{WEIGHTS_FILE} and {GENERATOR_MODEL})")
    kind = header.get("kind")
    if not isinstance(kind, str):
        raise InputError(f"{path / CONFIG_FILE}: 'kind' is not text")
    return kind


def _settings(config: dict) -> str:
    return ", ".join(f"{k} {'none' if v is None else v}" for k, v in sorted(config.items())) or "none recorded"


def _names(what: str, names: tuple[str, ...]) -> str:
    return f"  {what} ({len(names)}): {', '.join(names) or '(none)'}"


def _front_end(config: GeneratorConfig) -> str:
    if config.front_end == "mel":
        return f"log-mel, {config.mel_bands} bands, {config.mel_fmin:g}–{config.mel_fmax:g} Hz, 16 kHz audio"
    where = Path(config.wav2vec2_dir)
    found = "" if where.is_dir() else " (missing here: the generator cannot run)"
    return f"frozen wav2vec2 from {where}{found}"


def _weights(path: Path) -> str:
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        return f"  weights: {WEIGHTS_FILE} missing: an incomplete checkpoint"
    return f"  weights: {WEIGHTS_FILE}, {weights.stat().st_size / 2**20:.1f} MiB (not loaded to describe them)"


def _training_state(path: Path) -> list[str]:
    state = load_training_state(path)
    if state is None:
        return []
    step = state.get("step")
    return [f"  {STATE_FILE}: stopped after step {step}; the same command with --resume continues it"]


def _drives(path: Path, config: GeneratorConfig) -> str:
    """Whether the generator folder's blendshape model is the one its names were trained for."""
    model_path = path / GENERATOR_MODEL
    if not model_path.is_file():
        return f"  drives: {GENERATOR_MODEL} missing (give --blendshapes with the model it was trained for)"
    model = BlendshapeModel.load(model_path)
    try:
        check_names(config, model)
    except InputError as err:
        return f"  drives: {GENERATOR_MODEL}, which does not fit: {err}"
    return f"  drives: {GENERATOR_MODEL} ({model.template.shape[0]} vertices), the same names in the same order"


def describe_generator(path: Path) -> str:
    header = read_header(path, GENERATOR_KIND)
    stored = header.get("generator")
    if not isinstance(stored, dict):
        raise InputError(f"{path / CONFIG_FILE}: no 'generator' settings")
    source = str(path / CONFIG_FILE)
    try:
        config = GeneratorConfig.from_dict(stored, source)
    except InputError as err:  # the config's own checks say "generator config: …", not which file
        text = str(err)
        raise (err if text.startswith(source) else InputError(f"{source}: {text}")) from None
    lines = [f"{path}: speech generator (`avatar train-speech`; use it with --generator {path})",
             f"  front-end: {_front_end(config)}",
             f"  network: {config.layers} dilated TCN layers of width {config.width}, kernel {config.kernel}, "
             f"emotion embedding {config.emotion_dim} added in every layer",
             _names("speech blendshapes", config.speech_names),
             _names("expression blendshapes", config.expression_names),
             _names("emotions", config.emotion_names)]
    training = header.get("training")
    if isinstance(training, dict) and training:
        lines.append(f"  trained with: {_settings(training)}")
    return "\n".join([*lines, _weights(path), _drives(path, config), *_training_state(path)])


def describe_checkpoint(path: Path) -> str:
    """Any checkpoint folder of ours: a generator in full, another kind by its stored config."""
    kind = _kind(path)
    if kind == "pretrained":
        return _pretrained(path, read_json_file(path / CONFIG_FILE, "model config"))
    if kind == GENERATOR_KIND:
        return describe_generator(path)
    config = read_header(path, kind)
    return "\n".join([f"{path}: {kind} training checkpoint", f"  settings: {_settings(config)}", _weights(path),
                      *_training_state(path)])
