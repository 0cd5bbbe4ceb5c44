"""Checking a design before anything is rendered, and turning its rows into stimuli.

Every problem of every row is collected (unknown columns, unknown emotions, missing files,
duplicate ids, impossible trims, bad values) and reported together with the row it is in.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Literal

from assets import DEMO_ARKIT_SHAPES, DEMO_AVATAR
from common.errors import InputError
from common.files import check_input_file
from common.limits import MAX_DURATION_S
from models.audio.loudness import LoudnessTarget
from models.audio.spoken_text import DEFAULT_LANGUAGE, DEFAULT_RATE, SpokenText, espeak_version
from models.rig.blendshapes import BlendshapeModel, WeightSequence
from models.rig.emotion import check_emotions, parse_emotions
from models.rig.expression_space import ExpressionSpace
from models.rig.flame import FlameParams, load_flame, load_flame_params
from models.rig.living import LAYERS, LivingLayers
from models.rig.settings import EXPRESSION_SPACES
from renderer.camera import Camera
from renderer.camera_files import load_camera

from ..avatar import AvatarSource, find_point_cloud, resolve_avatar_source
from ..clip import ClipSource
from ..options import parse_colour, parse_size
from ..player import VIEW_PRESETS, Performance, View, fit_expression_space
from ..video import check_video_size
from .design import EXPORT_FILES, Design, DesignRow, one_line

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_MAX_ID = 200  # characters: an id names files (<id>.weights.csv and temporary names), at most 255 bytes
SHOWN_PROBLEMS = 200  # a design error lists these; the rest are counted
_VIEWS = {re.sub(r"[\s_-]+", " ", name.lower()): angles for name, angles in VIEW_PRESETS.items()}


class DesignError(InputError):
    """Everything wrong with a design, one problem per line (the first SHOWN_PROBLEMS of them)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = [one_line(p) for p in problems[:SHOWN_PROBLEMS]]
        if len(problems) > SHOWN_PROBLEMS:
            lines.append(f"… and {len(problems) - SHOWN_PROBLEMS} more")
        super().__init__(f"the design has {len(problems)} problem{'s' * (len(problems) != 1)}:\n  "
                         + "\n  ".join(lines))


@dataclass(frozen=True)
class Stimulus:
    """One clip to make, fully resolved. `levels` are the row's values as written (after
    defaults): the factor levels the manifest and trial lists show."""

    id: str
    row: int
    avatar: AvatarSource
    clip: ClipSource
    emotions: dict[str, float]
    view: View
    fps: float
    lead_in: float
    lead_out: float
    speech_gain: float
    expression_gain: float
    seed: int
    levels: dict[str, str] = field(default_factory=dict)
    camera: Path | None = None  # the camera file of view.camera, and the frame's camera_index in it
    camera_index: int | None = None
    expression_space: str = "free"
    living: LivingLayers = LivingLayers()  # blink, gaze, head motion: off unless the design sets them
    exports: tuple[str, ...] = ()  # keys of EXPORT_FILES
    arkit_shapes: Path | None = None  # the ARKit target shapes of livelink/arkit exports

    @property
    def performance(self) -> Performance:
        return Performance(emotions=dict(self.emotions), speech_gain=self.speech_gain,
                           expression_gain=self.expression_gain, expression_space=self.expression_space,
                           living=self.living)

    def parameters(self) -> dict[str, Any]:
        """Every resolved setting, JSON-able (paths as text)."""
        view = asdict(replace(self.view, camera=None))  # the camera is recorded as its file
        return {
            "id": self.id,
            "avatar": _path_text(self.avatar.avatar), "flame": _path_text(self.avatar.flame),
            "blendshapes": _path_text(self.avatar.blendshapes), "generator": _path_text(self.avatar.generator),
            "driver": "learned" if self.avatar.generator else "signal",
            "audio": _path_text(self.clip.audio), "weights": _path_text(self.clip.weights),
            "motion": _path_text(self.clip.motion), **_text_parameters(self.clip.text), "start": self.clip.start,
            "end": None if self.clip.duration is None else self.clip.start + self.clip.duration,
            "loudness_target": str(self.clip.loudness) if self.clip.loudness else None,
            "emotion_mix": ";".join(f"{k}={v:g}" for k, v in self.emotions.items()),
            "yaw": view["yaw"], "pitch": view["pitch"], "distance": view["distance"],
            "camera": _path_text(self.camera), "camera_index": self.camera_index,
            "width": view["width"], "height": view["height"], "fps": self.fps,
            "background": "#" + "".join(f"{round(c * 255):02x}" for c in view["background"]),
            "lead_in": self.lead_in, "lead_out": self.lead_out, "speech_gain": self.speech_gain,
            "expression_gain": self.expression_gain, "expression_space": self.expression_space, "seed": self.seed,
            "blink": self.living.blink, "gaze": self.living.gaze, "head_motion": self.living.head_motion,
            **({"exports": ";".join(self.exports), "arkit_shapes": _path_text(self.arkit_shapes)} if self.exports
               else {}),  # absent without exports: the keys of studies made before them stay the same
        }


def _path_text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _text_parameters(text: SpokenText | None) -> dict[str, Any]:
    """A spoken text's settings, or nothing for a clip without one."""
    if text is None:
        return {}
    return {"text": text.text, "text_language": text.language, "text_voice": text.variant, "text_rate": text.rate,
            "text_speaker": espeak_version()}


def _number(text: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise InputError(f"{text} is outside {low:g}..{high:g}")
    return value + 0.0  # -0 as 0


def parse_view(text: str) -> tuple[float, float, float | None]:
    """A preset name (front, three-quarter left, ...) or yaw/pitch[/distance] in degrees and
    metres."""
    name = re.sub(r"[\s_-]+", " ", text.strip().lower())
    if name in _VIEWS:
        return (*_VIEWS[name], None)
    parts = text.split("/")
    if len(parts) not in (2, 3):
        raise InputError(f"{text!r} is neither a view ({', '.join(_VIEWS)}) nor yaw/pitch[/distance]")
    yaw, pitch = _number(parts[0], -180, 180), _number(parts[1], -89, 89)
    return yaw, pitch, _number(parts[2], 0.05, 50) if len(parts) == 3 else None


class _Row:
    """One row's resolution: each value is read once; a problem is noted, never raised, so
    every problem of every row is found."""

    def __init__(self, row: DesignRow, defaults: dict[str, str], base: Path, problems: list[str]) -> None:
        self.row, self.base, self.problems = row, base, problems
        self.values = {**defaults, **row.values}
        self.first_problem = len(problems)

    @property
    def ok(self) -> bool:
        return len(self.problems) == self.first_problem

    def note(self, message: str) -> None:
        self.problems.append(f"{self.row.where()}: {message}")

    def get(self, column: str, parse: Callable[[str], Any], fallback: Any = None) -> Any:
        text = self.values.get(column, "")
        if not text:
            return fallback
        try:
            return parse(text)
        except InputError as err:
            self.note(f"{column}: {err}")
            return fallback

    def path(self, column: str, kind: Literal["file", "folder", "file or folder"] = "file") -> Path | None:
        """The row's path in `column`, checked now: a "folder", a regular "file" (a pipe would
        block and a device never end when read) or, for an avatar, "file or folder"."""
        text = self.values.get(column, "")
        if not text:
            return None
        path = self.base / text
        try:
            if kind == "folder" and not path.is_dir():
                raise InputError(f"{path}: {'not a' if path.exists() else 'no such'} folder")
            if kind == "file" or (kind == "file or folder" and not path.is_dir()):
                check_input_file(path, kind)
        except InputError as err:
            self.note(f"{column}: {text}: {str(err).removeprefix(f'{path}: ')}")
            return None
        except (OSError, ValueError) as err:  # a name too long, a NUL in it
            self.note(f"{column}: {text}: not a usable path ({getattr(err, 'strerror', None) or err})")
            return None
        return path


class _Models:
    """Blendshape models and cameras met while checking, loaded once each."""

    def __init__(self) -> None:
        self.loaded: dict[Path, BlendshapeModel] = {}
        self.cameras: dict[tuple[Path, int | None], Camera] = {}
        self.spaces: dict[tuple[Path, bool], ExpressionSpace] = {}
        self.eyelids: dict[Path, bool] = {}

    def has_eyelids(self, flame: Path) -> bool:
        """Whether the FLAME model has eyelid blendshapes (to blink with)."""
        if flame not in self.eyelids:
            self.eyelids[flame] = load_flame(flame, teeth=False).eyelids is not None
        return self.eyelids[flame]

    def get(self, path: Path) -> BlendshapeModel:
        if path not in self.loaded:
            self.loaded[path] = BlendshapeModel.load(path)
        return self.loaded[path]

    def check_expression_space(self, source: AvatarSource) -> None:
        """Check that the avatar has tracked expressions to stay inside (its flame_param.npz
        beside the point cloud, as `Player.expression_space` fits it) and a blendshape model."""
        key = (source.avatar, source.blendshapes is not None)
        if key not in self.spaces:
            ply = find_point_cloud(source.avatar)
            tracked = ply.parent / "flame_param.npz"
            params = load_flame_params(tracked) if tracked.is_file() else FlameParams.neutral(1)
            self.spaces[key] = fit_expression_space(params, key[1], str(ply))

    def camera(self, path: Path, index: int | None) -> Camera:
        if (path, index) not in self.cameras:
            self.cameras[path, index] = load_camera(path, index)
        return self.cameras[path, index]


def resolve(design: Design, defaults: dict[str, str], loudness: LoudnessTarget | None) -> list[Stimulus]:
    """The stimuli of a design, or a `DesignError` listing every problem with its row."""
    problems = list(design.problems)
    if not design.rows:
        problems.append("the design has no rows (give rows, or --factorial)")
    models, stimuli, ids = _Models(), [], {}
    for row in design.rows:
        stimulus = _resolve_row(_Row(row, defaults, design.base, problems), models, loudness)
        if stimulus is not None:
            stimuli.append(stimulus)
        if row.values.get("id"):
            ids.setdefault(row.values["id"], []).append(row)
    for name, rows in ids.items():
        if len(rows) > 1:
            problems.append(f"id '{name}' is used by {', '.join(r.where() for r in rows)}")
    if problems:
        raise DesignError(problems)
    return stimuli


def _id(text: str) -> str:
    if not _ID.fullmatch(text) or len(text) > _MAX_ID:
        raise InputError(f"{text!r}: use up to {_MAX_ID} letters, digits, '.', '_' and '-' (it names the output "
                         "files)")
    return text


def _avatar(r: _Row) -> AvatarSource | None:
    demo = r.values.get("avatar", "demo").lower() == "demo"
    avatar = None if demo else r.path("avatar", "file or folder")
    flame, blendshapes, generator = r.path("flame"), r.path("blendshapes"), r.path("generator", "folder")
    if not demo and avatar is None:
        return None
    try:
        return resolve_avatar_source(avatar, flame, blendshapes, generator, r.values.get("driver", "learned"))
    except InputError as err:
        r.note(f"driver: {err}")
        return None


def _emotions(r: _Row, source: AvatarSource | None, models: _Models) -> dict[str, float]:
    mix = r.get("emotion", parse_emotions, {})
    intensity = r.get("intensity", lambda t: _number(t, 0.0, 1.0))
    if intensity is not None:
        if not mix:
            r.note("intensity: given without an emotion")
        mix = {name: value * intensity for name, value in mix.items()}
    if not mix or source is None:
        return mix
    if source.blendshapes is None:
        r.note("emotion: emotions need a blendshape model (blendshapes column)")
        return mix
    try:
        mix = check_emotions(mix, models.get(source.blendshapes).emotion_names)
    except InputError as err:
        r.note(f"emotion: {err}")
    return mix


def _clip(r: _Row, source: AvatarSource | None, models: _Models, fps: float,
          loudness: LoudnessTarget | None) -> ClipSource | None:
    paths = {column: r.path(column, "file or folder" if column == "motion" else "file")
             for column in ("audio", "weights", "motion")}
    if paths["weights"] and paths["motion"]:
        r.note("weights and motion: give one of them")
        return None
    if any(r.values.get(c) and paths[c] is None for c in paths):  # a missing file, already noted
        return None
    text = _spoken_text(r)
    if r.values.get("text") and text is None:  # noted
        return None
    if text is not None and any(paths.values()):
        r.note(f"text and {', '.join(c for c in paths if paths[c])}: the text drives the face by itself, give one")
        return None
    start = r.get("start", lambda t: _number(t, 0.0, MAX_DURATION_S), 0.0)
    end = r.get("end", lambda t: _number(t, 0.0, MAX_DURATION_S))
    if end is not None and end <= start:
        r.note(f"end {end:g} s: must come after start {start:g} s")
        return None
    clip = ClipSource(**paths, start=start, duration=None if end is None else end - start, loudness=loudness,
                      text=text)
    driving = next((c for c in ("weights", "motion", "audio") if paths[c]), "text" if text else "end")
    try:
        clip.check_trim(fps)
        if paths["weights"] and source is not None and source.blendshapes is not None:
            WeightSequence.load(paths["weights"]).check_against(models.get(source.blendshapes))
    except InputError as err:
        r.note(f"{driving}: {err}")
        return None
    return clip


def _spoken_text(r: _Row) -> SpokenText | None:
    """The row's text with its language, voice and rate; the settings without a text are noted
    when the row itself gives them (a file's defaults may serve other rows)."""
    if not r.values.get("text"):
        for column in ("text_language", "text_voice", "text_rate"):
            if r.row.values.get(column):
                r.note(f"{column}: given without a text")
        return None
    rate = r.get("text_rate", _whole, DEFAULT_RATE)
    try:
        return SpokenText(r.values["text"], r.values.get("text_language") or DEFAULT_LANGUAGE,
                          r.values.get("text_voice") or None, rate)
    except InputError as err:
        r.note(f"text: {err}")
        return None


def _size(text: str) -> tuple[int, int]:
    width, height = parse_size(text)
    check_video_size(width, height)
    return width, height


def _camera(r: _Row, models: _Models) -> tuple[Path | None, int | None, Camera | None]:
    """The row's camera file, camera_index and camera; the view must then be the default front
    (the camera replaces the orbit) and the size, when not given, is the camera's."""
    path, index = r.path("camera"), r.get("camera_index", _whole)
    if r.values.get("camera_index") and not r.values.get("camera"):
        r.note("camera_index: given without a camera")
    if path is None:
        return None, None, None
    view = r.values.get("view", "front")
    try:
        if parse_view(view) != (0.0, 0.0, None):
            r.note(f"view: {view} with a camera: the camera file sets the view (leave view empty or front)")
    except InputError:
        pass  # noted by the view column itself
    try:
        camera = models.camera(path, index)
    except InputError as err:
        r.note(f"camera: {str(err).removeprefix(f'{path}: ')}")
        return path, index, None
    if not r.values.get("size") and (camera.width % 2 or camera.height % 2):
        r.note(f"camera: its image is {camera.width}x{camera.height}, and an MP4 needs an even width and height: "
               "give a size")
    return path, index, camera


def _resolve_row(r: _Row, models: _Models, loudness: LoudnessTarget | None) -> Stimulus | None:
    identifier = r.get("id", _id)
    if not r.values.get("id"):
        r.note("id: missing")
    source = _avatar(r)
    if source is not None and source.blendshapes is not None:
        try:
            models.get(source.blendshapes)
        except InputError as err:
            r.note(f"blendshapes: {err}")
            source = None
    emotions = _emotions(r, source, models)
    fps = r.get("fps", lambda t: _number(t, 1.0, 240.0), 30.0)
    clip = _clip(r, source, models, fps, loudness)
    yaw, pitch, distance = r.get("view", parse_view, (0.0, 0.0, None))
    camera_path, camera_index, camera = _camera(r, models)
    width, height = r.get("size", _size, (512, 512) if camera is None else (camera.width, camera.height))
    background = r.get("background", parse_colour, (1.0, 1.0, 1.0))
    lead_in, lead_out = (r.get(c, lambda t: _number(t, 0.0, 60.0), 0.0) for c in ("lead_in", "lead_out"))
    speech_gain, expression_gain = (r.get(c, lambda t: _number(t, 0.0, 10.0), 1.0)
                                    for c in ("speech_gain", "expression_gain"))
    expression_space = _expression_space(r, source, models)
    seed = r.get("seed", _whole, 0)
    living = _living(r, source, models, seed)
    exports = r.get("exports", _exports, ())
    arkit_shapes = _arkit_shapes(r, source, exports)
    if not r.ok:
        return None
    view = View(width=width, height=height, yaw=yaw, pitch=pitch, distance=distance, background=background,
                camera=camera)
    levels = {k: v for k, v in r.values.items() if k != "id"}
    return Stimulus(identifier, r.row.number, source, clip, emotions, view, fps, lead_in, lead_out, speech_gain,
                    expression_gain, seed, levels, camera_path, camera_index, expression_space, living, exports,
                    arkit_shapes)


def _exports(text: str) -> tuple[str, ...]:
    """`livelink;gltf` (or commas) as the distinct kinds, in the order written."""
    kinds = [kind for kind in re.split(r"[;,\s]+", text.lower()) if kind]
    unknown = [kind for kind in kinds if kind not in EXPORT_FILES]
    if unknown:
        raise InputError(f"{unknown[0]!r}: use {', '.join(EXPORT_FILES)} (several with ';')")
    return tuple(dict.fromkeys(kinds))


def _arkit_shapes(r: _Row, source: AvatarSource | None, exports: tuple[str, ...]) -> Path | None:
    """The arkit_shapes file of livelink/arkit exports: the row's, or the demo's own on the demo."""
    if not {"livelink", "arkit"} & set(exports):
        return None
    path = r.path("arkit_shapes")
    if path is None and not r.values.get("arkit_shapes") and source is not None:
        if source.avatar == DEMO_AVATAR:
            return DEMO_ARKIT_SHAPES
        r.note("arkit_shapes: livelink/arkit exports need the ARKit target shapes of this avatar's FLAME")
    return path


def _living(r: _Row, source: AvatarSource | None, models: _Models, seed: int) -> LivingLayers:
    """The blink, gaze and head_motion columns (0 when not set: never an uncontrolled confound);
    blinks need a FLAME with eyelid blendshapes."""
    strengths = {name: r.get(name, lambda t, high=high: _number(t, 0.0, high), 0.0)
                 for name, (_, high) in LAYERS.items()}
    if strengths["blink"] > 0 and source is not None and source.flame is not None:
        try:
            if not models.has_eyelids(source.flame):
                r.note(f"blink: the FLAME model {source.flame} has no eyelid blendshapes (l_eyelid, r_eyelid) to "
                       "blink with")
        except InputError as err:
            r.note(f"flame: {err}")
    return LivingLayers(**strengths, seed=seed)


def _expression_space(r: _Row, source: AvatarSource | None, models: _Models) -> str:
    """free or avatar; avatar only for an avatar with tracked expressions and blendshapes."""
    name = r.get("expression_space", _space, "free")
    if name == "avatar" and source is not None:
        try:
            models.check_expression_space(source)
        except InputError as err:
            r.note(f"expression_space: {err}")
    return name


def _space(text: str) -> str:
    if text.lower() not in EXPRESSION_SPACES:
        raise InputError(f"{text!r}: use one of {', '.join(EXPRESSION_SPACES)}")
    return text.lower()


def _whole(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"{text!r} is not a whole number") from None
    if not 0 <= value < 2**31:
        raise InputError(f"{value} is outside 0..2147483647")
    return value
