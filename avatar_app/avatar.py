"""A loaded avatar: Gaussians, the FLAME rig they ride, its parameters and blendshapes."""
from __future__ import annotations

import shlex
from dataclasses import dataclass, replace
from pathlib import Path

from assets import DEMO_AVATAR, DEMO_BLENDSHAPES, DEMO_FLAME, MODEL_DIR
from common.errors import InputError
from models.drivers.contract import SpeechDriver
from models.drivers.generator import LearnedDriver
from models.rig.blendshapes import BlendshapeModel
from models.rig.flame import FlameParams, FlameRig, load_flame, load_flame_params
from models.rig.flame_arrays import FlameArrays
from models.rig.mapping import flame_fingerprint
from renderer.binding import check_binding
from renderer.gaussians import GaussianSet
from renderer.ply import read_ply


@dataclass
class Avatar:
    """`rig`/`params` are None for a static 3DGS scene (a PLY without bindings)."""

    gaussians: GaussianSet
    rig: FlameRig | None
    params: FlameParams | None
    blendshapes: BlendshapeModel | None
    source: str
    driver: SpeechDriver | None = None  # a learned generator; None: the signal-based driver


def find_point_cloud(folder: Path) -> Path:
    """point_cloud.ply in the folder, or in GaussianAvatars' newest point_cloud/iteration_N/."""
    if folder.is_file():
        return folder
    direct = folder / "point_cloud.ply"
    if direct.is_file():
        return direct
    iterations = sorted((p for p in folder.glob("point_cloud/iteration_*/point_cloud.ply")
                         if p.parent.name.removeprefix("iteration_").isdigit()),
                        key=lambda p: int(p.parent.name.removeprefix("iteration_")))
    if iterations:
        return iterations[-1]
    if not folder.exists():
        raise InputError(f"{folder}: no such avatar folder")
    raise InputError(f"{folder}: no point_cloud.ply (nor point_cloud/iteration_*/point_cloud.ply) in it")


def check_fitted_to(model: BlendshapeModel, arrays: FlameArrays, model_path: Path, flame_path: Path) -> None:
    """A blendshape model that records the FLAME its mapping was fitted to drives only that FLAME
    (files without the record are trusted); otherwise say how to refit it."""
    if not model.flame_fingerprint or model.flame_fingerprint == flame_fingerprint(arrays):
        return
    output = model_path.with_name(f"{model_path.stem}_{flame_path.stem}.npz")
    command = shlex.join(["avatar", "fit-mapping", "--blendshapes", str(model_path), "--flame", str(flame_path),
                          "-o", str(output)])
    raise InputError(f"{model_path}: its FLAME mapping was fitted to {model.flame_name or 'another FLAME model'}, not "
                     f"to {flame_path}; refit it with `{command}` and use --blendshapes {shlex.quote(str(output))}")


def load_avatar(folder: str | Path, flame: str | Path | None = None,
                blendshapes: str | Path | None = None) -> Avatar:
    """Load a GaussianAvatars avatar folder (or a plain 3DGS PLY) with its FLAME model."""
    folder = Path(folder)
    ply = find_point_cloud(folder)
    gaussians = read_ply(ply)
    bs = BlendshapeModel.load(blendshapes) if blendshapes else None
    if not gaussians.is_bound:
        return Avatar(gaussians, None, None, bs, str(ply))
    if flame is None:
        raise InputError(f"{ply}: Gaussians are bound to FLAME triangles; give the FLAME model "
                         "the avatar was trained with (--flame FILE, e.g. flame2023.pkl)")
    arrays = load_flame(flame)
    check_binding(gaussians, arrays.num_faces, str(ply))
    param_file = ply.parent / "flame_param.npz"
    if not param_file.is_file():
        param_file = folder / "flame_param.npz"
    params = load_flame_params(param_file) if param_file.is_file() else FlameParams.neutral(1)
    if bs is not None and bs.template.shape[0] != arrays.num_vertices - (120 if arrays.has_teeth else 0):
        raise InputError(f"{blendshapes}: blendshapes have {bs.template.shape[0]} vertices, "
                         f"the FLAME model {flame} has {arrays.num_vertices}")
    if bs is not None:
        check_fitted_to(bs, arrays, Path(blendshapes), Path(flame))
    rig = FlameRig(arrays, params.shape, params.static_offset)
    return Avatar(gaussians, rig, params, bs, str(ply))


GENERATOR_MODEL = "blendshapes.npz"  # the blendshape model a generator folder was trained for


def load_learned(directory: str | Path) -> tuple[LearnedDriver, BlendshapeModel]:
    """A generator folder: the generator and the blendshape model it drives."""
    driver = LearnedDriver.load(directory)
    model = BlendshapeModel.load(Path(directory) / GENERATOR_MODEL)
    driver.check_model(model)
    return driver, model


@dataclass(frozen=True)
class AvatarSource:
    """The files an avatar is loaded from, kept so one of them can be swapped and reloaded.
    With a `generator` folder, speech and emotion are driven by that learned generator, which
    must name the blendshape model's blendshapes and emotions."""

    avatar: Path
    flame: Path | None = None
    blendshapes: Path | None = None
    generator: Path | None = None

    def load(self) -> Avatar:
        if self.avatar == DEMO_AVATAR and not DEMO_FLAME.is_file():
            raise InputError(f"{DEMO_FLAME}: the demo assets are missing; run `avatar build-demo --in-place`")
        avatar = load_avatar(self.avatar, self.flame, self.blendshapes)
        if self.generator is not None:
            if avatar.blendshapes is None:
                raise InputError(f"{self.generator}: a speech generator needs a blendshape model (--blendshapes)")
            avatar.driver = LearnedDriver.load(self.generator)
            try:
                avatar.driver.check_model(avatar.blendshapes)
            except InputError as err:
                raise InputError(f"{self.blendshapes}: {err} of {self.generator}; give the generator trained "
                                 "for this model (--generator DIR) or use --driver signal") from None
        return avatar


SIGNAL_DEMO_SOURCE = AvatarSource(DEMO_AVATAR, DEMO_FLAME, DEMO_BLENDSHAPES)  # hand-made model, signal driver
LEARNED_DEMO_SOURCE = AvatarSource(DEMO_AVATAR, DEMO_FLAME, MODEL_DIR / GENERATOR_MODEL, MODEL_DIR)
DEMO_SOURCE = LEARNED_DEMO_SOURCE  # the default: the shipped learned model
DRIVERS = ("learned", "signal")


def resolve_avatar_source(avatar: Path | None, flame: Path | None = None, blendshapes: Path | None = None,
                          generator: Path | None = None, driver: str = "learned") -> AvatarSource:
    """What an avatar (None: the demo) is driven by. "learned": on the demo the shipped
    generator (or `generator`), on an avatar the `generator` (whose own blendshape model is the
    default), or the signal driver when no generator is given; "signal": the signal driver. On
    the demo, `blendshapes` replace its model (they must be fitted to the demo head); a FLAME
    model is refused, as the demo head has its own."""
    if driver not in DRIVERS:
        raise InputError(f"driver {driver!r}: use one of {', '.join(DRIVERS)}")
    generator = generator if driver == "learned" else None
    if generator is not None and blendshapes is None:
        blendshapes = generator / GENERATOR_MODEL
    if avatar is not None:
        return AvatarSource(avatar, flame, blendshapes, generator)
    if flame is not None:
        raise InputError(f"{flame}: the demo head has its own FLAME model; a FLAME model goes with an avatar (--avatar DIR)")
    demo = SIGNAL_DEMO_SOURCE if driver == "signal" else LEARNED_DEMO_SOURCE
    return replace(demo, blendshapes=blendshapes or demo.blendshapes, generator=generator or demo.generator)


def load_demo() -> Avatar:
    """The embedded demo head, avatar and blendshapes."""
    return DEMO_SOURCE.load()
