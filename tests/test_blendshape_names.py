"""Readable learned blendshapes without training: the normalisation keeps the motion, and a
model without a reference is named by region and motion, checked against the names a person
gave the demo's hand-made blendshapes. (Names and scales of a trained model: test_learning.)"""

import numpy as np
import pytest

from assets import DEMO_BLENDSHAPES
from models.learning.blendshape_learner import normalise
from models.learning.blendshape_names import MOTIONS, name_blendshapes
from models.rig.blendshapes import BlendshapeModel
from models.rig.regions import geometric_regions

# hand-made name → the motion name it should get: those whose hand-made name says the motion
SAME_MOTION = {"jaw_open": "jaw_open", "lips_closed": "lips_closed", "smile": "mouth_corners_up",
               "cheek_raise": "cheeks_up", "frown": "mouth_corners_down", "brow_inner_up": "brows_inner_up",
               "brow_outer_up": "brows_up", "brow_lower": "brows_down", "eyes_wide": "eyes_wide",
               "lid_tighten": "eyes_squint", "nose_wrinkle": "nose_wrinkle", "upper_lip_raise": "upper_lip_up"}


def test_normalise_keeps_the_motion_and_reads_0_to_1():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(3, 50, 3)).astype(np.float32) * 1e-3
    weights = np.abs(rng.normal(size=(400, 3))) * [0.2, 5.0, 1.0]
    weights[:, 2] *= -1  # a blendshape used with negative weights only
    scaled, scale = normalise(basis, weights)
    new = weights / scale
    np.testing.assert_allclose(np.tensordot(new, scaled, 1), np.tensordot(weights, basis, 1), atol=1e-5 * 1e-3)
    np.testing.assert_allclose(np.percentile(new, 99, axis=0), 1.0, rtol=1e-6)
    assert (np.percentile(new, 1, axis=0) > -0.01).all()  # the negative one now reads positive


@pytest.fixture(scope="module")
def demo():
    model = BlendshapeModel.load(DEMO_BLENDSHAPES)
    moving = np.concatenate([model.speech_basis, model.expression_basis])
    regions = geometric_regions(model.template, np.linalg.norm(moving, axis=2).max(axis=0) > 1e-6)
    return model, regions


def test_region_names_without_a_reference_say_what_the_hand_made_blendshapes_do(demo):
    model, regions = demo
    speech = name_blendshapes(model.speech_basis, model.template, regions)
    expression = name_blendshapes(model.expression_basis, model.template, regions, taken=speech)
    names = dict(zip(model.speech_names + model.expression_names, speech + expression))
    print(names)
    assert len(set(names.values())) == len(names)  # unique across the model
    motions = set(MOTIONS) | {f"{m}_{side}" for m in MOTIONS for side in ("left", "right")}
    assert all(n in motions or (n.rsplit("_", 1)[0] in regions and n.rsplit("_", 1)[1].isdigit())
               for n in names.values())
    agree = [hand for hand, motion in SAME_MOTION.items() if names.get(hand) == motion]
    assert len(agree) >= 0.75 * len([hand for hand in SAME_MOTION if hand in names]), agree
