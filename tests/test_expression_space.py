"""Staying inside what the avatar learned (`--expression-space avatar`): the principal subspace of
an avatar's own tracked expressions and their ranges, checked against a tracked set written here
with a known 3-D subspace and known ranges; the Player with it on and off; the command line."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from assets import DEMO_FLAME
from avatar_app.cli import main
from avatar_app.player import Player
from common.errors import InputError
from models.rig.expression_space import VARIANCE_SHARE, ExpressionSpace
from models.rig.flame import load_flame_params

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tracked_avatar import (  # noqa: E402
    JAW_HIGH,
    JAW_LOW,
    LEVELS,
    tracked_expressions,
    write_flame_param,
    write_tracked_avatar,
)

LOW, HIGH = np.array([lv.min() for lv in LEVELS]), np.array([lv.max() for lv in LEVELS])
TOLERANCE = 1e-5  # the tracked file holds float32


def fit_file(folder: Path, levels=LEVELS, **options) -> tuple[np.ndarray, np.ndarray, ExpressionSpace]:
    """(offset, basis, space) of a tracked flame_param.npz written to `folder`."""
    offset, basis, expr, jaw = tracked_expressions(levels)
    path = folder / "flame_param.npz"
    write_flame_param(path, expr, jaw)
    return offset, basis, ExpressionSpace.fit(load_flame_params(path), str(path), **options)


def split(expr: np.ndarray, offset: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of expressions along the known basis, and what lies outside its span."""
    coordinates = (np.asarray(expr, np.float64) - offset) @ basis.T
    return coordinates, np.asarray(expr, np.float64) - offset - coordinates @ basis


def test_the_space_is_the_tracked_subspace_with_its_ranges(tmp_path):
    _, basis, space = fit_file(tmp_path)
    assert space.num_components == 3 and space.variance_share >= VARIANCE_SHARE
    # the grid's axes are its principal axes, in order of variance (ranges 2.0, 1.2, 0.5)
    np.testing.assert_allclose(np.abs(space.components @ basis.T), np.eye(3), atol=TOLERANCE)
    np.testing.assert_allclose(space.jaw_low, JAW_LOW, atol=TOLERANCE)
    np.testing.assert_allclose(space.jaw_high, JAW_HIGH, atol=TOLERANCE)


def test_an_out_of_range_expression_is_brought_inside(tmp_path):
    offset, basis, space = fit_file(tmp_path)
    rng = np.random.default_rng(1)
    wanted = np.array([[3.0, -2.0, 0.1], [-1.5, 0.0, 0.9], [0.5, 0.2, -0.1]])  # beyond the ranges but the last
    outside = rng.normal(size=(3, 100))
    outside -= (outside @ basis.T) @ basis  # orthogonal to the tracked subspace
    expr = offset + wanted @ basis + outside
    jaw = np.array([[0.6, -0.3, 0.0], [-0.2, 0.01, 0.5], [0.1, 0.0, 0.02]])
    assert np.abs(split(expr, offset, basis)[1]).max() > 0.5
    inside, clamped_jaw = space.apply(expr, jaw)
    coordinates, rest = split(inside, offset, basis)
    assert np.abs(rest).max() < TOLERANCE  # nothing left outside the subspace
    np.testing.assert_allclose(coordinates, np.clip(wanted, LOW, HIGH), atol=TOLERANCE)  # each coordinate in range
    np.testing.assert_allclose(coordinates[2], wanted[2], atol=TOLERANCE)  # one in range is not touched
    np.testing.assert_allclose(clamped_jaw, np.clip(jaw, JAW_LOW, JAW_HIGH), atol=TOLERANCE)
    assert inside.dtype == np.float32 and clamped_jaw.dtype == np.float32


def test_an_in_range_expression_is_left_unchanged(tmp_path):
    offset, basis, space = fit_file(tmp_path)
    tracked = load_flame_params(tmp_path / "flame_param.npz")
    inside, jaw = space.apply(tracked.expr, tracked.jaw_pose)  # the training frames themselves
    np.testing.assert_allclose(inside, tracked.expr, atol=TOLERANCE)
    np.testing.assert_array_equal(jaw, tracked.jaw_pose)
    unseen = offset + np.random.default_rng(2).uniform(LOW, HIGH, size=(50, 3)) @ basis  # combinations not tracked
    np.testing.assert_allclose(space.apply(unseen, np.zeros((50, 3)))[0], unseen, atol=TOLERANCE)


def test_components_cover_the_stated_share_of_the_variance(tmp_path):
    """A fourth axis with well under 1 % of the variance is left out at 99 % (its coordinate
    projected away) and kept when all of it is asked for."""
    levels = (*LEVELS, np.linspace(-0.02, 0.02, 3))
    offset, basis, space = fit_file(tmp_path, levels)
    assert space.num_components == 3 and VARIANCE_SHARE <= space.variance_share < 1
    assert ExpressionSpace.fit(load_flame_params(tmp_path / "flame_param.npz"), "x", share=1.0).num_components == 4
    expr = offset + np.array([[0.1, 0.1, 0.1, 0.02]]) @ basis
    coordinates, _ = split(space.apply(expr, np.zeros((1, 3)))[0], offset, basis)
    np.testing.assert_allclose(coordinates, [[0.1, 0.1, 0.1, 0.0]], atol=1e-3)


@pytest.mark.parametrize("frames", [1, 10])
def test_no_tracked_expressions_is_refused_naming_the_file(tmp_path, frames):
    """One frame, or frames that are all alike, give nothing to stay inside."""
    path = tmp_path / "flame_param.npz"
    _, _, expr, jaw = tracked_expressions()
    write_flame_param(path, np.repeat(expr[:1], frames, 0), jaw[:frames])
    with pytest.raises(InputError, match=rf"^{path}: .*the avatar has no tracked expressions to stay inside$"):
        ExpressionSpace.fit(load_flame_params(path), str(path))


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    return write_tracked_avatar(tmp_path_factory.mktemp("tracked") / "avatar")


def test_the_player_keeps_the_rigs_parameters_inside(tracked):
    offset, basis, _, _ = tracked_expressions()
    player = Player(tracked.load(), backend="cpu")
    player.set_view(width=64, height=64)
    player.set_emotions({"surprised": 1.0, "happy": 1.0})
    player.performance.expression_gain = 3.0
    free = player.flame_params(0, 4)
    _, rest = split(free.expr, offset, basis)
    assert np.abs(rest).max() > 0.5 and (free.jaw_pose[:, 0] > JAW_HIGH[0]).any()  # outside, as generated
    free_image = player.render_frame(0)

    player.set_expression_space("avatar")
    inside = player.flame_params(0, 4)  # what the rig is given (Player._posed)
    coordinates, rest = split(inside.expr, offset, basis)
    assert np.abs(rest).max() < TOLERANCE
    assert ((coordinates >= LOW - TOLERANCE) & (coordinates <= HIGH + TOLERANCE)).all()
    assert ((inside.jaw_pose >= JAW_LOW - TOLERANCE) & (inside.jaw_pose <= JAW_HIGH + TOLERANCE)).all()
    inside_image = player.render_frame(0)  # the pose cache sees the changed performance
    assert np.abs(inside_image.astype(int) - free_image).max() > 10
    assert player.snapshot().expression_space() is player.expression_space()  # fitted once per avatar

    player.set_expression_space("free")
    np.testing.assert_array_equal(player.render_frame(0), free_image)
    with pytest.raises(InputError, match="use one of free, avatar"):
        player.set_expression_space("inside")


def render(*args):
    return main(["render", *map(str, args), "--size", "32x32", "--fps", "10", "--duration", "0.2", "-q"])


def test_render_with_the_avatars_expression_space(tracked, tmp_path):
    out = tmp_path / "frames"
    assert render("--avatar", tracked.avatar, "--flame", tracked.flame, "--blendshapes", tracked.blendshapes,
                  "--driver", "signal", "--emotion", "surprised=1", "--expression-space", "avatar", "-o", out) == 0
    assert len(list(out.glob("*.png"))) == 2


def test_render_refuses_it_without_tracked_expressions_or_blendshapes(tracked, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    assert render("--demo", "--driver", "signal", "--expression-space", "avatar", "-o", out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--expression-space avatar: " in err
    assert "flame_param.npz: 1 tracked frame: the avatar has no tracked expressions to stay inside" in err
    assert render("--avatar", tracked.avatar, "--flame", DEMO_FLAME, "--expression-space", "avatar", "-o", out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no blendshape model" in err
    assert not out.exists()
