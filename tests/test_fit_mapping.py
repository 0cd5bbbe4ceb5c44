"""Moving a blendshape model between FLAME files of one mesh (issue 14, item 5: FLAME 2020 ↔ 2023):
`avatar fit-mapping`, the FLAME record a model carries, and the refusal to drive another FLAME.

Two official-layout FLAME files share a mesh but differ as 2020 and 2023 do (another expression
basis, a shifted template); the posed vertices are checked with the float64 FLAME of test_flame."""
import shlex

import numpy as np
import pytest
import torch

from assets import DEMO_BLENDSHAPES, DEMO_FLAME, MODEL_DIR
from avatar_app.avatar import load_avatar
from avatar_app.cli import main
from common.errors import InputError
from models.rig.blendshapes import BlendshapeModel
from models.rig.flame import FlameParams, load_flame
from models.rig.mapping import MappingRig, flame_fingerprint
from renderer.gaussians import GaussianSet
from renderer.ply import write_ply
from tests.test_flame import model_dict, reference_lbs, write_npz, write_official_pkl

V = 400
SPEECH, EXPRESSION = ("jaw_open", "lips_round", "lips_wide"), ("smile", "brow_raise")


def other_release(model: dict, seed: int) -> dict:
    """The same mesh with another expression basis (mixed and changed) and a shifted template."""
    rng = np.random.default_rng(seed)
    mix = np.eye(100) + 0.03 * rng.normal(size=(100, 100))
    expression = model["shapedirs"][..., 300:] @ mix
    return dict(model, shapedirs=np.concatenate([model["shapedirs"][..., :300], expression], axis=2),
                v_template=model["v_template"] + rng.normal(scale=0.001, size=(V, 3)))


def posed(model: dict, coeffs: np.ndarray) -> np.ndarray:
    """(K, V, 3) float64: FLAME at neutral shape and pose with expr = coeffs[:, :100], jaw = coeffs[:, 100:]."""
    coeffs = np.asarray(coeffs, np.float64)
    zeros = np.zeros((len(coeffs), 3))
    params = FlameParams(expr=coeffs[:, :100], jaw_pose=coeffs[:, 100:], rotation=zeros, neck_pose=zeros,
                         translation=zeros, eyes_pose=np.zeros((len(coeffs), 6)))
    offset = np.zeros((1, V, 3))
    return np.stack([reference_lbs(model, np.zeros(300), offset, params, k) for k in range(len(coeffs))])


def rms(residual: np.ndarray) -> np.ndarray:
    return np.sqrt(np.square(residual).sum(axis=2).mean(axis=1))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """FLAME A and B (.pkl), C of another mesh, the planted truth, and a model fitted to A by the command."""
    folder = tmp_path_factory.mktemp("fit_mapping")
    a = model_dict(seed=3, vertices=V)
    b = other_release(a, seed=4)
    rng = np.random.default_rng(5)
    truth = np.zeros((5, 103))
    truth[:, :100] = rng.normal(scale=0.7, size=(5, 100)) * (rng.random((5, 100)) < 0.05)
    truth[:3, 100] = (0.2, 0.1, 0.05)  # the speech blendshapes open the jaw
    basis = (posed(a, truth) - posed(a, np.zeros((1, 103)))).astype(np.float32)
    unfitted = BlendshapeModel(
        speech_names=SPEECH, expression_names=EXPRESSION, emotion_names=("happy",), speech_basis=basis[:3],
        expression_basis=basis[3:], speech_to_flame=np.zeros((3, 103)), expression_to_flame=np.zeros((2, 103)),
        emotion_profiles=np.array([[1.0, 0.0]]), template=posed(a, np.zeros((1, 103)))[0],
        speech_mapping_error=np.zeros(3), expression_mapping_error=np.zeros(2))
    unfitted.save(folder / "unfitted.npz")
    paths = {"a": write_official_pkl(folder / "flame2020.pkl", a), "b": write_official_pkl(folder / "flame2023.pkl", b),
             "c": write_npz(folder / "other_mesh.npz", model_dict(seed=6, vertices=V - 10)),
             "unfitted": folder / "unfitted.npz", "model_a": folder / "model_a.npz"}
    assert main(["fit-mapping", "--blendshapes", str(paths["unfitted"]), "--flame", str(paths["a"]),
                 "-o", str(paths["model_a"])]) == 0
    return folder, paths, {"a": a, "b": b}, truth, basis


def bound_avatar(folder, faces: int):
    """A small GaussianAvatars-layout avatar bound to the first triangles."""
    n = 8
    g = GaussianSet(means=torch.zeros(n, 3), quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
                    scales=torch.full((n, 3), 0.01), opacities=torch.full((n,), 0.5), sh=torch.zeros(n, 1, 3),
                    binding=torch.arange(n) % faces)
    write_ply(g, folder / "avatar" / "point_cloud.ply")
    return folder / "avatar"


def test_a_fitted_model_records_its_flame_and_reproduces_it(files):
    _, paths, models, truth, basis = files
    model = BlendshapeModel.load(paths["model_a"])
    assert model.flame_fingerprint == flame_fingerprint(load_flame(paths["a"])) and model.flame_name == "flame2020.pkl"
    coeffs = np.concatenate([model.speech_to_flame, model.expression_to_flame])
    neutral = posed(models["a"], np.zeros((1, 103)))
    np.testing.assert_allclose(posed(models["a"], coeffs), posed(models["a"], truth), atol=1e-6)
    assert rms(posed(models["a"], coeffs) - neutral - basis).max() < 1e-6
    assert np.concatenate([model.speech_mapping_error, model.expression_mapping_error]).max() < 1e-7


def test_refitting_onto_its_own_flame_gives_back_its_mapping(files, capsys):
    folder, paths, models, _, _ = files
    again = folder / "model_a_again.npz"
    assert main(["fit-mapping", "--blendshapes", str(paths["model_a"]), "--flame", str(paths["a"]), "-o", str(again)]) == 0
    first, second = BlendshapeModel.load(paths["model_a"]), BlendshapeModel.load(again)
    assert (second.flame_fingerprint, second.flame_name) == (first.flame_fingerprint, first.flame_name)
    np.testing.assert_array_equal(second.template, first.template)
    for kind in ("speech", "expression"):
        old, new = getattr(first, f"{kind}_to_flame"), getattr(second, f"{kind}_to_flame")
        np.testing.assert_allclose(posed(models["a"], new), posed(models["a"], old), atol=1e-7)


def test_a_model_of_another_flame_is_refused_with_the_command_that_refits_it(files, capsys):
    folder, paths, _, _, _ = files
    avatar = bound_avatar(folder, faces=2 * V)
    with pytest.raises(InputError) as refused:
        load_avatar(avatar, paths["b"], paths["model_a"])
    message = str(refused.value)
    assert "\n" not in message and "fitted to flame2020.pkl, not to" in message and "flame2023.pkl" in message
    out = folder / "out.mp4"
    assert main(["render", "--avatar", str(avatar), "--flame", str(paths["b"]), "--blendshapes", str(paths["model_a"]),
                 "--size", "32x32", "-q", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "avatar fit-mapping --blendshapes" in err and not out.exists()
    command = shlex.split(message.split("`")[1])  # run exactly what the message says
    assert command[:2] == ["avatar", "fit-mapping"] and main(command[1:]) == 0
    refitted = command[command.index("-o") + 1]
    assert load_avatar(avatar, paths["b"], refitted).blendshapes.flame_name == "flame2023.pkl"
    with pytest.raises(InputError, match="fitted to flame2023.pkl, not to .*flame2020.pkl"):
        load_avatar(avatar, paths["a"], refitted)
    for flame in (paths["a"], paths["b"]):  # a model without the record (an older file) is trusted
        assert load_avatar(avatar, flame, paths["unfitted"]).blendshapes.flame_fingerprint == ""


def test_the_refit_onto_another_release_reproduces_the_blendshapes(files, capsys):
    folder, paths, models, _, basis = files
    out = folder / "model_b.npz"
    capsys.readouterr()
    assert main(["fit-mapping", "--blendshapes", str(paths["model_a"]), "--flame", str(paths["b"]), "-o", str(out)]) == 0
    table = capsys.readouterr().out
    old, new = BlendshapeModel.load(paths["model_a"]), BlendshapeModel.load(out)
    neutral_b = posed(models["b"], np.zeros((1, 103)))
    np.testing.assert_allclose(new.template, neutral_b[0], atol=1e-6)
    np.testing.assert_array_equal(new.speech_basis, old.speech_basis)
    reported = np.concatenate([new.speech_mapping_error, new.expression_mapping_error])
    achieved = rms(posed(models["b"], np.concatenate([new.speech_to_flame, new.expression_to_flame])) - neutral_b - basis)
    assert (achieved <= reported + 1e-7).all() and reported.max() < 1e-4  # within 0.1 mm
    stale = rms(posed(models["b"], np.concatenate([old.speech_to_flame, old.expression_to_flame])) - neutral_b - basis)
    assert stale.min() > 3e-4 and (stale > 10 * reported).all()  # A's mapping on B: 0.3 mm and more off
    assert main(["info", str(out)]) == 0 and "mapping fitted to: flame2023.pkl" in capsys.readouterr().out
    for name, before, after in zip(SPEECH + EXPRESSION, stale, reported):  # the printed table, mm
        row = next(line.split() for line in table.splitlines() if line.startswith(name + " "))
        assert float(row[-1]) == pytest.approx(after * 1e3, abs=1e-4) and float(row[-2]) == pytest.approx(
            before * 1e3, abs=2e-4)


def test_another_mesh_or_a_foreign_output_is_refused_and_nothing_written(files, capsys):
    folder, paths, _, _, _ = files
    out = folder / "model_c.npz"
    assert main(["fit-mapping", "--blendshapes", str(paths["model_a"]), "--flame", str(paths["c"]), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(paths["c"]) in err and "390 vertices" in err and not out.exists()
    ours = folder / "model_a_copy.npz"
    ours.write_bytes(paths["model_a"].read_bytes())
    before = ours.read_bytes()
    assert main(["fit-mapping", "--blendshapes", str(paths["model_a"]), "--flame", str(paths["c"]), "-o", str(ours)]) == 2
    assert ours.read_bytes() == before
    foreign = folder / "notes.npz"
    np.savez(foreign, notes=np.zeros(3))
    assert main(["fit-mapping", "--blendshapes", str(paths["model_a"]), "--flame", str(paths["b"]), "-o", str(foreign)]) == 2
    assert "was not made by avatar" in capsys.readouterr().err and set(np.load(foreign).files) == {"notes"}
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary left


def flame_5023(tmp_path, name, expression_seed=0, shape_seed=0) -> dict:
    """A 5023-vertex FLAME (.npz, 10 shape + 100 expression columns declared), which gets teeth."""
    model = model_dict(seed=7, vertices=5023)
    shape = np.random.default_rng(shape_seed).normal(scale=0.002, size=(5023, 3, 10))
    expression = np.random.default_rng(expression_seed).normal(scale=0.002, size=(5023, 3, 100))
    model.update(shapedirs=np.concatenate([shape, expression], axis=2), n_shape=10, n_expr=100)
    return write_npz(tmp_path / name, model)


def test_the_fingerprint_is_what_the_mapping_depends_on(tmp_path):
    base = load_flame(flame_5023(tmp_path, "a.npz"))
    assert base.has_teeth and base.num_vertices == 5143
    fingerprint = flame_fingerprint(base)
    assert fingerprint == flame_fingerprint(load_flame(tmp_path / "a.npz", teeth=False))  # teeth do not count
    assert fingerprint == flame_fingerprint(load_flame(flame_5023(tmp_path, "b.npz", shape_seed=1)))  # nor identity
    assert fingerprint != flame_fingerprint(load_flame(flame_5023(tmp_path, "c.npz", expression_seed=1)))
    assert MappingRig.of(base).neutral.shape == (5023, 3)  # blendshapes have no teeth


def test_the_shipped_models_record_the_demo_flame():
    demo = flame_fingerprint(load_flame(DEMO_FLAME))
    for path in (DEMO_BLENDSHAPES, MODEL_DIR / "blendshapes.npz"):
        model = BlendshapeModel.load(path)
        assert (model.flame_fingerprint, model.flame_name) == (demo, DEMO_FLAME.name)


@pytest.mark.parametrize("value, needle", [(np.array("xyz"), "hexadecimal"), (np.arange(3), "one line of text"),
                                           (np.array(["0123456789abcdef"]), "one line of text"),
                                           (np.array("a\nb"), "one line of text")])
def test_a_malformed_record_is_one_line_naming_the_file(tmp_path, value, needle):
    with np.load(DEMO_BLENDSHAPES) as demo:
        arrays = dict(demo)
    key = "flame_name" if "\n" in str(value) else "flame_fingerprint"
    np.savez(tmp_path / "bs.npz", **dict(arrays, **{key: value}))
    with pytest.raises(InputError, match=needle) as refused:
        BlendshapeModel.load(tmp_path / "bs.npz")
    assert str(tmp_path / "bs.npz") in str(refused.value) and "\n" not in str(refused.value)
