"""The player core: one loaded avatar, its settings and clip; answers "frame i" and "the clip".

The `render` command, the GUI and stimulus batches all go through this object, so every
output is made by the same stages (docs/architecture.md §Pipeline).
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from common.errors import InputError
from models.audio.loudness import frame_levels
from models.drivers.contract import SpeechDriver
from models.drivers.signal import SignalSpeechDriver
from models.rig.blendshapes import WeightSequence
from models.rig.emotion import EmotionTrack, check_emotions
from models.rig.expression_space import ExpressionSpace
from models.rig.flame import FlameParams
from models.rig.living import LAYERS, LivingLayers, LivingTrack, living_track, speech_energy, widening_apex
from models.rig.settings import EXPRESSION_SPACES
from renderer.binding import bind, bind_covariances
from renderer.camera import Camera, frame_head, orbit_camera
from renderer.camera_files import scaled_camera
from renderer.projection import packed_covariances
from renderer.render import backend_device, render_cpu, resolve_backend

from .avatar import Avatar
from .clip import DEFAULT_FPS, Clip, ClipSource, still_clip, with_silence
from .video import is_video_path, padded_audio, write_mp4, write_png_folder

VIEW_PRESETS = {  # name: (yaw, pitch) in degrees; yaw > 0 looks from the subject's left
    "Front": (0.0, 0.0),
    "Three-quarter left": (35.0, 0.0),
    "Three-quarter right": (-35.0, 0.0),
    "Profile left": (90.0, 0.0),
    "Profile right": (-90.0, 0.0),
}


@dataclass
class View:
    """Camera and image settings. distance None → auto-framed. A `camera` (from a file,
    `renderer/camera_files.py`) replaces the orbit (yaw, pitch, distance, pan), scaled to
    width × height."""

    width: int = 512
    height: int = 512
    yaw: float = 0.0
    pitch: float = 0.0
    distance: float | None = None
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pan: tuple[float, float] = (0.0, 0.0)  # metres along the camera's right and up axes
    camera: Camera | None = None


@dataclass
class Performance:
    """How the face is driven on top of the clip: emotion mix and stream gains.

    With keyframes the emotions follow the keyframe track; without, the `emotions` mix holds
    for the whole clip. `expression_space` "avatar" keeps each frame inside the avatar's own
    tracked expressions (`models/rig/expression_space.py`); "free" leaves them as generated.
    `living` adds blinks, gaze and idle head motion (`models/rig/living.py`); off by default."""

    emotions: dict[str, float] = field(default_factory=dict)
    speech_gain: float = 1.0
    expression_gain: float = 1.0
    keyframes: EmotionTrack = EmotionTrack()
    expression_space: str = "free"
    living: LivingLayers = LivingLayers()

    def intensities(self, times: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """(T, E) emotion intensities at `times` seconds, emotions in the order of `names`."""
        if self.keyframes:
            return self.keyframes.intensities(times, names)
        constant = np.array([self.emotions.get(n, 0.0) for n in names], np.float32)
        return np.tile(constant, (len(times), 1))


def fit_expression_space(params: FlameParams | None, blendshapes: bool, ply: str) -> ExpressionSpace:
    """The space of the tracked expressions `params` of the avatar `ply` (None: a static scene)
    whose generated expressions, made by blendshapes, it bounds; an InputError says why it has none."""
    if params is None:
        raise InputError(f"{ply}: a static 3DGS scene has no FLAME expressions to stay inside")
    if not blendshapes:
        raise InputError(f"{ply}: no blendshape model: staying inside the avatar's expressions bounds the "
                         "expressions the blendshapes make (--blendshapes FILE)")
    tracked = Path(ply).parent / "flame_param.npz"
    return ExpressionSpace.fit(params, str(tracked) if tracked.is_file() else f"{ply} (no flame_param.npz beside it)")


def _add_living(params: FlameParams, track: LivingTrack, start: int, stop: int) -> None:
    """Rows start..stop-1 of the living layers onto `params`: the gaze and head rotations
    composed after the motion's own eyes_pose and neck_pose, the eyelids closed by the blink's
    share of what is still open."""
    rows = slice(start, stop)
    for key, layer in (("eyes_pose", track.eyes_pose[rows]), ("neck_pose", track.neck_pose[rows])):
        own = np.asarray(getattr(params, key), np.float64).reshape(-1, 3)
        ours = np.asarray(layer, np.float64).reshape(-1, 3)
        composed = (Rotation.from_rotvec(ours) * Rotation.from_rotvec(own)).as_rotvec() if len(own) else own
        setattr(params, key, composed.reshape(stop - start, -1).astype(np.float32))
    lids = np.asarray(params.eyelids, np.float32)
    params.eyelids = lids + (1 - lids) * track.eyelids[rows]


@dataclass
class ExportFrames:
    """Frames start..start+T-1 as exporters take them, made by the same calls a render poses
    with (emotions or keyframes, gains, expression space, living layers): `params` are what
    the rig poses (numpy, with the avatar's shape and static offset), `vertices` the posed mesh
    (T, V, 3) in metres exactly as rendered, `face` the same mesh in the head's frame (global
    rotation, neck and translation set to zero: jaw, eyes, eyelids and expression kept) minus
    `neutral` (V, 3), the avatar's mesh at zero expression and pose: what ARKit-style target
    shapes describe. `speech`/`expression` are the blendshape weights with the gains applied
    (None without a blendshape model). vertices/face are None when not asked for."""

    fps: float
    start: int
    params: FlameParams
    vertices: np.ndarray | None
    face: np.ndarray | None
    neutral: np.ndarray
    speech: np.ndarray | None
    expression: np.ndarray | None
    speech_names: tuple[str, ...] = ()
    expression_names: tuple[str, ...] = ()

    @property
    def num_frames(self) -> int:
        return self.params.num_frames


class Cancelled(Exception):
    """Rendering stopped because the caller asked it to."""


WEIGHT_CHUNK = 2048  # frames whose weights are made (and kept) at a time
_KEPT_CHUNKS = 8


class Player:
    """Renders frames of `clip` for `avatar` under `view` and `performance`."""

    def __init__(self, avatar: Avatar, backend: str = "auto", driver: SpeechDriver | None = None) -> None:
        self.backend = resolve_backend(backend)
        self.device = backend_device(self.backend)
        self.avatar = avatar
        self.gaussians = avatar.gaussians.to(self.device)
        self.rig = avatar.rig.to(self.device) if avatar.rig is not None else None
        bs = avatar.blendshapes
        self.driver = driver or avatar.driver or (SignalSpeechDriver.for_model(bs) if bs is not None else None)
        self.view = View()
        self.performance = Performance()
        self.clip = still_clip(1.0)
        self._framing = self._framing_points()
        self._pose_cache: dict = {}  # see _posed
        self._weights_cache: dict = {}  # see _chunk_weights
        self._intensity_cache: dict = {}  # see _intensities
        self._expression_spaces: dict = {}  # see expression_space
        self._living_cache: dict = {}  # see _living_track

    @property
    def clip(self) -> Clip:
        return self._clip

    @clip.setter
    def clip(self, clip: Clip) -> None:
        """Take a clip; one without speech records silence, so the emotions still drive it."""
        self._clip = with_silence(clip, self.avatar.blendshapes)

    @property
    def num_gaussians(self) -> int:
        return len(self.gaussians)

    def _framing_points(self) -> torch.Tensor:
        """What the auto-framing fits into view: a rigged avatar's neutral FLAME head down to its
        chin (the lowest vertex that follows the jaw), so the face fills the frame and the neck
        and shoulders below it do not count; a static scene's bulk of Gaussians."""
        if self.rig is None:
            means = self.gaussians.means
            lo, hi = torch.quantile(means, 0.01, dim=0), torch.quantile(means, 0.99, dim=0)
            return torch.stack([lo, hi]).cpu()
        vertices = self.rig(self._neutral(1))[0].cpu()
        jaw = self.rig.lbs_weights[:, 2].cpu() > 0.5
        if not jaw.any():
            return vertices
        return vertices[vertices[:, 1] >= vertices[jaw, 1].min()]

    def _neutral(self, frames: int) -> FlameParams:
        p = self.avatar.params
        return FlameParams.neutral(frames, p.shape, p.static_offset)

    def _spelled(self, emotions: dict[str, float], track: EmotionTrack) -> tuple[dict[str, float], EmotionTrack]:
        """The mix and keyframes checked against the blendshape model, their emotion names spelled
        as it spells them (a user may type any case)."""
        bs = self.avatar.blendshapes
        if bs is None:
            if emotions or track.emotion_names():
                raise InputError("emotions need a blendshape model (--blendshapes FILE)")
            return dict(emotions), track
        return check_emotions(emotions, bs.emotion_names), track.spelled_as(bs.emotion_names)

    def set_emotions(self, emotions: dict[str, float]) -> None:
        self.performance.emotions = self._spelled(emotions, EmotionTrack())[0]

    def set_keyframes(self, track: EmotionTrack) -> None:
        self.performance.keyframes = self._spelled({}, track)[1]

    def set_performance(self, performance: Performance) -> None:
        """Take a whole performance (e.g. a loaded preset) after checking its emotion names and
        expression space."""
        emotions, keyframes = self._spelled(performance.emotions, performance.keyframes)
        self._check_expression_space(performance.expression_space)
        self._check_living(performance.living)
        self.performance = dataclasses.replace(copy.deepcopy(performance), emotions=emotions, keyframes=keyframes)

    def set_living(self, layers: LivingLayers) -> None:
        """Take the blink, gaze and head-motion strengths and seed (an InputError says why this
        avatar cannot show a layer asked for)."""
        self._check_living(layers)
        self.performance.living = layers

    def living_unavailable(self) -> dict[str, str]:
        """Layer name → why this avatar cannot show it (absent: it can)."""
        if self.rig is None:
            return dict.fromkeys(LAYERS, f"{self.avatar.source}: a static 3DGS scene has no FLAME to move")
        if not self.rig.has_eyelids:
            return {"blink": f"the FLAME model {self.rig.source} has no eyelid blendshapes "
                             "(l_eyelid, r_eyelid) to blink with"}
        return {}

    def default_living(self, seed: int = 0) -> LivingLayers:
        """Every layer this avatar can show at strength 1 (the app's and `render`'s default)."""
        off = self.living_unavailable()
        return LivingLayers(**{name: 0.0 if name in off else 1.0 for name in LAYERS}, seed=seed)

    def _check_living(self, layers: LivingLayers) -> None:
        off = self.living_unavailable()
        for name in LAYERS:
            if getattr(layers, name) > 0 and name in off:
                raise InputError(off[name])

    def set_expression_space(self, name: str) -> None:
        """Leave expressions "free", or keep them inside the "avatar"'s own tracked expressions
        (an InputError says why this avatar cannot)."""
        self._check_expression_space(name)
        self.performance.expression_space = name

    def _check_expression_space(self, name: str) -> None:
        if name not in EXPRESSION_SPACES:
            raise InputError(f"expression space {name!r}: use one of {', '.join(EXPRESSION_SPACES)}")
        if name == "avatar":
            self.expression_space()

    def expression_space(self) -> ExpressionSpace:
        """The avatar's own tracked expressions (its flame_param.npz), fitted on first use and
        kept (shared with snapshots); an InputError says why the avatar has none to stay inside."""
        space = self._expression_spaces.get("avatar")
        if space is None:
            avatar = self.avatar
            space = fit_expression_space(avatar.params, avatar.blendshapes is not None, avatar.source)
            self._expression_spaces["avatar"] = space
        return space

    def snapshot(self) -> Player:
        """A copy with its own settings sharing the loaded data: a render thread can keep
        rendering it while the settings of this one change."""
        twin = copy.copy(self)
        twin.view = copy.deepcopy(self.view)
        twin.performance = copy.deepcopy(self.performance)
        return twin

    def auto_distance(self) -> float:
        """The camera distance that frames the neutral head at the current image size."""
        return frame_head(self._framing, self.view.width, self.view.height)[1]

    def camera(self) -> Camera:
        """The view's file camera scaled to its size if it has one, else the orbit camera around
        the neutral head (shifted by the pan), auto-framed unless a distance is set."""
        v = self.view
        if v.camera is not None:
            return scaled_camera(v.camera, v.width, v.height)
        target, auto_distance = frame_head(self._framing, v.width, v.height)
        distance = v.distance if v.distance is not None else auto_distance
        camera = orbit_camera(target, v.yaw, v.pitch, distance, v.width, v.height)
        if v.pan == (0.0, 0.0):
            return camera
        right, down = camera.viewmat[0, :3], camera.viewmat[1, :3]
        return orbit_camera(target + v.pan[0] * right - v.pan[1] * down, v.yaw, v.pitch, distance,
                            v.width, v.height)

    def weights(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Speech (T, Ks) and expression (T, Ke) weights of frames start..stop-1 with the
        gains applied: what the clip's reader makes of its features under the emotions (or
        their keyframes) at each frame, assembled from WEIGHT_CHUNK-frame chunks."""
        if self.avatar.blendshapes is None:
            raise InputError("weights need a blendshape model (--blendshapes FILE)")
        chunks = range(start // WEIGHT_CHUNK, -(-stop // WEIGHT_CHUNK))
        if chunks:
            values = [self._chunk_weights(chunk) for chunk in chunks]
            first = chunks[0] * WEIGHT_CHUNK
            speech, expression = (np.concatenate([value[i] for value in values])[start - first:stop - first]
                                  for i in range(2))
        else:
            speech, expression = self.clip.reader.weights(self.clip.features, self._intensities(), start, start)
        perf = self.performance
        return perf.speech_gain * speech, perf.expression_gain * expression

    def _intensities(self) -> np.ndarray:
        """The performance's emotion intensities at every frame of the clip (T, E), kept while
        the clip and the emotions stay the same (shared with snapshots)."""
        clip, perf = self.clip, self.performance
        cached = self._intensity_cache.get("last")  # one read: other threads may replace it
        if cached is not None and cached[0] is clip and cached[1] == (perf.emotions, perf.keyframes):
            return cached[2]
        names = self.avatar.blendshapes.emotion_names
        value = perf.intensities(np.arange(clip.num_frames) / clip.fps, names)
        self._intensity_cache["last"] = (clip, (dict(perf.emotions), perf.keyframes), value)
        return value

    def _chunk_weights(self, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        """One chunk's weights, before the gains. A learned reader decodes it with the network's
        reach each side (equal to decoding the whole clip, as in training). The last few are
        kept, shared with snapshots, so a slider move reruns only the decoder of the chunks shown."""
        features, intensities = self.clip.features, self._intensities()
        cached = self._weights_cache.get(chunk)  # one read: other threads may replace it
        if cached is not None and cached[0] is features and cached[1] is intensities:
            return cached[2]
        first = chunk * WEIGHT_CHUNK
        value = self.clip.reader.weights(features, intensities, first, min(first + WEIGHT_CHUNK, self.clip.num_frames))
        kept = list(self._weights_cache)  # one call: other threads may change it
        for old in kept[:max(0, len(kept) - _KEPT_CHUNKS + 1)]:
            self._weights_cache.pop(old, None)
        self._weights_cache[chunk] = (features, intensities, value)
        return value

    def weight_sequence(self) -> WeightSequence:
        """The whole clip's weights as a weights file: re-rendered with gains 1 and no
        emotions it gives the same frames."""
        bs = self.avatar.blendshapes
        speech, expression = self.weights(0, self.clip.num_frames)
        return WeightSequence(fps=self.clip.fps, speech=speech, expression=expression,
                              speech_names=bs.speech_names, expression_names=bs.expression_names)

    @torch.no_grad()
    def export_frames(self, start: int = 0, stop: int | None = None, vertices: bool = True) -> ExportFrames:
        """What exporters need of frames start..stop-1 (None: the clip's end) under the current
        settings: the FLAME parameters `render_range` poses, the posed and head-frame meshes
        (with `vertices`) and the weights (see ExportFrames)."""
        stop = self.clip.num_frames if stop is None else stop
        if self.rig is None:
            raise InputError(f"{self.avatar.source}: a static 3DGS scene has no rig to export the animation of")
        if not 0 <= start <= stop <= self.clip.num_frames:
            raise InputError(f"frames {start}..{stop} are outside the clip's {self.clip.num_frames} frames")
        params = self.flame_params(start, stop)
        neutral = self.rig(self._neutral(1))[0].cpu().numpy()
        posed = face = None
        if vertices:
            posed = self.rig(params).cpu().numpy()
            zero = np.zeros((stop - start, 3), np.float32)
            head = dataclasses.replace(params, rotation=zero, neck_pose=zero, translation=zero)
            face = self.rig(head).cpu().numpy() - neutral
        bs = self.avatar.blendshapes
        speech, expression = self.weights(start, stop) if bs is not None else (None, None)
        return ExportFrames(fps=self.clip.fps, start=start, params=params, vertices=posed, face=face, neutral=neutral,
                            speech=speech, expression=expression,
                            speech_names=tuple(bs.speech_names) if bs is not None else (),
                            expression_names=tuple(bs.expression_names) if bs is not None else ())

    def flame_params(self, start: int, stop: int) -> FlameParams:
        """Per-frame FLAME parameters of frames start..stop-1 under the current settings: the
        motion (or neutral), plus the blendshapes' expression and jaw, plus the living layers."""
        clip, bs = self.clip, self.avatar.blendshapes
        frames = stop - start
        params = clip.motion.slice(start, stop) if clip.motion is not None else self._neutral(frames)
        params.shape, params.static_offset = self.avatar.params.shape, self.avatar.params.static_offset
        if bs is not None:
            expr, jaw = bs.to_flame(*self.weights(start, stop))
            params.expr = np.asarray(params.expr, np.float32) + expr
            params.jaw_pose = np.asarray(params.jaw_pose, np.float32) + jaw
            if self.performance.expression_space == "avatar":
                params.expr, params.jaw_pose = self.expression_space().apply(params.expr, params.jaw_pose)
        if self.performance.living.active:
            _add_living(params, self._living_track(), start, stop)
        return params

    def _living_track(self) -> LivingTrack:
        """The living layers of the whole clip (so any range is the same rows of it), kept while
        the clip, the layers and the emotion intensities stay the same (shared with snapshots)."""
        clip, layers, bs = self.clip, self.performance.living, self.avatar.blendshapes
        intensities = self._intensities() if bs is not None else None  # None: no emotions to widen the eyes
        cached = self._living_cache.get("track")  # one read: other threads may replace it
        if cached is not None and cached[0] is clip and cached[1] == layers and cached[2] is intensities:
            return cached[3]
        energy = self._living_cache.get("energy")
        if energy is None or energy[0] is not clip:
            levels = (frame_levels(clip.audio, clip.fps, clip.num_frames) if clip.audio is not None
                      else np.full(clip.num_frames, -120.0))
            energy = (clip, speech_energy(levels))
            self._living_cache["energy"] = energy
        apex = widening_apex(intensities, bs.emotion_names) if bs is not None else np.zeros(clip.num_frames, bool)
        track = living_track(layers, clip.num_frames, clip.fps, energy[1], apex)
        self._living_cache["track"] = (clip, layers, intensities, track)
        return track

    @torch.no_grad()
    def render_range(self, start: int, stop: int, batch: int | None = None, cancel: threading.Event | None = None,
                     require_visible: bool = False) -> Iterator[np.ndarray]:
        """uint8 frames [H, W, 3] of frames start..stop-1, computed `batch` frames at a time
        (None: 8 on the CPU, GPU_BATCH with gsplat) so a long clip streams in bounded memory.
        With `require_visible`, a range in which no frame shows anything but the background ends
        in an InputError after its last frame (a file being written from it is then not kept).

        With gsplat, posing, rasterization and quantisation stay on the GPU, a batch is one
        gsplat call, and its frames come back through pinned memory while the next batch
        renders: the frames are views of that batch's host buffer. Cancellation is checked
        before each batch and each frame, and an error in a batch comes after the frames
        before it, as on the CPU."""
        camera = self.camera()
        if self.backend == "gsplat":
            from renderer.gsplat_backend import GPU_BATCH, Readback, device_view, rasterize_batch

            g, batch = self.gaussians, batch or GPU_BATCH
            viewmat, K, background = device_view(camera, torch.tensor(self.view.background), self.device)
            plain = (background.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
            readback, seen, pending = Readback(self.device), not require_visible, None
            for first in itertools.chain(range(start, stop, batch), [None]):  # None: the last batch's frames
                ahead = failure = None
                if first is not None:
                    if cancel is not None and cancel.is_set():
                        raise Cancelled()
                    last = min(first + batch, stop)
                    try:
                        if self.rig is None:
                            means, quats, scales = (t.expand(last - first, *t.shape) for t in (g.means, g.quats, g.scales))
                        else:
                            means, quats, scales = self._posed(first, last)
                        images = rasterize_batch(means, quats, scales, g.opacities, g.sh, viewmat, K,
                                                 camera.width, camera.height, background)[0]
                        images = (images.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
                        ahead = readback.start(images, (images != plain).flatten(1).any(1))
                    except Exception as err:  # noqa: BLE001 - raised after the frames before it
                        failure = err
                if pending is not None:
                    frames, shown = pending()
                    seen = seen or bool(shown.any())
                    for frame in frames:
                        if cancel is not None and cancel.is_set():
                            raise Cancelled()
                        yield frame
                if failure is not None:
                    raise failure
                pending = ahead
            self._refuse_blank(seen, start, stop)
            return
        batch = 8 if batch is None else batch
        background = torch.tensor(self.view.background, dtype=torch.float32, device=self.device)
        plain = (background.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
        seen = not require_visible
        g = self.gaussians
        if self.rig is None:  # a static scene: its world covariances, once for every frame
            static = (g.means, packed_covariances(g.quats, g.scales))
        for first in range(start, stop, batch):
            last = min(first + batch, stop)
            if self.rig is not None:
                posed = self._posed(first, last)  # world means and covariances per frame
            for k in range(last - first):
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                pose = static if self.rig is None else (posed[0][k], posed[1][k])
                image = render_cpu(g, camera, background, posed=pose, backend=self.backend)[0]
                image = (image.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
                seen = seen or bool((image != plain).any())
                yield image.cpu().numpy()
        self._refuse_blank(seen, start, stop)

    def _refuse_blank(self, seen: bool, start: int, stop: int) -> None:
        """`require_visible`'s end: a non-empty range that showed nothing is an error."""
        if not seen and stop > start:
            raise InputError(f"{self.avatar.source}: nothing of the avatar is visible in any frame from this view "
                             "(every Gaussian is transparent, too small or outside the image); nothing was written")

    def _posed(self, first: int, last: int) -> tuple[torch.Tensor, ...]:
        """World Gaussians of frames first..last-1: means, quats, scales with gsplat; on the CPU
        means and packed covariances, what its projection takes (`bind_covariances`: no
        quaternions built only to be turned back into matrices). The last result is kept (and
        shared with snapshots) so that moving the camera over a paused frame skips FLAME and
        binding. Values that overflow on the way (absurd FLAME parameters or avatar values) stop
        here, naming the avatar and the frame, rather than render as nothing."""
        cached = self._pose_cache.get("last")  # one read: other threads may replace it
        if cached is not None:
            (clip, *settings), value = cached
            if clip is self.clip and settings == [first, last, self.performance]:
                return value
        vertices = self.rig(self.flame_params(first, last))
        if self.backend != "gsplat":
            means, covariances, finite = bind_covariances(self.gaussians, vertices, self.rig.faces)
            value = (means, covariances)
        else:
            value = bind(self.gaussians, vertices, self.rig.faces)
            finite = torch.stack([torch.isfinite(v).flatten(1).all(1) for v in value]).all(0)
        if not bool(finite.all()):
            frame = first + int(torch.nonzero(~finite)[0])
            raise InputError(f"{self.avatar.source}: frame {frame} of {self.clip.origin or 'the clip'} poses Gaussians "
                             "at infinite or undefined positions: the FLAME parameters or the avatar's values are "
                             "out of range")
        self._pose_cache["last"] = ((self.clip, first, last, copy.deepcopy(self.performance)), value)
        return value

    def render_frame(self, index: int) -> np.ndarray:
        return next(self.render_range(index, index + 1))

    def load_clip(self, source: ClipSource, fps: float = DEFAULT_FPS) -> Clip:
        """Build `source` into the clip this avatar and driver play at `fps`, and take it."""
        self.clip = source.build(self.driver, self.avatar.blendshapes, fps)
        return self.clip

    def set_view(self, **changes: object) -> None:
        """Change view fields by name (width, yaw, background…); a name View lacks is a TypeError."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(View)})
        if unknown:
            raise TypeError(f"View has no field {', '.join(unknown)}")
        for name, value in changes.items():
            setattr(self.view, name, value)

    def reset_view(self) -> None:
        """Front orbit view (no file camera), auto-framed and centred; the image size and
        background stay."""
        self.set_view(yaw=0.0, pitch=0.0, distance=None, pan=(0.0, 0.0), camera=None)

    def orbit_from_camera(self) -> None:
        """Replace a file camera by the orbit view at its pose: same centre and viewing direction
        (the orbit's target is the point of the optical axis nearest the head), upright and at the
        orbit's field of view, so a drag in the app carries on from what was shown."""
        camera = self.view.camera
        if camera is None:
            return
        target = frame_head(self._framing, self.view.width, self.view.height)[0].double()
        forward, centre = camera.viewmat[2, :3].double(), camera.center.double()
        depth = max(float((target - centre) @ forward), 0.05)
        yaw = math.degrees(math.atan2(-float(forward[0]), -float(forward[2])))
        pitch = math.degrees(math.asin(max(-1.0, min(1.0, -float(forward[1])))))
        pitch = max(-89.0, min(89.0, pitch))
        orbit = orbit_camera(target, yaw, pitch, 1.0, self.view.width, self.view.height).viewmat.double()
        shift = centre + depth * forward - target  # along the orbit's right and up (down is −up)
        self.set_view(yaw=yaw, pitch=pitch, distance=depth, camera=None,
                      pan=(float(shift @ orbit[0, :3]), -float(shift @ orbit[1, :3])))

    def record(self, path: str | Path, *, cancel: threading.Event | None = None,
               on_frame: Callable[[int, np.ndarray], None] | None = None, lead_in: int = 0,
               lead_out: int = 0) -> int:
        """Write the clip at the view's size with its audio to an MP4, or to a folder of PNGs."""
        clip = self.clip
        total = lead_in + clip.num_frames + lead_out

        def frames() -> Iterator[np.ndarray]:
            # made as the writer asks: a bad size or output fails before anything renders
            still = self._neutral_frame() if lead_in or lead_out else None
            stream = itertools.chain(itertools.repeat(still, lead_in),
                                     self.render_range(0, clip.num_frames, cancel=cancel, require_visible=True),
                                     itertools.repeat(still, lead_out))
            for index, frame in enumerate(stream):
                if on_frame is not None:
                    on_frame(index, frame)
                yield frame

        audio = padded_audio(clip.audio, lead_in / clip.fps, lead_out / clip.fps)
        if not is_video_path(path):
            return write_png_folder(frames(), path, audio)
        write_mp4(frames(), path, (self.view.width, self.view.height), clip.fps, total, audio)
        return total

    def _neutral_frame(self) -> np.ndarray:
        """The still neutral face under the same view and expression space (no speech, no
        emotion): lead-in and -out, as a silent neutral frame of the clip shows it."""
        still = self.snapshot()
        still.performance = Performance(expression_space=self.performance.expression_space)
        still.clip = still_clip(1.0 / still.clip.fps, still.clip.fps)
        return still.render_frame(0)
