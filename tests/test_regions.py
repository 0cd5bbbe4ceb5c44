"""Facial regions on the demo head (checked against its own painted surface labels) and from a
FLAME-style masks file."""

import pickle

import numpy as np
import pytest

from avatar_app.demo.head import (
    EYE_CENTRES,
    MOUTH_Y,
    REGIONS,
    build_demo_head,
    surface_regions,
)
from common.errors import InputError
from models.rig.blendshapes import BlendshapeModel
from models.rig.regions import (
    REGION_NAMES,
    geometric_regions,
    lip_vertices,
    load_flame_masks,
    upper_face_vertices,
)

DEMO = "assets/demo/blendshapes.npz"


@pytest.fixture(scope="module")
def demo():
    model = BlendshapeModel.load(DEMO)
    head = build_demo_head()
    labels = surface_regions(model.template, head.vertex_part)
    bases = np.concatenate([model.speech_basis, model.expression_basis])
    peak = np.linalg.norm(bases, axis=2).max(axis=0)
    return model.template, labels, peak


def label(labels, name):
    return labels == REGIONS.index(name)


@pytest.mark.parametrize("fraction", [None, 1e-4, 0.01])  # 0.01: a coarse mask; the eye corners move ~2 % of the jaw
def test_demo_regions_contain_the_painted_features(demo, fraction):
    template, labels, peak = demo
    moving = None if fraction is None else peak > fraction * peak.max()
    regions = geometric_regions(template, moving)
    assert tuple(regions) == REGION_NAMES
    stacked = np.stack(list(regions.values()))
    assert stacked.sum(axis=0).max() == 1  # disjoint
    if moving is not None:
        assert not (stacked.any(axis=0) & ~moving).any()  # only moving vertices
        assert not (stacked.any(axis=0) & label(labels, "eyeball")).any()  # eyeballs never move
    assert regions["mouth"][label(labels, "lips")].all()
    assert regions["brows"][label(labels, "brow")].all()
    eye_holes = label(labels, "opening") & (template[:, 1] > MOUTH_Y + 0.01)
    assert eye_holes.any() and regions["eyes"][eye_holes].all()
    mean_y = {name: template[mask, 1].mean() for name, mask in regions.items()}
    assert mean_y["jaw"] < mean_y["mouth"] < mean_y["nose"] < mean_y["eyes"] < mean_y["brows"] < mean_y["forehead"]
    assert np.abs(template[regions["nose"], 0]).max() < np.abs(template[regions["cheeks"], 0]).max()
    eye_y = EYE_CENTRES[0, 1]
    assert template[regions["eyes"], 1].min() < eye_y < template[regions["eyes"], 1].max()


def test_lip_and_upper_face_sets(demo):
    template, labels, peak = demo
    regions = geometric_regions(template, peak > 0.02 * peak.max())
    lips, upper = lip_vertices(regions), upper_face_vertices(regions)
    assert set(np.flatnonzero(label(labels, "lips"))) <= set(lips)
    assert not set(lips) & set(upper)
    assert set(upper) == set(np.flatnonzero(regions["brows"] | regions["eyes"] | regions["forehead"]))
    assert template[upper, 1].min() > template[lips, 1].max() - 0.01
    with pytest.raises(InputError, match="mouth"):
        lip_vertices({**regions, "mouth": np.zeros(len(template), bool)})


def test_geometric_regions_refuse_what_is_not_a_face():
    with pytest.raises(InputError, match="shape"):
        geometric_regions(np.zeros((10, 2)))
    flat = np.random.default_rng(0).uniform(-0.1, 0.1, size=(500, 3)) * [1, 1, 0]
    with pytest.raises(InputError, match="facial regions"):
        geometric_regions(flat)
    with pytest.raises(InputError, match="moving mask"):
        geometric_regions(np.zeros((10, 3)), np.ones(9, bool))


def write_masks(path, masks):
    with open(path, "wb") as handle:
        pickle.dump(masks, handle)


def test_flame_masks_map_to_our_regions(tmp_path):
    V = 20
    masks = {"lips": np.array([0, 1, 2]), "nose": np.array([2, 3]), "eye_region": np.array([4, 5, 6]),
             "left_eye_region": np.array([4]), "right_eye_region": np.array([6]),
             "forehead": np.array([6, 7]), "face": np.arange(12), "boundary": np.array([12]),
             "neck": np.array([13]), "scalp": np.array([14]), "left_ear": np.array([15]),
             "right_ear": np.array([16]), "left_eyeball": np.array([17, 18]), "right_eyeball": np.array([V - 1])}
    write_masks(tmp_path / "FLAME_masks.pkl", masks)
    regions = load_flame_masks(tmp_path / "FLAME_masks.pkl")
    assert tuple(regions) == REGION_NAMES
    assert all(mask.shape == (V,) for mask in regions.values())
    found = {name: list(np.flatnonzero(mask)) for name, mask in regions.items()}
    assert found == {"mouth": [0, 1, 2], "jaw": [], "cheeks": [], "nose": [3], "brows": [],
                     "eyes": [4, 5, 6], "forehead": [7]}  # disjoint: lips before nose, eyes before forehead
    assert list(lip_vertices(regions)) == [0, 1, 2]
    assert list(upper_face_vertices(regions)) == [4, 5, 6, 7]


def test_flame_masks_with_the_template_fill_brows_cheeks_and_jaw(tmp_path, demo):
    template, labels, _ = demo
    lips = np.flatnonzero(label(labels, "lips"))
    face = np.flatnonzero((template[:, 2] > template[:, 2].max() - 0.07) & ~label(labels, "eyeball"))
    masks = {"lips": lips, "nose": np.array([lips[0]]), "eye_region": np.flatnonzero(label(labels, "opening")),
             "forehead": np.flatnonzero(label(labels, "hair") & (template[:, 2] > 0.05)), "face": face}
    write_masks(tmp_path / "masks.pkl", masks)
    regions = load_flame_masks(tmp_path / "masks.pkl", template)
    assert set(np.flatnonzero(regions["mouth"])) == set(lips)
    assert regions["brows"][label(labels, "brow")].all()
    assert regions["cheeks"].any() and regions["jaw"].any()
    assert np.stack(list(regions.values())).sum(axis=0).max() == 1


def test_flame_masks_file_problems_name_the_file(tmp_path):
    path = tmp_path / "FLAME_masks.pkl"
    write_masks(path, {"lips": np.array([0, 1])})
    with pytest.raises(InputError, match="FLAME_masks.pkl: FLAME masks lack nose"):
        load_flame_masks(path)
    write_masks(path, [1, 2, 3])
    with pytest.raises(InputError, match="FLAME_masks.pkl: not a FLAME masks file"):
        load_flame_masks(path)
    write_masks(path, {key: np.array([0.5]) for key in ("lips", "nose", "forehead", "eye_region", "face")})
    with pytest.raises(InputError, match="FLAME_masks.pkl: mask 'lips'"):
        load_flame_masks(path)
    with pytest.raises(InputError, match="missing.pkl"):
        load_flame_masks(tmp_path / "missing.pkl")
