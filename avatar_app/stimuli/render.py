"""Making one stimulus through the player core: its MP4 and, if asked, the apex PNG, the
weights CSV and the design's `exports` (the clip's animation, exports/player_files.py).
Lead-in and lead-out are the still neutral face with silence around the clip."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from models.rig.blendshapes import WeightSequence

from ..avatar import AvatarSource
from ..clip import STILL_SECONDS, frame_count
from ..exports.player_files import write_export
from ..player import Player
from ..video import write_png
from .design import EXPORT_FILES
from .resolve import Stimulus

ARKIT_EXPORTS = {"livelink": ("arkit", "livelink"), "arkit": ("arkit", "json")}  # `exports` → kind, format


@dataclass(frozen=True)
class Outputs:
    """Which files besides the MP4 each stimulus gets."""

    png: bool = False
    weights_csv: bool = False

    def files(self, stimulus_id: str, exports: Sequence[str] = ()) -> dict[str, str]:
        """Output kind → file name; the stimulus' `exports` (keys of EXPORT_FILES) as kind
        `export_<kind>`."""
        names = {"mp4": f"{stimulus_id}.mp4"}
        names.update({f"export_{kind}": f"{stimulus_id}.{EXPORT_FILES[kind]}" for kind in exports})
        if self.png:
            names["png"] = f"{stimulus_id}.png"
        if self.weights_csv:
            names["weights_csv"] = f"{stimulus_id}.weights.csv"
        return names


class Players:
    """One player per avatar source, loaded on first use and kept for the next stimuli."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.loaded: dict[AvatarSource, Player] = {}

    def get(self, source: AvatarSource) -> Player:
        if source not in self.loaded:
            self.loaded[source] = Player(source.load(), backend=self.backend)
        return self.loaded[source].snapshot()


_APEX_CHUNK = 512  # frames whose vertex displacements are held at once


def apex_frame(player: Player, frames: int) -> int:
    """The frame where the expression is strongest (its displacement norm); when the expression
    does not change, the frame where the face moves most. Measured `_APEX_CHUNK` frames at a
    time, so a long clip needs no more memory than a short one."""
    bs = player.avatar.blendshapes
    if bs is None and player.rig is None:  # a static 3DGS scene: nothing moves
        return 0
    if bs is None:
        params = player.flame_params(0, frames)
        return int(np.argmax(np.linalg.norm(np.concatenate([params.expr, params.jaw_pose], 1), axis=1)))
    speech_basis = bs.speech_basis.reshape(len(bs.speech_names), -1)
    expression_basis = bs.expression_basis.reshape(len(bs.expression_names), -1)
    expression_motion, total_motion = np.zeros(frames), np.zeros(frames)
    for first in range(0, frames, _APEX_CHUNK):
        last = min(first + _APEX_CHUNK, frames)
        speech, expression = player.weights(first, last)
        moved = expression @ expression_basis
        expression_motion[first:last] = np.linalg.norm(moved, axis=1)
        total_motion[first:last] = np.linalg.norm(speech @ speech_basis + moved, axis=1)
    if np.ptp(expression_motion) > 1e-6 * max(float(expression_motion.max()), 1e-12):
        return int(np.argmax(expression_motion))
    return int(np.argmax(total_motion))


def _padded_weights(weights: WeightSequence, before: int, after: int) -> WeightSequence:
    def pad(values: np.ndarray) -> np.ndarray:
        return np.pad(values, ((before, after), (0, 0)))

    return WeightSequence(fps=weights.fps, speech=pad(weights.speech), expression=pad(weights.expression),
                          speech_names=weights.speech_names, expression_names=weights.expression_names)


def planned_frames(stimulus: Stimulus) -> int:
    """The frames a stimulus will have, known from its design before it is made: lead-in, the
    source's segment at the stimulus' fps, lead-out. Exact for stills, weights and motion; for
    audio it may differ by a frame (the segment is cut at whole samples), which the batch's
    progress corrects when the stimulus is made."""
    clip, fps = stimulus.clip, stimulus.fps
    if clip.duration is not None:  # checked to lie inside the source: no need to open it
        seconds = clip.duration
    else:
        length = clip.source_length(fps)
        seconds = STILL_SECONDS if length is None else length - clip.start
    return frame_count(stimulus.lead_in, fps) + frame_count(seconds, fps) + frame_count(stimulus.lead_out, fps)


def make_stimulus(stimulus: Stimulus, folder: Path, outputs: Outputs, players: Players,
                  rendered: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Write the stimulus' files into `folder` (each atomically) and return what was made:
    frame count, duration, apex frame, the SHA-256 of the rendered RGB frames, the resolved
    camera distance and what loudness normalisation did. `rendered(n)` is told each time the
    n-th frame (lead-in included) has been rendered."""
    torch.manual_seed(stimulus.seed)
    player = players.get(stimulus.avatar)
    player.set_view(**vars(stimulus.view))  # not asdict: that would take the camera apart
    player.set_performance(stimulus.performance)
    fps = stimulus.fps
    clip = player.load_clip(stimulus.clip, fps)
    before, after = frame_count(stimulus.lead_in, fps), frame_count(stimulus.lead_out, fps)
    total = before + clip.num_frames + after
    apex = before + apex_frame(player, clip.num_frames)
    names = outputs.files(stimulus.id, stimulus.exports)
    if "weights_csv" in names:
        _padded_weights(player.weight_sequence(), before, after).to_csv(folder / names["weights_csv"])

    digest, kept = hashlib.sha256(), {}

    def seen(index: int, frame: np.ndarray) -> None:
        digest.update(np.ascontiguousarray(frame).tobytes())
        if index == apex:
            kept["apex"] = frame
        if rendered is not None:
            rendered(index + 1)

    player.record(folder / names["mp4"], on_frame=seen, lead_in=before, lead_out=after)
    if "png" in names:
        write_png(kept["apex"], folder / names["png"])
    for kind in stimulus.exports:
        export, fmt = ARKIT_EXPORTS.get(kind, (kind, ""))
        write_export(player, folder / names[f"export_{kind}"], export, fmt, stimulus.arkit_shapes)
    level = clip.loudness
    return {
        "frames": total, "duration": total / fps, "apex_frame": apex, "frames_sha256": digest.hexdigest(),
        "distance": None if stimulus.view.camera is not None else stimulus.view.distance or player.auto_distance(),
        "loudness_in": None if level is None else round(level.level_in, 3),
        "gain_db": None if level is None else round(level.gain_db, 3),
        "loudness_out": None if level is None else round(level.level_out, 3),
        "clipped_samples": 0 if level is None else level.clipped_samples,
    }
