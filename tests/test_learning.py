"""The learned core end to end: planted corpus → blendshape learner → model, the sparsity
ablation, the mapping's reported error, the shipped model as the player's driver, and the
learning commands on tiny data."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from assets import DEMO_AUDIO, DEMO_BLENDSHAPES, DEMO_FLAME, MODEL_DIR
from avatar_app import cli
from avatar_app.avatar import GENERATOR_MODEL, LEARNED_DEMO_SOURCE, load_learned
from avatar_app.clip import clip_from_audio
from avatar_app.player import Player
from common.errors import InputError
from models.learning.blendshape_learner import (
    LearnerConfig,
    build_model,
    train_blendshapes,
)
from models.learning.blendshape_names import MATCH, match_reference
from models.learning.datasets import load_florence, load_vocaset
from models.learning.evaluation import (
    evaluation_regions,
    face_metrics,
    leakage,
    subspace_angles,
)
from models.learning.metrics import mapping_error
from models.learning.synthetic_corpus import (
    CorpusSpec,
    make_corpus,
    planted_model,
    write_corpus,
)
from models.learning.training import TrainingRun
from models.rig.blendshapes import BlendshapeModel
from models.rig.flame import load_flame
from models.rig.mapping import MappingRig

SMALL = CorpusSpec(speech_clips=12, expression_repeats=2, emotional_repeats=0, speech_seconds=2.0)


@pytest.fixture(scope="module")
def planted():
    return planted_model(BlendshapeModel.load(DEMO_BLENDSHAPES))


@pytest.fixture(scope="module")
def corpora(planted):
    return make_corpus(planted, SMALL), make_corpus(planted, replace(SMALL, speech_clips=4, expression_repeats=1, seed=1))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """This module trains on one torch thread: its small matrices gain nothing from more, and on
    a busy machine threads wait on each other (5-10x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def learn(corpus, planted, sparsity, steps=1000, decoupling=LearnerConfig.decoupling):
    config = LearnerConfig(expression_blendshapes=len(planted.expression_names), sparsity=sparsity,
                           decoupling=decoupling)
    run = TrainingRun(kind="blendshape-learner", config={}, steps=steps, seed=0, progress=False)
    return train_blendshapes(corpus.speech, corpus.expression, config, run)


@pytest.fixture(scope="module")
def learned(corpora, planted):
    return learn(corpora[0], planted, LearnerConfig.sparsity)


def test_planted_truth_makes_the_clips(corpora, planted):
    corpus = corpora[0]
    for s in [*corpus.speech[:2], *corpus.expression[:2]]:
        speech, expression = corpus.truth[s.name]
        np.testing.assert_allclose(s.displacements, planted.displacements(speech, expression), atol=1e-6)
    peak = max(np.abs(corpus.truth[s.name][1]).max() for s in corpus.speech)
    assert peak == pytest.approx(SMALL.secondary, rel=0.35)  # planted secondary of a known size
    assert all(s.audio is not None and s.audio.duration == pytest.approx(2.0) for s in corpus.speech)
    labels = {s.emotion for s in corpus.expression}
    assert set(planted.emotion_names) <= labels


def test_planted_emotions_keep_their_speech_motion(planted):
    """What the dropped expression blendshapes did in each emotion (surprise's jaw drop, fear's
    lip stretch, anger's pressed lips) moves to its speech profile: each emotion poses as the
    demo model's but for the part of that motion outside the speech subspace (projected here by
    an SVD of our own); emotional talking holds it through speech and pauses."""
    demo = BlendshapeModel.load(DEMO_BLENDSHAPES)
    speech = planted.speech_basis.reshape(len(planted.speech_names), -1).T.astype(np.float64)
    u = np.linalg.svd(speech, full_matrices=False)[0]
    lost = demo.emotion_displacements().reshape(len(demo.emotion_names), -1).astype(np.float64)
    lost -= np.tensordot(planted.emotion_profiles, planted.expression_basis, 1).reshape(len(lost), -1)
    outside = lost - (lost @ u) @ u.T
    residual = (demo.emotion_displacements() - planted.emotion_displacements()).reshape(len(lost), -1)
    np.testing.assert_allclose(np.linalg.norm(residual, axis=1), np.linalg.norm(outside, axis=1), atol=1e-5)
    weights = dict(zip(planted.emotion_names, planted.emotion_speech_profiles))
    assert weights["surprised"][planted.speech_names.index("jaw_open")] > 0.2
    assert weights["fearful"][planted.speech_names.index("lips_wide")] > 0.5
    assert weights["angry"][planted.speech_names.index("lips_closed")] > 0.5
    assert not weights["happy"].any() and not weights["sad"].any()
    corpus = make_corpus(planted, CorpusSpec(speech_clips=0, expression_repeats=0, emotional_repeats=1, seed=2))
    for clip in corpus.emotional:
        held = clip.intensity * weights[clip.emotion]
        talking = corpus.truth[clip.name][0]
        assert (talking - held).min() > -1e-6
        np.testing.assert_allclose(np.percentile(talking, 1, axis=0), held, atol=0.02)


def test_corpus_is_written_in_the_published_layouts(tmp_path, planted):
    corpus = make_corpus(planted, CorpusSpec(speech_clips=2, expression_repeats=1, emotional_repeats=1,
                                             speech_seconds=0.5, expression_seconds=0.4))
    write_corpus(corpus, tmp_path, load_flame(DEMO_FLAME).faces)
    talking = {s.name: s for s in load_vocaset(tmp_path / "vocaset")}
    for s in [*corpus.speech, *corpus.emotional]:
        loaded = talking[s.name]
        np.testing.assert_array_equal(loaded.vertices, s.vertices)
        assert (loaded.emotion, loaded.fps) == (s.emotion, s.fps)
        assert loaded.intensity == pytest.approx(s.intensity)
        np.testing.assert_allclose(loaded.audio.samples, s.audio.samples, atol=1 / 32767)
    faces = load_florence(tmp_path / "florence")
    assert len(faces) == len(corpus.expression)
    assert sorted(f.emotion for f in faces if f.emotion in planted.emotion_names) == \
        sorted(s.emotion for s in corpus.expression if s.emotion is not None)
    assert BlendshapeModel.load(tmp_path / "planted.npz").expression_names == planted.expression_names


def own_domain_error(learner, group, own):
    """Relative RMS error of clips rebuilt from their own domain alone (w_A·B_A for talking,
    w_E·B_E for expressions), pooled over the clips."""
    basis = learner.full_bases()[own]
    error = total = 0.0
    for s in group:
        weights = learner.encode(s.displacements)[own]
        error += float(np.square(np.tensordot(weights, basis, 1) - s.displacements).sum())
        total += float(np.square(s.displacements).sum())
    return (error / total) ** 0.5


def test_learner_recovers_the_planted_subspaces(learned, corpora, planted):
    """Each set spans its planted subspace and, through its own encoder, rebuilds its own domain's
    held-out clips. (Not the full w_A·B_A + w_E·B_E: on unseen emotion mixtures the speech
    encoder's small spurious output adds 10-30 % error that varies with seed, thread count and
    CPU; the sparsity test bounds that leakage.) Over 8 seeds, 1 and 2 threads and two MKL code
    paths: angles ≤ 8.8° (speech) and ≤ 7.8° (expression), own-domain errors ≤ 0.026 and ≤ 0.068.
    Trained 100 or 500 steps, without sparsity and decoupling, or from a random start: an angle
    ≥ 19°, and but for 500 steps an own-domain error ≥ 0.37. The bounds sit between the two, on
    a log scale. On the demo head with one-AU expression blendshapes (issue 15) the expression
    error is 0.164 at 1000 steps and 0.167 at 2000 (the speech one 0.02), against 0.78 after 100
    steps and 2.2 without sparsity and decoupling: its bound moved to 0.3."""
    speech_basis, expression_basis = learned.full_bases()
    angles = subspace_angles(replace(planted, speech_basis=speech_basis, expression_basis=expression_basis), planted)
    held_out = corpora[1]
    errors = [own_domain_error(learned, group, own) for own, group in enumerate((held_out.speech, held_out.expression))]
    print(angles, "held-out own-domain relative RMS errors", np.round(errors, 3))
    assert angles["speech_angle_deg"] < 13.0 and angles["expression_angle_deg"] < 13.0
    assert errors[0] < 0.15 and errors[1] < 0.3


def cross_energy(learner, corpus):
    """Held-out cross-domain weight energy over own-domain energy, both domains pooled."""
    cross = own = 0.0
    for group, k in ((corpus.speech, 0), (corpus.expression, 1)):
        for s in group:
            w = learner.encode(s.displacements)
            own, cross = own + float(np.square(w[k]).sum()), cross + float(np.square(w[1 - k]).sum())
    return cross / own


def test_sparsity_constraint_keeps_the_domains_apart(corpora, planted):
    """The constraint on its own (the decoupling term off in both runs), at equal steps; the
    full ablation is benchmarks/sparsity_ablation.py."""
    with_constraint = cross_energy(learn(corpora[0], planted, LearnerConfig.sparsity, decoupling=0.0), corpora[1])
    without_constraint = cross_energy(learn(corpora[0], planted, 0.0, decoupling=0.0), corpora[1])
    print(f"held-out cross-domain energy: {with_constraint:.2e} with the constraint, {without_constraint:.2e} without")
    assert with_constraint * 4 < without_constraint


@pytest.fixture(scope="module")
def model(learned, corpora, planted):
    corpus = corpora[0]
    return build_model(learned, corpus.speech, corpus.expression, MappingRig.of(load_flame(DEMO_FLAME)),
                       planted.emotion_names, reference=planted)


def test_learned_model_mapping_reproduces_each_blendshape(model, planted):
    flame = MappingRig.of(load_flame(DEMO_FLAME))
    forward, neutral = flame.forward, flame.neutral
    assert (model.flame_fingerprint, model.flame_name) == (flame.fingerprint, DEMO_FLAME.name)
    for basis, coeffs, reported in ((model.speech_basis, model.speech_to_flame, model.speech_mapping_error),
                                    (model.expression_basis, model.expression_to_flame,
                                     model.expression_mapping_error)):
        np.testing.assert_allclose(mapping_error(basis, coeffs, forward, neutral), reported, rtol=1e-3, atol=1e-7)
    assert set(model.region_names) >= {"mouth", "brows", "eyes"}
    # the emotion profile of 'happy' recreates the planted happy apex through the learned bases
    happy = model.emotion_profiles[model.emotion_names.index("happy")]
    truth = planted.displacements(np.zeros((1, 4)), planted.emotion_profiles[None, 0])
    learned_apex = np.tensordot(happy, model.expression_basis, 1)
    assert np.linalg.norm(learned_apex - truth[0]) < 0.35 * np.linalg.norm(truth[0])


def test_learned_blendshapes_are_the_planted_ones_by_name(model, planted):
    """Re-based on the data's extreme poses, each learned blendshape is one planted blendshape
    (the speech ones the purest poses the talking shows: lips_wide and lips_round never come
    without some jaw_open) and takes its name."""
    for kind in ("speech", "expression"):
        names, basis = getattr(model, f"{kind}_names"), getattr(model, f"{kind}_basis")
        index, cosine = match_reference(basis, getattr(planted, f"{kind}_basis"))
        print(kind, dict(zip(names, np.round(cosine, 3))))
        assert cosine.min() >= MATCH
        assert names == tuple(getattr(planted, f"{kind}_names")[i] for i in index)


def test_learned_weights_read_0_to_1(model, corpora):
    """Each domain's weights, fitted to its held-out clips through the model's bases, peak near 1
    (the 99th percentile is the unit) and hardly go negative; the emotion profiles too."""
    for k, group in enumerate((corpora[1].speech, corpora[1].expression)):
        bases = np.concatenate([model.speech_basis, model.expression_basis]).reshape(-1, model.template.size)
        frames = np.concatenate([s.displacements for s in group]).reshape(-1, model.template.size)
        weights = np.linalg.lstsq(bases.T, frames.T, rcond=None)[0].T
        own = weights[:, :len(model.speech_names)] if k == 0 else weights[:, len(model.speech_names):]
        high, low = np.percentile(own, 99, axis=0), np.percentile(own, 1, axis=0)
        print(np.round(high, 2), np.round(low, 2))
        assert ((0.5 <= high) & (high <= 1.5)).all() and (low >= -0.2).all()
    assert model.emotion_profiles.min() > -0.2


@pytest.fixture(scope="module")
def shipped():
    return load_learned(MODEL_DIR)


def test_shipped_model_is_small_and_complete(shipped):
    size = sum(p.stat().st_size for p in MODEL_DIR.iterdir() if p.is_file())
    assert size < 10 * 2**20
    driver, model = shipped
    assert driver.emotion_names == model.emotion_names and len(model.emotion_names) >= 5
    assert model.region_names


def test_shipped_model_drives_the_demo_with_emotion(shipped):
    player = Player(LEARNED_DEMO_SOURCE.load(), backend="cpu")
    assert player.driver.__class__.__name__ == "LearnedDriver"
    player.clip = clip_from_audio(DEMO_AUDIO, player.driver, 30, duration=2.0)
    neutral_speech, neutral_expression = player.weights(0, player.clip.num_frames)
    assert neutral_speech.shape == (60, len(player.avatar.blendshapes.speech_names))
    assert np.ptp(neutral_speech, axis=0).max() > 0.3  # the mouth moves with the audio
    player.set_emotions({"happy": 1.0})
    _, happy_expression = player.weights(0, player.clip.num_frames)
    model = player.avatar.blendshapes
    profile = model.emotion_profiles[model.emotion_names.index("happy")]
    change = (happy_expression - neutral_expression).mean(axis=0)
    assert np.dot(change, profile) / (np.linalg.norm(change) * np.linalg.norm(profile)) > 0.9


def test_generator_of_other_blendshapes_is_refused(tmp_path):
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((MODEL_DIR / name).read_bytes())
    (tmp_path / GENERATOR_MODEL).write_bytes(DEMO_BLENDSHAPES.read_bytes())
    with pytest.raises(InputError, match="differ"):
        load_learned(tmp_path)


def test_learning_commands_end_to_end(tmp_path, capsys):
    model = tmp_path / "bs.npz"
    base = ["--synthetic", "--speech-clips", "4", "--quiet"]
    assert cli.main(["train-blendshapes", *base, "--steps", "30", "-o", str(model)]) == 0
    assert BlendshapeModel.load(model).region_names
    generator = tmp_path / "gen"
    assert cli.main(["train-speech", *base, "--steps", "20", "--blendshapes", str(model), "-o", str(generator),
                     "--correlation", "--correlation-steps", "5"]) == 0
    assert cli.main(["train-speech", *base, "--steps", "25", "--blendshapes", str(model), "-o", str(generator),
                     "--correlation", "--correlation-steps", "5", "--resume"]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", *base[:-1], "--corpus-seed", "1", "--generator", str(generator), "--signal",
                     "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"lve_mm2", "fdd_mm2", "speech_leakage", "speech_angle_deg"} <= set(rows[f"learned {generator.name}"])
    assert rows["planted truth"]["lve_mm2"] == pytest.approx(0.0, abs=1e-6)
    out = tmp_path / "clip.mp4"
    assert cli.main(["render", "--demo", "--generator", str(generator), "--duration", "0.5", "--size", "64x64",
                     "-q", "-o", str(out)]) == 0
    assert out.stat().st_size > 0


def test_evaluation_on_the_planted_truth_is_exact(corpora, planted):
    held_out = corpora[1]
    talking = held_out.speech
    regions = evaluation_regions(talking)
    metrics = face_metrics(planted, lambda s: held_out.truth[s.name], talking, regions)
    assert metrics["lve_mm2"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["fdd_mm2"] == pytest.approx(0.0, abs=1e-9)
    measured = leakage(planted, held_out.speech, held_out.expression)
    w = [held_out.truth[s.name] for s in held_out.speech]
    expected = sum(np.square(e).sum() for _, e in w) / sum(np.square(a).sum() for a, _ in w)
    assert measured["speech_leakage"] == pytest.approx(expected, rel=1e-4)
