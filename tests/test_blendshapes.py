"""Blendshape model file, weights → FLAME algebra, weight sequences, and emotion mixes."""

import csv
from pathlib import Path

import numpy as np
import pytest

from common.errors import InputError
from models.drivers.recorded import RecordedDriver, RecordedWeights
from models.rig.blendshapes import BlendshapeModel, WeightSequence
from models.rig.emotion import check_emotions, parse_emotions

SPEECH = ("jaw_open", "lips_wide", "lips_round")
EXPRESSION = ("smile", "brow_raise")
EMOTIONS = ("happy", "surprised", "sad")


def arrays(vertices: int = 7, seed: int = 0) -> dict:
    """Constructor arguments of a small random model."""
    rng = np.random.default_rng(seed)
    ks, ke = len(SPEECH), len(EXPRESSION)
    return dict(
        speech_names=SPEECH,
        expression_names=EXPRESSION,
        emotion_names=EMOTIONS,
        speech_basis=rng.normal(size=(ks, vertices, 3)),
        expression_basis=rng.normal(size=(ke, vertices, 3)),
        speech_to_flame=rng.normal(size=(ks, 103)),
        expression_to_flame=rng.normal(size=(ke, 103)),
        emotion_profiles=rng.uniform(size=(len(EMOTIONS), ke)),
        emotion_speech_profiles=rng.uniform(size=(len(EMOTIONS), ks)),
        template=rng.normal(size=(vertices, 3)),
        speech_mapping_error=rng.uniform(size=ks),
        expression_mapping_error=rng.uniform(size=ke),
    )


@pytest.fixture
def model() -> BlendshapeModel:
    return BlendshapeModel(**arrays())


def test_save_load_round_trip(model: BlendshapeModel, tmp_path: Path) -> None:
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = BlendshapeModel.load(path)
    assert loaded.format_version == 1
    for key, value in arrays().items():
        if "names" in key:
            assert getattr(loaded, key) == value
        else:
            np.testing.assert_array_equal(getattr(loaded, key), value.astype(np.float32))
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def corrupt(tmp_path: Path, **changes) -> Path:
    """A model file with some keys replaced (value None removes the key)."""
    data = {key: np.array(value, dtype=str) if "names" in key else value for key, value in arrays().items()}
    data["format_version"] = np.int64(1)
    data.update(changes)
    path = tmp_path / "bad.npz"
    np.savez(path, **{key: value for key, value in data.items() if value is not None})
    return path


@pytest.mark.parametrize(
    "changes, problem",
    [
        (dict(template=None), "missing key.*template"),
        (dict(format_version=np.int64(2)), "format_version"),
        (dict(speech_basis=np.zeros((3, 6, 3))), "speech_basis has shape"),
        (dict(speech_to_flame=np.zeros((3, 100))), "speech_to_flame has shape"),
        (dict(emotion_profiles=np.zeros((2, 2))), "emotion_profiles has shape"),
        (dict(emotion_speech_profiles=np.zeros((3, 2))), "emotion_speech_profiles has shape"),
        (dict(emotion_speech_profiles=np.full((3, 3), 1e9)), "emotion_speech_profiles"),
        (dict(expression_mapping_error=np.array([np.nan, 0.0])), "expression_mapping_error contains NaN"),
        (dict(speech_names=np.array([1, 2, 3])), "speech_names must be"),
        (dict(emotion_names=np.array(["happy", "happy", "sad"])), "emotion_names has duplicates"),
        (dict(expression_names=np.array(["jaw_open", "smile"])), "names used for both speech and expression"),
    ],
)
def test_load_rejects_bad_files(tmp_path: Path, changes: dict, problem: str) -> None:
    path = corrupt(tmp_path, **changes)
    with pytest.raises(InputError, match=f"bad.npz: {problem}"):
        BlendshapeModel.load(path)


def test_load_rejects_non_archives_and_pickles(tmp_path: Path) -> None:
    text = tmp_path / "text.npz"
    text.write_text("hello")
    pickled = corrupt(tmp_path, template=np.array([{"a": 1}], dtype=object))
    for path in (text, pickled, tmp_path / "missing.npz"):
        with pytest.raises(InputError, match=path.name):
            BlendshapeModel.load(path)


def test_to_flame_matches_an_independent_computation(model: BlendshapeModel) -> None:
    rng = np.random.default_rng(5)
    ws, we = rng.uniform(size=(4, 3)), rng.uniform(size=(4, 2))
    a = arrays()
    expected = np.zeros((4, 103))
    for t in range(4):
        for k in range(3):
            expected[t] += 0.7 * ws[t, k] * a["speech_to_flame"][k]
        for k in range(2):
            expected[t] += 1.5 * we[t, k] * a["expression_to_flame"][k]

    expr, jaw = model.to_flame(ws, we, speech_gain=0.7, expression_gain=1.5)

    assert expr.shape == (4, 100) and jaw.shape == (4, 3)
    np.testing.assert_allclose(np.hstack([expr, jaw]), expected, rtol=1e-5, atol=1e-5)
    silent_expr, silent_jaw = model.to_flame(ws, we, speech_gain=0.0, expression_gain=1.0)
    np.testing.assert_allclose(np.hstack([silent_expr, silent_jaw]), we @ a["expression_to_flame"], atol=1e-5)


def test_displacements_are_the_linear_blend(model: BlendshapeModel) -> None:
    ws, we = np.eye(3)[[0, 2]], np.array([[0.5, 0.0], [0.0, 1.0]])
    out = model.displacements(ws, we)
    a = arrays()
    np.testing.assert_allclose(out[0], a["speech_basis"][0] + 0.5 * a["expression_basis"][0], atol=1e-6)
    np.testing.assert_allclose(out[1], a["speech_basis"][2] + a["expression_basis"][1], atol=1e-6)


def test_weights_are_checked(model: BlendshapeModel) -> None:
    with pytest.raises(InputError, match="speech weights contains NaN"):
        model.to_flame(np.array([[0.1, np.nan, 0.0]]), np.zeros((1, 2)))
    with pytest.raises(InputError, match="expression weights has shape"):
        model.to_flame(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(InputError, match="speech gain"):
        model.to_flame(np.zeros((2, 3)), np.zeros((2, 2)), speech_gain=float("nan"))


def test_expression_weights_from_emotions(model: BlendshapeModel) -> None:
    profiles = arrays()["emotion_profiles"]
    held = model.expression_weights({"happy": 0.8, "sad": 0.5}, 3)
    np.testing.assert_allclose(held, np.tile(0.8 * profiles[0] + 0.5 * profiles[2], (3, 1)), atol=1e-6)
    ramp = np.linspace(0, 1, 4)[:, None] * np.array([[0.0, 1.0, 0.0]])
    np.testing.assert_allclose(model.expression_weights(ramp, 4), ramp[:, 1:2] * profiles[1], atol=1e-6)
    with pytest.raises(InputError, match="unknown emotion 'angry'; known emotions: happy, surprised, sad"):
        model.expression_weights({"angry": 1.0}, 3)
    with pytest.raises(InputError, match="emotion intensities has shape"):
        model.expression_weights(np.zeros((4, 2)), 4)


def test_emotion_speech_profiles(model: BlendshapeModel, tmp_path: Path) -> None:
    """Held and per-frame mixes of the speech profiles; a stills' RecordedDriver adds them to the
    recorded speech; the displacements of an emotion alone sum both sets; files from before the
    field load with zeros."""
    speech_profiles = arrays()["emotion_speech_profiles"]
    held = model.emotion_speech_weights({"happy": 0.8, "sad": 0.5}, 3)
    np.testing.assert_allclose(held, np.tile(0.8 * speech_profiles[0] + 0.5 * speech_profiles[2], (3, 1)), atol=1e-6)
    recorded = np.random.default_rng(1).uniform(size=(4, len(SPEECH))).astype(np.float32)
    ramp = np.linspace(0, 1, 4)[:, None] * np.array([[0.0, 1.0, 0.0]], np.float32)
    speech, expression = RecordedDriver.for_model(model).weights(RecordedWeights(recorded), ramp)
    np.testing.assert_allclose(speech, recorded + ramp[:, 1:2] * speech_profiles[1], atol=1e-6)
    np.testing.assert_allclose(expression, ramp[:, 1:2] * arrays()["emotion_profiles"][1], atol=1e-6)
    surprised = (np.einsum("k,kvc->vc", arrays()["emotion_profiles"][1], arrays()["expression_basis"])
                 + np.einsum("k,kvc->vc", speech_profiles[1], arrays()["speech_basis"]))
    np.testing.assert_allclose(model.emotion_displacements(0.5)[1], 0.5 * surprised, atol=1e-5)
    older = BlendshapeModel.load(corrupt(tmp_path, emotion_speech_profiles=None))
    np.testing.assert_array_equal(older.emotion_speech_profiles, np.zeros((len(EMOTIONS), len(SPEECH))))


def test_parse_emotions() -> None:
    assert parse_emotions("happy=0.8,surprised=0.3") == {"happy": 0.8, "surprised": 0.3}
    assert parse_emotions(" happy ; sad=0 ;") == {"happy": 1.0, "sad": 0.0}
    assert parse_emotions("") == {}
    for text, token in [("happy=1.5", "happy=1.5"), ("sad=-0.1", "sad=-0.1"), ("happy=lots", "happy=lots"),
                        ("=0.3", "=0.3"), ("happy=nan", "happy=nan"), ("sad,sad=0.2", "sad=0.2")]:  # fmt: skip
        with pytest.raises(InputError, match=f"'{token}'"):
            parse_emotions(text)
    check_emotions({"happy": 1.0}, EMOTIONS)
    with pytest.raises(InputError, match="'angry'.*happy, surprised, sad"):
        check_emotions({"angry": 0.5}, EMOTIONS)


@pytest.fixture
def sequence() -> WeightSequence:
    rng = np.random.default_rng(9)
    return WeightSequence(
        fps=25.0, speech=rng.uniform(size=(5, 3)), expression=rng.uniform(size=(5, 2)),
        speech_names=SPEECH, expression_names=EXPRESSION,
    )  # fmt: skip


def test_weight_sequence_round_trip(
    sequence: WeightSequence, model: BlendshapeModel, tmp_path: Path
) -> None:
    path = tmp_path / "clip.weights.npz"
    sequence.save(path)
    loaded = WeightSequence.load(path)
    assert loaded.fps == 25.0 and loaded.speech_names == SPEECH
    np.testing.assert_array_equal(loaded.speech, sequence.speech)
    np.testing.assert_array_equal(loaded.expression, sequence.expression)
    loaded.check_against(model)
    with np.load(path, allow_pickle=False) as npz:
        assert npz["speech_names"].dtype.kind == "U"


def test_weight_sequence_must_match_the_model(sequence: WeightSequence, tmp_path: Path) -> None:
    other = BlendshapeModel(**{**arrays(), "speech_names": ("jaw_open", "lips_wide", "lips_pucker")})
    with pytest.raises(InputError, match="lips_pucker"):
        sequence.check_against(other)
    path = tmp_path / "broken.weights.npz"
    np.savez(path, fps=np.float64(0.0), speech=np.zeros((2, 3)), expression=np.zeros((2, 2)),
             speech_names=np.array(SPEECH), expression_names=np.array(EXPRESSION))  # fmt: skip
    with pytest.raises(InputError, match="broken.weights.npz: fps"):
        WeightSequence.load(path)


def test_weights_csv(sequence: WeightSequence, tmp_path: Path) -> None:
    path = tmp_path / "clip.csv"
    sequence.to_csv(path)
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["time", *SPEECH, *EXPRESSION]
    table = np.array(rows[1:], dtype=float)
    np.testing.assert_allclose(table[:, 0], np.arange(5) / 25.0)
    np.testing.assert_allclose(table[:, 1:], np.hstack([sequence.speech, sequence.expression]), rtol=1e-7)
