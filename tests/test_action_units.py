"""The action-unit meter against hand-computed displacements, and the emotions' EMFACS signatures
(Friesen & Ekman 1983) measured with it on the demo head, for the hand-made and the learned model."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from assets import DEMO_AUDIO, MODEL_DIR
from avatar_app.demo.blendshapes import build_demo_blendshapes
from avatar_app.demo.head import build_demo_head
from avatar_app.demo.landmarks import demo_landmarks
from common.errors import InputError
from models.audio.decode import open_audio
from models.drivers.generator import LearnedDriver
from models.rig.action_units import ACTION_UNITS, LANDMARKS, HeadAxes, action_units, emotion_action_units
from models.rig.blendshapes import BlendshapeModel
from models.rig.flame import load_flame
from models.rig.mapping import MappingRig

# An emotion shows when each of its defining AUs moves its landmark at least this far: about
# a third of a full real movement (brows, lid and lip corners move 3–10 mm), and 4–5 pixels of
# the face on a 384² frame of the demo head.
SIGNATURE_MM = 1.5
# Two emotions are told apart when their AU vectors lie at least this far apart.
DISTINCT_MM = 5.0
# EMFACS signatures; AU16 is read directly (lower lip toward the chin), contempt's unilateral
# AU14 by the corners' asymmetry.
SIGNATURES = {
    "happy": ("AU6", "AU12L", "AU12R"),
    "sad": ("AU1", "AU4", "AU15"),
    "angry": ("AU4", "AU5", "AU7", "AU23"),
    "surprised": ("AU1", "AU2", "AU5", "AU26"),
    "fearful": ("AU1", "AU2", "AU4", "AU5", "AU20", "AU26"),
    "disgusted": ("AU9", "AU15", "AU16"),
    "contempt": ("AU14",),
}
# Other AUs an emotion moves stay below this: under half a typical full movement. Disgust's
# AU10 and contempt's one-sided AU12 belong to their common EMFACS variants and are exempt.
OFF_SIGNATURE_MM = 3.0
# A talking face's emotion is held to this share of the bounds (see the talking test).
TALKING_SCALE = 0.75
VARIANTS = {"disgusted": ("AU10",), "contempt": ("AU12L",)}
INTENSITIES = (0.25, 0.5, 0.75, 1.0)


def synthetic_face() -> tuple[np.ndarray, dict[str, int]]:
    """One vertex per landmark, at scattered positions (the chin 25 mm below the lower lip),
    plus a spare vertex."""
    vertices = np.random.default_rng(3).uniform(-0.1, 0.1, (len(LANDMARKS) + 1, 3))
    landmarks = {name: i for i, name in enumerate(LANDMARKS)}
    vertices[landmarks["chin"]] = vertices[landmarks["lower_lip"]] - [0, 0.025, 0]
    return vertices, landmarks


MM = 0.001
CASES = [  # landmark, displacement (x left, y up, z forward; m) → AUs it reads, mm (the rest read 0)
    ("brow_inner_left", (0, 3 * MM, 0), {"AU1": 1.5}),  # mean of two sides, one moved
    ("brow_outer_right", (0, 4 * MM, 0), {"AU2": 2.0}),
    ("brow_inner_left", (-4 * MM, -3 * MM, 0), {"AU4": 2.5}),  # down 3, medial 4 → 5 on one side
    ("brow_inner_right", (4 * MM, 0, 0), {"AU4": 2.0}),  # +x is medial for the right brow
    ("upper_lid_left", (0, 2 * MM, 1 * MM), {"AU5": 1.0}),
    ("cheek_right", (0, 3 * MM, 0), {"AU6": 1.5}),
    ("lower_lid_left", (0, 2 * MM, 0), {"AU7": 1.0}),
    ("nose_wing_right", (0, 4 * MM, -1 * MM), {"AU9": 2.0}),
    ("upper_lip", (0, 3 * MM, 0), {"AU10": 3.0}),
    ("lip_corner_left", (0, 2 * MM, -1 * MM), {"AU12L": 2.0, "AU14": np.sqrt(5.0)}),
    ("lip_corner_right", (-3 * MM, -4 * MM, 0), {"AU15": 2.0, "AU20": 1.5, "AU14": 5.0}),
    ("upper_lip", (0, -2 * MM, 0), {"AU23": 2.0}),
    ("lower_lip", (0, 2 * MM, 0), {"AU23": 2.0}),
]


@pytest.mark.parametrize("landmark, move, expected", CASES)
def test_one_landmark_moved_reads_its_displacement(landmark, move, expected):
    neutral, landmarks = synthetic_face()
    posed = neutral.copy()
    posed[landmarks[landmark]] += move
    readings = dict(zip(ACTION_UNITS, action_units(neutral, posed, landmarks)))
    for name, value in readings.items():
        assert value == pytest.approx(expected.get(name, 0.0), abs=1e-9), name


def test_jaw_and_lower_lip():
    """The chin straight down 5 mm with the lower lip: AU26 5, no AU16; the lower lip 3 mm
    straight down toward a chin 4 mm below it: the lip–chin distance drops by 3 → AU16 3."""
    neutral, landmarks = synthetic_face()
    neutral[landmarks["chin"]] = neutral[landmarks["lower_lip"]] - [0, 4 * MM, 0]
    posed = neutral.copy()
    posed[[landmarks["chin"], landmarks["lower_lip"]]] -= [0, 5 * MM, 0]
    readings = dict(zip(ACTION_UNITS, action_units(neutral, posed, landmarks)))
    assert readings == pytest.approx({**dict.fromkeys(ACTION_UNITS, 0.0), "AU26": 5.0})
    posed = neutral.copy()
    posed[landmarks["lower_lip"]] -= [0, 3 * MM, 0]
    readings = dict(zip(ACTION_UNITS, action_units(neutral, posed, landmarks)))
    assert readings == pytest.approx({**dict.fromkeys(ACTION_UNITS, 0.0), "AU16": 3.0})


def test_readings_follow_the_head_axes():
    """The same face turned and moved anywhere reads the same AUs with its axes turned along."""
    neutral, landmarks = synthetic_face()
    posed = neutral + np.random.default_rng(4).normal(0, 2 * MM, neutral.shape)
    turn = Rotation.from_euler("xyz", [30, -50, 70], degrees=True).as_matrix()
    axes = HeadAxes(*(tuple(turn @ axis) for axis in np.eye(3)[[1, 2, 0]]))
    shift = np.array([0.3, -1.0, 2.0])
    turned = action_units(neutral @ turn.T + shift, posed @ turn.T + shift, landmarks, axes)
    np.testing.assert_allclose(turned, action_units(neutral, posed, landmarks), atol=1e-9)
    assert np.abs(turned).max() > 1.0


def test_bad_axes_and_missing_landmarks_are_refused():
    neutral, landmarks = synthetic_face()
    with pytest.raises(InputError, match="orthogonal"):
        action_units(neutral, neutral, landmarks, HeadAxes(up=(0, 1, 0), forward=(0, 1, 0)))
    del landmarks["chin"]
    with pytest.raises(InputError, match="chin"):
        action_units(neutral, neutral, landmarks)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo head as built by the current code, its blendshapes and landmarks."""
    head = build_demo_head()
    path = tmp_path_factory.mktemp("demo") / "flame_demo.npz"
    np.savez(path, **head.arrays)
    rig = MappingRig.of(load_flame(path))
    return rig, build_demo_blendshapes(rig), demo_landmarks(head.arrays["v_template"], head.vertex_part)


def posed_emotions(rig: MappingRig, model: BlendshapeModel, intensity: float) -> np.ndarray:
    """Each emotion at `intensity` posed through the FLAME forward, as the Player poses a still."""
    expr, jaw = model.to_flame(intensity * model.emotion_speech_profiles, intensity * model.emotion_profiles)
    with torch.no_grad():
        return rig.forward(torch.as_tensor(expr).float(), torch.as_tensor(jaw).float()).numpy()


def check_signatures(model: BlendshapeModel, readings: np.ndarray, scale: float = 1.0) -> None:
    """Every defining AU ≥ scale · SIGNATURE_MM; contempt one-sided; emotions ≥ scale · DISTINCT_MM apart."""
    table = {e: dict(zip(ACTION_UNITS, row)) for e, row in zip(model.emotion_names, readings)}
    floor = scale * SIGNATURE_MM
    for emotion, signature in SIGNATURES.items():
        weak = {au: round(table[emotion][au], 2) for au in signature if table[emotion][au] < floor}
        assert not weak, f"{emotion}: defining AUs below {floor:.3g} mm: {weak}"
    assert table["contempt"]["AU12L"] - table["contempt"]["AU12R"] >= floor
    for (a, ra), (b, rb) in itertools.combinations(zip(model.emotion_names, readings), 2):
        assert np.linalg.norm(ra - rb) >= scale * DISTINCT_MM, f"{a} and {b} are {np.linalg.norm(ra - rb):.1f} mm apart"


def test_demo_emotions_show_their_signatures(demo):
    rig, model, landmarks = demo
    readings = action_units(rig.neutral, posed_emotions(rig, model, 1.0), landmarks)
    check_signatures(model, readings)
    for emotion, row in zip(model.emotion_names, readings):
        others = {au: round(v, 2) for au, v in zip(ACTION_UNITS, row)
                  if au not in SIGNATURES[emotion] + VARIANTS.get(emotion, ()) and v > OFF_SIGNATURE_MM}
        assert not others, f"{emotion}: off-signature AUs above {OFF_SIGNATURE_MM} mm: {others}"
    # the movements stay human-sized: nothing beyond 12 mm
    assert readings.max() < 12.0


def test_demo_emotions_grow_with_intensity(demo):
    rig, model, landmarks = demo
    readings = np.stack([action_units(rig.neutral, posed_emotions(rig, model, i), landmarks) for i in INTENSITIES])
    for e, emotion in enumerate(model.emotion_names):
        for au in SIGNATURES[emotion]:
            column = readings[:, e, ACTION_UNITS.index(au)]
            assert np.all(np.diff(column) > 0), f"{emotion} {au} over {INTENSITIES}: {column}"


@pytest.fixture(scope="module")
def learned(demo):
    """The shipped learned model, which must be fitted to the demo head built by the current code."""
    rig, _, landmarks = demo
    model = BlendshapeModel.load(MODEL_DIR / "blendshapes.npz")
    assert model.template.shape == rig.neutral.shape, (
        f"the learned model has {len(model.template)} vertices, the demo head {len(rig.neutral)}: retrain it "
        "(README's training commands)")
    return rig, model, landmarks


def test_learned_model_emotions_show_their_signatures(learned):
    """The shipped learned model's estimated profiles (expression, and speech: jaw drop, lip
    stretch, pressed lips) on the demo head, linearly and through the FLAME forward."""
    rig, model, landmarks = learned
    check_signatures(model, emotion_action_units(model, landmarks))
    check_signatures(model, action_units(rig.neutral, posed_emotions(rig, model, 1.0), landmarks))


def test_learned_model_emotions_grow_with_intensity(learned):
    _, model, landmarks = learned
    readings = np.stack([emotion_action_units(model, landmarks, i) for i in INTENSITIES])
    for e, emotion in enumerate(model.emotion_names):
        for au in SIGNATURES[emotion]:
            column = readings[:, e, ACTION_UNITS.index(au)]
            assert np.all(np.diff(column) > 0), f"{emotion} {au} over {INTENSITIES}: {column}"


def test_learned_generator_shows_the_signatures_while_talking(learned):
    """What the shipped generator itself makes of the demo sentence under each emotion at
    intensity 1, against the same sentence at neutral (both streams, the mean change over the
    clip's frames): the same signatures, without the profiles estimated from it, at
    `TALKING_SCALE` of the bounds: the corpus plants an emotion's expression swelling with
    loudness, from 0.75 of its profile in pauses to 1.25 at the loudest."""
    _, model, landmarks = learned
    driver = LearnedDriver.load(MODEL_DIR)
    features = driver.analyse(open_audio(DEMO_AUDIO), 30.0)

    def pose(intensities: np.ndarray) -> np.ndarray:
        return model.displacements(*driver.weights(features, np.tile(intensities, (len(features), 1)))).mean(axis=0)

    neutral = pose(np.zeros(len(model.emotion_names), np.float32))
    posed = [model.template + pose(one) - neutral for one in np.eye(len(model.emotion_names), dtype=np.float32)]
    check_signatures(model, action_units(model.template, np.stack(posed), landmarks), TALKING_SCALE)
