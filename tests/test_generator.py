"""The speech/emotion generator: frame counts at any rate, both front-ends, the emotion path
through every layer, learning from a planted corpus, checkpoints and refusals."""

import dataclasses
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import Wav2Vec2Config, Wav2Vec2Model

import models.drivers.generator as generator_module
from common.errors import InputError
from models.audio.sources import Audio
from models.drivers.checkpoint import save_checkpoint
from models.drivers.contract import neutral_speech
from models.drivers.generator import (
    GeneratorConfig,
    LearnedDriver,
    SpeechGenerator,
    Wav2Vec2FrontEnd,
    mel_filterbank,
)
from models.learning.datasets import MeshSequence
from models.learning.generator_training import pause_speech_profiles, train_generator
from models.learning.training import TrainingRun
from models.rig.blendshapes import BlendshapeModel

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo" / "blendshapes.npz"
FPS = 30.0
RATE = 16000
DURATIONS = (0.37, 1.0, 2.5)
RATES = (8000, 16000, 22050, 44100)
FRAME_RATES = (25, 30, 60)


@pytest.fixture(autouse=True)
def _threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def model() -> BlendshapeModel:
    """The demo model on every 7th vertex: the same blendshapes, 7× less data to fit."""
    demo = BlendshapeModel.load(DEMO)
    keep = slice(None, None, 7)
    return dataclasses.replace(
        demo,
        speech_basis=demo.speech_basis[:, keep],
        expression_basis=demo.expression_basis[:, keep],
        template=demo.template[keep],
        region_masks=demo.region_masks[:, keep],
    )


def tiny_wav2vec2(directory: Path, layers: int = 2, norm: str = "group") -> Path:
    config = Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=37,
        conv_dim=(32, 32), conv_kernel=(10, 3), conv_stride=(5, 2), num_feat_extract_layers=2,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, feat_extract_norm=norm,
    )
    torch.manual_seed(0)
    Wav2Vec2Model(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def wav2vec2_dir(tmp_path_factory) -> Path:
    return tiny_wav2vec2(tmp_path_factory.mktemp("wav2vec2"))


def make_config(model: BlendshapeModel, front_end: str, wav2vec2_dir: Path | None = None) -> GeneratorConfig:
    return GeneratorConfig.for_model(model, front_end=front_end, wav2vec2_dir=wav2vec2_dir, width=32, layers=4)


@pytest.fixture(params=["mel", "wav2vec2"])
def driver(request, model, wav2vec2_dir) -> LearnedDriver:
    torch.manual_seed(0)
    directory = wav2vec2_dir if request.param == "wav2vec2" else None
    return LearnedDriver(SpeechGenerator(make_config(model, request.param, directory)))


def noise(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(round(seconds * rate)))).astype(np.float32)


def test_frame_count_is_round_fps_duration_at_any_rate(driver):
    ks, ke, e = (len(names) for names in (driver.speech_names, driver.expression_names, driver.emotion_names))
    for rate in RATES:
        for seconds in DURATIONS:
            audio = noise(seconds, rate)
            for fps in FRAME_RATES:
                frames = round(fps * len(audio) / rate)
                features = driver.analyse(Audio(audio, rate), fps)
                assert len(features) == frames and features.rows(0, frames).shape == (frames, 32)
                speech, expression = driver.weights(features, np.zeros((frames, e), np.float32))
                assert speech.shape == (frames, ks) and expression.shape == (frames, ke)
                assert speech.dtype == expression.dtype == np.float32
    assert neutral_speech(driver, Audio(np.zeros(0, np.float32), RATE), FPS).shape == (0, ks)
    assert neutral_speech(driver, Audio(noise(0.02, RATE), RATE), 60).shape == (1, ks)  # shorter than one analysis window


def test_front_end_is_interpolated_encoding_and_windows_match_the_whole_clip(driver):
    front = driver.generator.front
    analysed = driver.generator.analyse(Audio(noise(2.0, 22050), 22050))
    frames = 57
    with torch.no_grad():
        whole = front(analysed, frames)
        reference = F.interpolate(front.encode(analysed).T[None], size=frames, mode="linear", align_corners=False)
        assert torch.allclose(whole, reference[0].T, atol=1e-3)  # torch places its samples in float32
        for start, length in ((0, 20), (13, 30), (40, 17), (56, 1)):
            assert torch.allclose(front(analysed, frames, start, length), whole[start : start + length], atol=1e-6)


def test_mel_filterbank_covers_its_range_and_peaks_at_the_tone():
    bank = mel_filterbank(80, 512, RATE, 60.0, 7600.0).numpy()
    freqs = np.arange(257) * RATE / 512
    assert bank.shape == (257, 80)
    assert np.all(bank[(freqs <= 60) | (freqs >= 7600)] == 0)
    assert np.all(bank.max(axis=0) > 0)  # no empty band
    # HTK: 1000 Hz is 1000 mel, so a 1 kHz tone peaks in the band centred nearest 1000 mel
    step = (2595 * math.log10(1 + 7600 / 700) - 2595 * math.log10(1 + 60 / 700)) / 81
    centres = 2595 * math.log10(1 + 60 / 700) + step * np.arange(1, 81)
    tone = np.sin(2 * np.pi * 1000 * np.arange(512) / RATE) * np.hanning(512)
    power = np.abs(np.fft.rfft(tone)) ** 2
    assert abs(centres[np.argmax(power @ bank)] - 1000) <= step


def test_missing_wav2vec2_directory_is_named(model, tmp_path):
    missing = tmp_path / "no-such-wav2vec2"
    with pytest.raises(InputError, match="no-such-wav2vec2"):
        SpeechGenerator(make_config(model, "wav2vec2", missing))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty: not a usable wav2vec2"):
        SpeechGenerator(make_config(model, "wav2vec2", tmp_path / "empty"))


def test_wav2vec2_checkpoint_keeps_only_the_trainable_part(model, wav2vec2_dir, tmp_path):
    moved = Path(shutil.copytree(wav2vec2_dir, tmp_path / "w2v"))
    driver = LearnedDriver(SpeechGenerator(make_config(model, "wav2vec2", moved)))
    assert all(not key.startswith("front.") or key.startswith("front.project.") for key in driver.generator.state_dict())
    driver.save(tmp_path / "ckpt")
    audio = Audio(noise(1.3, 44100), 44100)
    assert np.array_equal(neutral_speech(LearnedDriver.load(tmp_path / "ckpt"), audio, 25), neutral_speech(driver, audio, 25))
    shutil.rmtree(moved)
    with pytest.raises(InputError, match="w2v: wav2vec2 model directory does not exist"):
        LearnedDriver.load(tmp_path / "ckpt")


def test_long_clips_go_through_wav2vec2_in_chunks_without_seams(tmp_path, monkeypatch):
    # no attention layers and per-frame norms: every output frame depends on a bounded stretch of
    # audio, so chunks with enough context must reproduce the whole-clip pass
    directory = tiny_wav2vec2(tmp_path / "local", layers=0, norm="layer")
    config = GeneratorConfig.for_model(BlendshapeModel.load(DEMO), front_end="wav2vec2", wav2vec2_dir=directory)
    frozen = Wav2Vec2FrontEnd(config).wav2vec2
    signal = Audio(noise(3.0, RATE), RATE)
    stats, native = frozen.statistics(signal), frozen.native_frames(signal.num_samples)
    whole = frozen.analyse(signal, stats, 0, native)
    monkeypatch.setattr(generator_module, "_WAV2VEC2_CHUNK_S", 0.5)
    monkeypatch.setattr(generator_module, "_WAV2VEC2_CONTEXT_S", 0.2)
    frozen._chunks.clear()
    chunked = frozen.analyse(signal, stats, 0, native)
    assert torch.allclose(frozen.analyse(signal, stats, 37, 101), whole[37:101], atol=1e-5)
    field, stride = 10 + (3 - 1) * 5, 5 * 2  # samples per frame, and between frames
    assert chunked.shape == whole.shape == ((3 * RATE - field) // stride + 1, 32)
    assert torch.allclose(chunked, whole, atol=1e-5)


def test_emotion_enters_every_layer_frame_by_frame(model):
    torch.manual_seed(0)
    generator = SpeechGenerator(GeneratorConfig.for_model(model, width=16, layers=4)).eval()
    frames, frame = 40, 17
    features = torch.randn(1, frames, 16)
    neutral = torch.zeros(1, frames, len(model.emotion_names))
    happy_at_frame = neutral.clone()
    happy_at_frame[0, frame, 0] = 1.0

    def changes() -> torch.Tensor:
        with torch.no_grad():
            return (generator(features, happy_at_frame) - generator(features, neutral)).abs().amax(-1)[0]

    assert changes()[frame] > 1e-4
    weights = [block.emotion.weight.detach().clone() for block in generator.blocks]
    for only in range(len(generator.blocks)):  # each layer alone still carries the emotion
        with torch.no_grad():
            for index, block in enumerate(generator.blocks):
                block.emotion.weight.copy_(weights[index] if index == only else 0.0)
        assert changes()[frame] > 1e-5, f"layer {only}"
    with torch.no_grad():
        generator.emotion_table.zero_()
    assert torch.equal(changes(), torch.zeros(frames))


def planted_clip(model: BlendshapeModel, rng: np.random.Generator, seconds: float,
                 emotion: str | None = None, name: str = "clip") -> tuple[MeshSequence, np.ndarray]:
    """An amplitude-modulated tone; jaw_open follows its normalised envelope and the emotion
    adds its profile's expression. Returns the sequence and the true jaw_open per frame."""
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = sum(rng.uniform(0.3, 1) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
                   for f in rng.uniform(1, 4, 3))
    envelope = np.clip(envelope, 0, None) / envelope.max()
    pitch = rng.uniform(120, 300)
    tone = np.sin(2 * np.pi * pitch * t) + 0.5 * np.sin(4 * np.pi * pitch * t)
    audio = 0.5 * envelope * tone + 1e-3 * rng.standard_normal(len(t))
    frames = round(seconds * FPS)
    jaw = envelope[np.minimum(np.round(np.arange(frames) / FPS * RATE).astype(int), len(t) - 1)]
    speech = np.zeros((frames, len(model.speech_names)))
    speech[:, model.speech_names.index("jaw_open")] = jaw
    mix = {} if emotion is None else {emotion: 1.0}
    vertices = model.template + model.displacements(speech, model.expression_weights(mix, frames))
    sequence = MeshSequence(name, vertices.astype(np.float32), model.template, FPS,
                            Audio(audio.astype(np.float32), RATE), emotion, 1.0)
    return sequence, jaw


EMOTIONS = (None, "happy", "sad", "surprised")


@pytest.fixture(scope="module")
def trained(model, tmp_path_factory) -> tuple[LearnedDriver, Path]:
    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    sequences = [planted_clip(model, rng, 3.0, EMOTIONS[i % 4], f"clip{i}")[0] for i in range(12)]
    directory = tmp_path_factory.mktemp("generator-run")
    run = TrainingRun(kind="speech-generator", config={}, steps=150, seed=0, directory=directory, progress=False)
    config = GeneratorConfig.for_model(model, width=64, layers=5)
    return train_generator(sequences, model, config, run, window_s=2.0, batch=8, lr=3e-3), directory


def test_training_learns_speech_from_audio_and_expression_from_emotion(model, trained):
    driver, _ = trained
    torch.manual_seed(0)
    untrained = LearnedDriver(SpeechGenerator(driver.generator.config))
    held_out, jaw = planted_clip(model, np.random.default_rng(99), 4.0, "happy")
    frames = len(jaw)
    happy = np.zeros((frames, len(model.emotion_names)), np.float32)
    happy[:, model.emotion_names.index("happy")] = 1.0

    def vertex_mse(d: LearnedDriver) -> float:
        speech, expression = d.weights(d.analyse(held_out.audio, FPS), happy)
        return float(np.mean((model.displacements(speech, expression) - held_out.displacements) ** 2))

    assert vertex_mse(driver) < 0.05 * vertex_mse(untrained)
    speech = neutral_speech(driver, held_out.audio, FPS)
    assert np.corrcoef(speech[:, model.speech_names.index("jaw_open")], jaw)[0, 1] > 0.8

    # what an emotion adds to the face is its profile (speaking through speech shapes that look
    # alike, e.g. lips_wide for a smile, is as right as the expression shape itself)
    features = driver.analyse(held_out.audio, FPS)
    neutral = model.displacements(*driver.weights(features, np.zeros_like(happy))).mean(axis=0)
    for emotion in ("happy", "surprised"):
        intensities = np.zeros_like(happy)
        intensities[:, model.emotion_names.index(emotion)] = 1.0
        added = model.displacements(*driver.weights(features, intensities)).mean(axis=0) - neutral
        profile = np.tensordot(model.emotion_profiles[model.emotion_names.index(emotion)], model.expression_basis, 1)
        assert np.linalg.norm(added - profile) < 0.35 * np.linalg.norm(profile), emotion


def test_checkpoints_reload_to_identical_outputs(model, trained, tmp_path):
    driver, run_directory = trained
    driver.save(tmp_path / "saved")
    audio = Audio(noise(1.7, 22050, seed=3), 22050)
    intensities = np.random.default_rng(0).uniform(0, 1, (round(1.7 * 30), len(model.emotion_names)))
    expected = driver.weights(driver.analyse(audio, 30), intensities)
    for directory in (tmp_path / "saved", run_directory):
        loaded = LearnedDriver.load(directory)
        got = loaded.weights(loaded.analyse(audio, 30), intensities)
        assert all(np.array_equal(a, b) for a, b in zip(got, expected))
    loaded.check_model(model)


def test_weights_are_the_neutral_speech_part(driver):
    audio = Audio(noise(1.1, 44100, seed=5), 44100)
    features = driver.analyse(audio, 60)
    speech, _ = driver.weights(features, np.zeros((len(features), len(driver.emotion_names)), np.float32))
    assert np.array_equal(neutral_speech(driver, audio, 60), speech)


def test_refusals_name_the_problem(model, trained, tmp_path):
    driver, _ = trained
    save_checkpoint(tmp_path / "other", "correlation", {"generator": {}}, torch.nn.Linear(1, 1))
    with pytest.raises(InputError, match="'correlation' checkpoint"):
        LearnedDriver.load(tmp_path / "other")
    wider = dataclasses.replace(driver.generator.config, width=65)
    save_checkpoint(tmp_path / "wider", "speech-generator", {"generator": dataclasses.asdict(wider)}, driver.generator)
    with pytest.raises(InputError, match="different architecture"):
        LearnedDriver.load(tmp_path / "wider")
    renamed = dataclasses.replace(model, emotion_names=("joy", *model.emotion_names[1:]))
    with pytest.raises(InputError, match="emotion names .*happy.*joy"):
        driver.check_model(renamed)
    with pytest.raises(InputError, match="kernel 4 must be odd"):
        GeneratorConfig.for_model(model, kernel=4)
    with pytest.raises(InputError, match="unknown generator setting"):
        GeneratorConfig.from_dict({**dataclasses.asdict(driver.generator.config), "depth": 3}, "x.json")
    with pytest.raises(InputError, match=r"shape \(30, 7\), got \(3, 7\)"):
        driver.weights(driver.analyse(Audio(noise(1.0, RATE), RATE), FPS), np.zeros((3, 7)))
    bored, _ = planted_clip(model, np.random.default_rng(0), 1.0, None, "bored-clip")
    bored.emotion = "bored"
    run = TrainingRun(kind="speech-generator", config={}, steps=1, progress=False)
    with pytest.raises(InputError, match="bored-clip: unknown emotion 'bored'.*happy, sad"):
        train_generator([bored], model, GeneratorConfig.for_model(model, width=8, layers=1), run)


@pytest.fixture(scope="module")
def small_set(model) -> list[MeshSequence]:
    rng = np.random.default_rng(4)
    return [planted_clip(model, rng, 1.0, emotion, f"small{i}")[0] for i, emotion in enumerate((None, "sad", "happy"))]


def small_run(directory: Path | None, steps: int, resume: bool = False) -> TrainingRun:
    return TrainingRun(kind="speech-generator", config={"corpus": "small"}, steps=steps, seed=3,
                       directory=directory, save_every=2, resume=resume, progress=False)


def test_an_interrupted_run_resumes_to_the_same_weights(model, small_set, tmp_path):
    config = GeneratorConfig.for_model(model, width=8, layers=2)
    straight = train_generator(small_set, model, config, small_run(tmp_path / "straight", 6), batch=2)
    train_generator(small_set, model, config, small_run(tmp_path / "resumed", 3), batch=2)
    resumed = train_generator(small_set, model, config, small_run(tmp_path / "resumed", 6, resume=True), batch=2)
    for (name, a), b in zip(straight.generator.state_dict().items(), resumed.generator.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(InputError, match="lr"):
        train_generator(small_set, model, config, small_run(tmp_path / "resumed", 8, resume=True), batch=2, lr=0.01)


def test_auxiliary_loss_sees_the_batch_and_shapes_the_result(model, small_set):
    config = GeneratorConfig.for_model(model, width=8, layers=2)
    k, e = len(model.speech_names) + len(model.expression_names), len(model.emotion_names)
    seen = []

    def quiet(pred: torch.Tensor, target: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
        seen.append((pred.shape, target.shape, emotion.shape, set(emotion.sum(-1).flatten().tolist())))
        return 1e3 * pred.square().mean()  # outweighs the vertex error: all weights toward 0

    plain = train_generator(small_set, model, config, small_run(None, 20), batch=3, window_s=0.5, lr=0.01)
    shaped = train_generator(small_set, model, config, small_run(None, 20), auxiliary=quiet, batch=3, window_s=0.5,
                             lr=0.01)
    assert len(seen) == 20
    assert all(tuple(shapes) == ((3, 15, k), (3, 15, k), (3, 15, e)) for *shapes, _ in seen)
    assert set().union(*(sums for *_, sums in seen)) <= {0.0, 1.0}  # neutral, or one emotion at 1
    audio = small_set[0].audio
    assert np.abs(neutral_speech(shaped, audio, FPS)).mean() < 0.5 * np.abs(neutral_speech(plain, audio, FPS)).mean()


def test_long_clips_are_analysed_and_decoded_in_windows_equal_to_the_whole(driver, monkeypatch):
    """Windows of features and of decoding (with the TCN's reach each side) give the rows of
    the whole clip analysed and decoded at once, so memory need not grow with the clip."""
    audio = Audio(noise(6.0, 22050, seed=7), 22050)
    features = driver.analyse(audio, FPS)
    frames = len(features)
    intensities = np.random.default_rng(1).uniform(0, 1, (frames, len(driver.emotion_names))).astype(np.float32)
    whole = features.rows(0, frames)
    for start, stop in ((0, 1), (5, 64), (97, frames), (frames - 1, frames)):
        assert torch.allclose(features.rows(start, stop), whole[start:stop], atol=1e-5)
    monkeypatch.setattr(generator_module, "_ANALYSIS_FRAMES", 37)  # statistics and rows in small pieces
    pieces = driver.analyse(audio, FPS)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(pieces.stats, features.stats))
    assert torch.allclose(pieces.rows(0, frames), whole, atol=1e-5)
    at_once = driver.weights(features, intensities)
    monkeypatch.setattr(generator_module, "_GENERATE_FRAMES", 16)
    windowed = driver.weights(features, intensities)
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(windowed, at_once))
    part = driver.weights(features, intensities, 40, 90)
    assert all(np.allclose(a, b[40:90], atol=1e-5) for a, b in zip(part, at_once))


def test_a_config_is_checked_against_the_weights_before_the_network_is_built(model, trained, tmp_path):
    """A config.json may claim any sizes: they are bounded, and compared with the stored
    weights on the meta device (no memory) before the real network is made."""
    import resource

    driver, _ = trained
    for key, value in (("width", 10**9), ("layers", 10**5), ("kernel", 10**4), ("mel_bands", True)):
        with pytest.raises(InputError, match=key):
            GeneratorConfig.from_dict({**dataclasses.asdict(driver.generator.config), key: value}, "x.json")
    huge = dataclasses.replace(driver.generator.config, width=2048, layers=16)  # ~800 MB if built
    save_checkpoint(tmp_path / "huge", "speech-generator", {"generator": dataclasses.asdict(huge)}, driver.generator)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(InputError, match="different architecture"):
        LearnedDriver.load(tmp_path / "huge")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB


def test_velocity_loss_calms_the_expression_stream(model, small_set):
    """The velocity loss costs frame-to-frame jitter of the expression stream (whose truth moves
    slowly), and it is the expression stream it calms, more than the speech stream."""
    config = GeneratorConfig.for_model(model, width=8, layers=2)
    settings = {"batch": 3, "window_s": 0.5, "lr": 0.01}
    plain = train_generator(small_set, model, config, small_run(None, 60), **settings)
    calm = train_generator(small_set, model, config, small_run(None, 60), velocity=100.0, **settings)
    clip = small_set[0]

    def jitter(driver: LearnedDriver) -> tuple[float, float]:
        features = driver.analyse(clip.audio, FPS)
        speech, expression = driver.weights(features, np.zeros((len(clip.vertices), len(model.emotion_names))))
        return tuple(float(np.abs(np.diff(w, axis=0)).mean()) for w in (speech, expression))

    (plain_speech, plain_expression), (calm_speech, calm_expression) = jitter(plain), jitter(calm)
    assert calm_expression < 0.5 * plain_expression
    assert calm_expression / calm_speech < 0.5 * plain_expression / plain_speech
    with pytest.raises(InputError, match="velocity"):
        train_generator(small_set, model, config, small_run(None, 1), velocity=-1.0)


def test_pause_speech_profiles_recover_a_planted_jaw_drop(model):
    """Clips under surprise hold the jaw 0.3 open through speech and pauses: measured in the pauses
    of neutral clips, the trained generator's surprise moves the face about as much (read in
    vertices: a low-norm blendshape's weight is poorly determined), its sadness barely; clips
    without a pause are refused."""
    rng = np.random.default_rng(5)
    jaw = model.speech_names.index("jaw_open")
    clips = []
    for i, emotion in enumerate((None, "surprised", None, "surprised", "sad", None)):
        clip, _ = planted_clip(model, rng, 1.5, emotion, f"pause{i}")
        if emotion == "surprised":
            held = np.zeros((len(clip.vertices), len(model.speech_names)))
            held[:, jaw] = 0.3
            clip.vertices = clip.vertices + model.displacements(held, np.zeros((len(held), len(model.expression_names))))
        clips.append(clip)
    config = GeneratorConfig.for_model(model, width=32, layers=2)
    driver = train_generator(clips, model, config, small_run(None, 1000), batch=4, window_s=0.5, lr=0.003)
    profiles = pause_speech_profiles(driver, model, clips)
    assert profiles.shape == (len(model.emotion_names), len(model.speech_names))
    still = np.zeros((len(model.emotion_names), len(model.expression_names)))
    shown = model.displacements(profiles, still)  # what each profile does to the face
    planted = 0.3 * model.speech_basis[jaw]
    surprised = shown[model.emotion_names.index("surprised")]
    assert np.linalg.norm(surprised - planted) < 0.45 * np.linalg.norm(planted)  # measured 0.30
    assert np.linalg.norm(shown[model.emotion_names.index("sad")]) < 0.2 * np.linalg.norm(planted)  # measured 0.05
    loud = [dataclasses.replace(c, audio=Audio(np.full(c.audio.num_samples, 0.3, np.float32), RATE)) for c in clips]
    with pytest.raises(InputError, match="pause"):
        pause_speech_profiles(driver, model, loud)
