"""A face that is alive: blinks, saccadic gaze and idle head motion as FLAME motion layers.

Each layer is made for the whole clip at once from its seed (its own random stream, so one
layer's strength never changes another's events), in continuous time sampled at the frame
times: any frame range is the same rows of the whole clip, and a strength scales only the
amplitude (the same seed keeps the same event times). Published human statistics:

- Blinks. Spontaneous rate ~17/min at rest and ~26/min in conversation, 4.5/min reading
  (Bentivoglio et al. 1997, Mov. Disord. 12:1028-1034): the rate here follows the clip's speech,
  REST_BLINKS_PER_MIN in silence and TALK_BLINKS_PER_MIN while speaking. Inter-blink intervals
  are irregular and right-skewed (Ponder & Kennedy 1927, Q. J. Exp. Physiol. 18:89-110), drawn
  log-normal (shape IBI_SIGMA) in the clip's rate-warped time. Blink duration ~100-400 ms
  (Caffier, Erdmann & Ullsperger 2003, Eur. J. Appl. Physiol. 89:319-325), log-normal around
  BLINK_MEDIAN_S; the lid closes about twice as fast as it reopens (Evinger, Manning & Sibony
  1991, IOVS 32:387-400), CLOSING_SHARE of the blink. No blink overlaps the apex of a surprised
  or fearful widening (intensity ≥ WIDENING_APEX): such a blink is left out.
- Gaze. Fixations log-normal around FIXATION_MEDIAN_S (≥ 0.15 s; scene viewing ~0.33 s mean,
  longer when attending a partner: Rayner 1998, Psychol. Bull. 124:372-422), then a saccade to a
  new target drawn around the straight-ahead gaze (σ GAZE_SIGMA_DEG, so amplitudes of a few
  degrees), both eyes together, lasting the main sequence D = 21 ms + 2.2 ms/° · A (Carpenter
  1988, Movements of the Eyes; Baloh et al. 1975, Neurology 25:1065) with a minimum-jerk profile.
- Head. A slow drift (sinusoids of 0.03-0.2 Hz) plus motion that follows speech energy: a
  0.3-2 Hz sway scaled by the smoothed loudness and a nod at each loudness onset (stressed
  syllables: Hadar et al. 1983, Lang. Speech 26:117-129; head motion tracks speech amplitude and
  F0: Munhall et al. 2004, Psychol. Sci. 15:133-137; a few degrees of rotation: Busso et al. 2007,
  IEEE TASLP 15:1075-1086), as neck_pose.

FLAME conventions: eyes_pose and neck_pose are axis-angle; a positive x rotation turns the face
(or gaze) down, a positive y rotation toward the subject's left (+x). Eyelids are VHAP's
(T, 2) closure of the left and right eyelid blendshapes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from common.errors import InputError
from models.rig.settings import LAYERS

REST_BLINKS_PER_MIN, TALK_BLINKS_PER_MIN = 17.0, 26.0
IBI_SIGMA = 0.7
BLINK_MEDIAN_S, BLINK_SIGMA, BLINK_RANGE_S = 0.2, 0.3, (0.1, 0.4)
CLOSING_SHARE = 1 / 3
WIDENING_APEX = 0.5
WIDENING_EMOTIONS = ("surprised", "surprise", "fearful", "fear", "afraid")
FIXATION_MEDIAN_S, FIXATION_SIGMA, FIXATION_MIN_S = 0.45, 0.5, 0.15
GAZE_SIGMA_DEG = (2.5, 1.5)  # horizontal, vertical spread of fixation targets at strength 1
HEAD_DRIFT_DEG = (1.2, 1.8, 0.6)  # pitch, yaw, roll std of the drift at strength 1
HEAD_SPEECH_DEG = (1.5, 1.2, 0.6)  # std of the sway while speaking at full energy
NOD_DEG, NOD_TAU_S = 2.0, 0.15  # a nod's peak (pitch, face down) at a full-energy onset, its time constant


@dataclass(frozen=True)
class LivingLayers:
    """Strengths of the layers (0: off; 1: human statistics; amplitude scales with it) and the
    seed of their random events."""

    blink: float = 0.0
    gaze: float = 0.0
    head_motion: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name, (option, high) in LAYERS.items():
            check_strength(option, getattr(self, name), high)

    @property
    def active(self) -> bool:
        return any(getattr(self, name) > 0 for name in LAYERS)


def check_strength(option: str, value: float | str, high: float) -> float:
    """A layer strength (a number, or its text) in 0..high, else an InputError naming `option`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and 0 <= number <= high):
        raise InputError(f"{option} {value}: a strength in 0..{high:g} (0 off, 1 as people do)")
    return number


@dataclass
class LivingTrack:
    """The layers of a whole clip: eyelid closure (T, 2) 0..1, eyes_pose (T, 6) and
    neck_pose (T, 3) in axis-angle radians."""

    eyelids: np.ndarray
    eyes_pose: np.ndarray
    neck_pose: np.ndarray


def _stream(seed: int, layer: str) -> np.random.Generator:
    return np.random.default_rng([seed, list(LAYERS).index(layer)])


def _smooth(values: np.ndarray, fps: float, seconds: float) -> np.ndarray:
    """A centred moving average over `seconds` (edges averaged over what exists; at most the
    whole signal)."""
    width = max(1, min(len(values), int(round(seconds * fps))))
    kernel = np.ones(width)
    total = np.convolve(values, kernel, mode="same")
    return total / np.convolve(np.ones(len(values)), kernel, mode="same")


def blink_closure(times: np.ndarray, onsets: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """Lid closure 0..1 at `times` of blinks (not overlapping, in time order) starting at
    `onsets` lasting `durations` seconds: a fast closing (CLOSING_SHARE) and a slower reopening,
    each a half cosine."""
    if not len(onsets):
        return np.zeros(len(times))
    latest = np.searchsorted(onsets, times, side="right") - 1  # the blink begun last, -1: none yet
    u = np.where(latest >= 0, times - onsets[np.maximum(latest, 0)], -1.0)
    duration = durations[np.maximum(latest, 0)]
    closing = CLOSING_SHARE * duration
    down = np.sin(0.5 * np.pi * np.clip(u / closing, 0, 1)) ** 2
    up = np.cos(0.5 * np.pi * np.clip((u - closing) / (duration - closing), 0, 1)) ** 2
    return np.where(u < 0, 0.0, np.where(u < closing, down, np.where(u < duration, up, 0.0)))


def blink_events(num_frames: int, fps: float, seed: int, speaking: np.ndarray,
                 apex: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Onsets and durations (seconds) of the clip's blinks: a renewal process whose rate follows
    `speaking` (0..1 per frame), with log-normal unit-mean intervals in rate-warped time; blinks
    that would overlap an `apex` frame (bool per frame) are left out."""
    rng = _stream(seed, "blink")
    rate = (REST_BLINKS_PER_MIN + (TALK_BLINKS_PER_MIN - REST_BLINKS_PER_MIN) * np.clip(speaking, 0, 1)) / 60.0
    warped = np.concatenate([[0.0], np.cumsum(rate / fps)])  # expected blinks before each frame boundary
    frame_times = np.arange(num_frames + 1) / fps
    onsets, durations, level, free_from = [], [], 0.0, 0.0
    while True:
        level += rng.lognormal(-IBI_SIGMA ** 2 / 2, IBI_SIGMA)
        duration = float(np.clip(rng.lognormal(math.log(BLINK_MEDIAN_S), BLINK_SIGMA), *BLINK_RANGE_S))
        if level >= warped[-1]:
            break
        onset = float(np.interp(level, warped, frame_times))
        if onset < free_from:
            continue
        first, last = int(onset * fps), min(num_frames, int(math.ceil((onset + duration) * fps)) + 1)
        if apex[first:last].any():
            continue
        onsets.append(onset)
        durations.append(duration)
        free_from = onset + duration + 0.1
    return np.array(onsets), np.array(durations)


def _min_jerk(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0, 1)
    return u ** 3 * (10 - 15 * u + 6 * u ** 2)


def saccade_duration(amplitude_deg: np.ndarray | float) -> np.ndarray | float:
    """Main sequence: seconds a saccade of `amplitude_deg` degrees lasts."""
    return 0.021 + 0.0022 * amplitude_deg


def gaze_events(duration_s: float, seed: int, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """Saccade onsets (seconds) and fixation targets (n+1, 2) in degrees (yaw, pitch): target 0
    is held from the start, target k+1 is reached by the saccade at onset k."""
    rng = _stream(seed, "gaze")
    spread = strength * np.array(GAZE_SIGMA_DEG)
    targets, onsets, t = [rng.normal(0, spread)], [], 0.0
    while True:
        t += max(FIXATION_MIN_S, rng.lognormal(math.log(FIXATION_MEDIAN_S), FIXATION_SIGMA))
        target = rng.normal(0, spread)
        if t >= duration_s:
            break
        onsets.append(t)
        targets.append(target)
        t += float(saccade_duration(np.hypot(*(target - targets[-2]))))
    return np.array(onsets), np.array(targets)


def gaze_angles(times: np.ndarray, onsets: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(T, 2) gaze yaw, pitch in degrees at `times`: fixations joined by main-sequence saccades
    (each ends before the next begins)."""
    if not len(onsets):
        return np.tile(targets[0], (len(times), 1))
    last = np.maximum(np.searchsorted(onsets, times, side="right") - 1, 0)  # before the first: fixating targets[0]
    step = targets[last + 1] - targets[last]
    progress = _min_jerk((times - onsets[last]) / saccade_duration(np.hypot(step[:, 0], step[:, 1])))
    return targets[last] + progress[:, None] * step


def _sines(times: np.ndarray, rng: np.random.Generator, low_hz: float, high_hz: float, count: int = 6) -> np.ndarray:
    """A smooth random signal of unit standard deviation: `count` sinusoids of random frequency
    in low..high Hz and random phase (continuous in time, so any frame rate samples it alike)."""
    freqs, phases = rng.uniform(low_hz, high_hz, count), rng.uniform(0, 2 * np.pi, count)
    return np.sqrt(2.0 / count) * np.sin(2 * np.pi * freqs * times[:, None] + phases).sum(1)


def head_motion(times: np.ndarray, fps: float, energy: np.ndarray, seed: int, strength: float) -> np.ndarray:
    """(T, 3) neck rotation in degrees (pitch, yaw, roll): drift, plus sway and onset nods that
    follow `energy` (0..1 per frame)."""
    rng = _stream(seed, "head_motion")
    drift = np.stack([a * _sines(times, rng, 0.03, 0.2) for a in HEAD_DRIFT_DEG], -1)
    loud = _smooth(np.clip(energy, 0, 1), fps, 0.25)
    sway = np.stack([a * _sines(times, rng, 0.3, 2.0) for a in HEAD_SPEECH_DEG], -1) * loud[:, None]
    rise = np.clip(np.diff(loud, prepend=loud[:1]) * fps * 0.1, 0, None)  # loudness gained per 100 ms
    kernel_t = np.arange(int(round(6 * NOD_TAU_S * fps)) + 1) / fps
    kernel = kernel_t / NOD_TAU_S * np.exp(1 - kernel_t / NOD_TAU_S)  # peaks at 1 after NOD_TAU_S
    nods = NOD_DEG * np.convolve(rise, kernel)[:len(times)]
    nods -= _smooth(nods, fps, 2.0)  # each nod returns: no lasting tilt from a run of syllables
    sway[:, 0] += nods
    return strength * (drift + sway)


def _axis_angle(pitch_deg: np.ndarray, yaw_deg: np.ndarray, roll_deg: np.ndarray | None = None) -> np.ndarray:
    """(T, 3) axis-angle of rotations yaw (y) · pitch (x) · roll (z), in radians."""
    angles = [yaw_deg, pitch_deg] + ([roll_deg] if roll_deg is not None else [np.zeros_like(yaw_deg)])
    return Rotation.from_euler("YXZ", np.stack(angles, -1), degrees=True).as_rotvec().astype(np.float32)


def speech_energy(frame_rms_db: np.ndarray) -> np.ndarray:
    """Per-frame speech energy 0..1 from frame levels in dBFS: 1 at the clip's 95th-percentile
    frame, 0 at 30 dB below it or under -60 dBFS (silence)."""
    if not len(frame_rms_db) or not np.any(frame_rms_db > -60):
        return np.zeros(len(frame_rms_db))
    top = np.percentile(frame_rms_db[frame_rms_db > -60], 95)
    return np.where(frame_rms_db > -60, np.clip(1 + (frame_rms_db - top) / 30, 0, 1), 0.0)


def widening_apex(intensities: np.ndarray, names: list[str] | tuple[str, ...]) -> np.ndarray:
    """Frames (bool) at the apex of a surprised or fearful widening: either at ≥ WIDENING_APEX."""
    columns = [k for k, name in enumerate(names) if name.lower() in WIDENING_EMOTIONS]
    if not columns or not len(intensities):
        return np.zeros(len(intensities), bool)
    return intensities[:, columns].max(1) >= WIDENING_APEX


def living_track(layers: LivingLayers, num_frames: int, fps: float, energy: np.ndarray,
                 apex: np.ndarray) -> LivingTrack:
    """The layers of a whole clip of `num_frames` frames at `fps`, given its speech energy
    (0..1 per frame, `speech_energy`) and the frames at a widening apex (`widening_apex`)."""
    times = np.arange(num_frames) / fps
    eyelids = np.zeros((num_frames, 2), np.float32)
    eyes = np.zeros((num_frames, 6), np.float32)
    neck = np.zeros((num_frames, 3), np.float32)
    if not num_frames:
        return LivingTrack(eyelids, eyes, neck)
    if layers.blink > 0:
        speaking = _smooth((energy > 0.3).astype(float), fps, 2.0)
        onsets, durations = blink_events(num_frames, fps, layers.seed, speaking, apex)
        eyelids[:] = (layers.blink * blink_closure(times, onsets, durations))[:, None]
    if layers.gaze > 0:
        onsets, targets = gaze_events(num_frames / fps, layers.seed, layers.gaze)
        yaw, pitch = gaze_angles(times, onsets, targets).T
        eyes[:] = np.tile(_axis_angle(pitch, yaw), 2)
    if layers.head_motion > 0:
        pitch, yaw, roll = head_motion(times, fps, energy, layers.seed, layers.head_motion).T
        neck[:] = _axis_angle(pitch, yaw, roll)
    return LivingTrack(eyelids, eyes, neck)


def pose_degrees(axis_angle: np.ndarray) -> np.ndarray:
    """(T, 3) pitch, yaw, roll in degrees of (T, 3) axis-angle rotations (inverse of the layers'
    composition), for measuring them."""
    yaw, pitch, roll = Rotation.from_rotvec(np.asarray(axis_angle, np.float64)).as_euler("YXZ", degrees=True).T
    return np.stack([pitch, yaw, roll], -1)
