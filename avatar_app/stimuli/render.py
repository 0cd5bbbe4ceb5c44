"""Making one stimulus through the player core: its MP4 and, if asked, the apex PNG and the
weights CSV. Lead-in and lead-out are the still neutral face with silence around the clip."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.rig.blendshapes import WeightSequence

from ..avatar import AvatarSource
from ..clip import frame_count
from ..player import Player
from ..video import write_png
from .resolve import Stimulus


@dataclass(frozen=True)
class Outputs:
    """Which files besides the MP4 each stimulus gets."""

    png: bool = False
    weights_csv: bool = False

    def files(self, stimulus_id: str) -> dict[str, str]:
        """Output kind → file name."""
        names = {"mp4": f"{stimulus_id}.mp4"}
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


def make_stimulus(stimulus: Stimulus, folder: Path, outputs: Outputs, players: Players) -> dict[str, Any]:
    """Write the stimulus' files into `folder` (each atomically) and return what was made:
    frame count, duration, apex frame, the SHA-256 of the rendered RGB frames, the resolved
    camera distance and what loudness normalisation did."""
    torch.manual_seed(stimulus.seed)
    player = players.get(stimulus.avatar)
    player.set_view(**vars(stimulus.view))  # not asdict: that would take the camera apart
    player.set_performance(stimulus.performance)
    fps = stimulus.fps
    clip = player.load_clip(stimulus.clip, fps)
    before, after = frame_count(stimulus.lead_in, fps), frame_count(stimulus.lead_out, fps)
    total = before + clip.num_frames + after
    apex = before + apex_frame(player, clip.num_frames)
    names = outputs.files(stimulus.id)
    if "weights_csv" in names:
        _padded_weights(player.weight_sequence(), before, after).to_csv(folder / names["weights_csv"])

    digest, kept = hashlib.sha256(), {}

    def seen(index: int, frame: np.ndarray) -> None:
        digest.update(np.ascontiguousarray(frame).tobytes())
        if index == apex:
            kept["apex"] = frame

    player.record(folder / names["mp4"], on_frame=seen, lead_in=before, lead_out=after)
    if "png" in names:
        write_png(kept["apex"], folder / names["png"])
    level = clip.loudness
    return {
        "frames": total, "duration": total / fps, "apex_frame": apex, "frames_sha256": digest.hexdigest(),
        "distance": None if stimulus.view.camera is not None else stimulus.view.distance or player.auto_distance(),
        "loudness_in": None if level is None else round(level.level_in, 3),
        "gain_db": None if level is None else round(level.gain_db, 3),
        "loudness_out": None if level is None else round(level.level_out, 3),
        "clipped_samples": 0 if level is None else level.clipped_samples,
    }
