"""The document the app has open: the avatar and clip sources, the Player made from them, the
playhead and the emotion performance, and the loading that replaces them.

It is apart from the window so that the File menu and the panels change the document without
reaching into widgets: they call the session, and the window redraws on its signals. Loading
runs on a Task thread, as every long piece of work does; only its result is taken on the GUI
thread."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Signal

from common.errors import InputError
from models.rig.emotion import EmotionTrack, Keyframe

from ..avatar import AvatarSource
from ..clip import ClipSource
from ..info import file_kind
from ..player import Player
from ..preset import load_preset
from .tasks import Task


class Session(QObject):
    """One open document; emits what changed, never touches a widget."""

    loaded = Signal(str)               # what was opened: the player, its clip or both are new
    performanceChanged = Signal(bool)  # True when the emotions did not come from the caller's mix (re-read them)
    failed = Signal(str, str)          # title, message: something asked for could not be done
    message = Signal(str, int)         # a status line and how many ms it stays (0: until replaced)

    def __init__(self, player: Player, avatar_source: AvatarSource, clip_source: ClipSource,
                 settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.player, self.avatar_source, self.clip_source = player, avatar_source, clip_source
        self.settings = settings  # recent files, last folder, export size: kept between runs
        self.frame = 0            # the playhead
        self.tasks: set[Task] = set()

    # ---- time ----------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return self.player.clip.num_frames

    def frame_time(self) -> float:
        return self.frame / self.player.clip.fps

    # ---- loading -------------------------------------------------------------------------
    def open_avatar(self, source: AvatarSource) -> Task:
        """Another avatar (folder, FLAME and blendshape model) driven by the same clip."""
        return self.load(source, self.clip_source, str(source.avatar))

    def open_path(self, path: Path) -> Task | None:
        """Open any file by what it holds; None (after `failed`) when it is nothing we open.
        Weights or motion keep the current audio as their soundtrack."""
        try:
            kind = file_kind(path)
        except InputError as err:
            self.fail("Cannot open file", err)
            return None
        avatar, clip = self.avatar_source, self.clip_source
        if kind in ("avatar", "flame", "blendshapes"):
            return self.load(dataclasses.replace(avatar, **{kind: path}), clip, str(path))
        if kind == "audio":
            return self.load(avatar, ClipSource(audio=path), str(path))
        return self.load(avatar, ClipSource(audio=clip.audio, **{kind: path}), str(path))

    def load(self, avatar_source: AvatarSource, clip_source: ClipSource, what: str) -> Task:
        """Load in the background; a failure names the file and keeps what was loaded. The
        avatar is reused when only the clip changes."""
        reuse = self.player.snapshot() if avatar_source == self.avatar_source else None
        backend = self.player.backend

        def work(_task: Task) -> Player:
            player = reuse if reuse is not None else Player(avatar_source.load(), backend)
            player.load_clip(clip_source)
            return player

        self.tell(f"loading {what}…")
        return self.run_task(work, lambda player: self._adopt(player, avatar_source, clip_source, what),
                             f"Cannot open {what}")

    def _adopt(self, player: Player, avatar_source: AvatarSource, clip_source: ClipSource, what: str) -> None:
        """Take a loaded player, keeping the view and, where its emotions still exist, the
        performance of the previous one."""
        previous = self.player
        self.player, self.avatar_source, self.clip_source = player, avatar_source, clip_source
        if previous is not player:
            player.set_view(**vars(previous.view))  # not asdict: that would take a file camera apart
            performance = dataclasses.replace(previous.performance)
            try:
                player.set_expression_space(performance.expression_space)
            except InputError as err:
                performance.expression_space = "free"
                self.tell(f"expressions are free again: {err}", 8000)
            performance.living = dataclasses.replace(performance.living, **dict.fromkeys(
                player.living_unavailable(), 0.0))  # layers the new avatar cannot show stop
            try:
                player.set_performance(performance)
            except InputError:
                self.tell("the new blendshape model has other emotions: emotions reset", 8000)
        self.frame = min(self.frame, self.num_frames - 1)
        self.loaded.emit(what)
        self.tell(f"loaded {what}", 5000)

    # ---- performance ---------------------------------------------------------------------
    def key_at_playhead(self) -> Keyframe | None:
        return self.player.performance.keyframes.key_near(self.frame_time(), self._key_tolerance())

    def set_mix(self, mix: dict[str, float]) -> None:
        """The sliders' emotion mix; with keys it keys the playhead (what you see is what is keyed)."""
        if self.player.performance.keyframes:
            self._key(mix)
        else:
            self.player.set_emotions(mix)
        self.performanceChanged.emit(False)

    def set_expression_space(self, inside: bool) -> bool:
        """Keep expressions inside the avatar's own tracked ones, or free; False (after `failed`)
        when this avatar has none."""
        try:
            self.player.set_expression_space("avatar" if inside else "free")
        except InputError as err:
            self.fail("Cannot stay inside the avatar's expressions", err)
            return False
        self.performanceChanged.emit(False)
        return True

    def set_living(self, strengths: dict[str, float]) -> None:
        """The blink, gaze and head-motion strengths (the seed stays); a layer the avatar cannot
        show is refused (`failed`)."""
        try:
            self.player.set_living(dataclasses.replace(self.player.performance.living, **strengths))
        except InputError as err:
            self.fail("Cannot add this layer", err)
            return
        self.performanceChanged.emit(False)

    def set_gains(self, speech: float, expression: float) -> None:
        perf = self.player.performance
        perf.speech_gain, perf.expression_gain = speech, expression
        self.performanceChanged.emit(False)

    def key(self, mix: dict[str, float]) -> None:
        """Key `mix` at the playhead (nothing without a blendshape model)."""
        if self.player.avatar.blendshapes is None:
            return
        self._key(mix)
        self.performanceChanged.emit(False)

    def delete_key(self, mix: dict[str, float]) -> None:
        """Remove the key at the playhead, if any; without keys left, `mix` holds again."""
        key = self.key_at_playhead()
        if key is not None:
            self.player.set_keyframes(self.player.performance.keyframes.without_key(key.time))
            self._keys_removed(mix)

    def clear_keys(self, mix: dict[str, float]) -> None:
        self.player.set_keyframes(EmotionTrack())
        self._keys_removed(mix)

    def reset_performance(self) -> None:
        """No emotions, no keys, both strengths 1."""
        perf = self.player.performance
        perf.emotions, perf.keyframes, perf.speech_gain, perf.expression_gain = {}, EmotionTrack(), 1.0, 1.0
        self.performanceChanged.emit(True)

    def apply_preset(self, path: Path) -> bool:
        """Replace the performance by a saved preset (the expression space stays: presets do not
        carry it, nor the living layers); False (after `failed`) if it does not fit."""
        try:
            preset = load_preset(path)
            preset.expression_space = self.player.performance.expression_space
            preset.living = self.player.performance.living
            self.player.set_performance(preset)
        except InputError as err:
            self.fail("Cannot load preset", f"{path}: {err}" if str(path) not in str(err) else err)
            return False
        self.performanceChanged.emit(True)
        return True

    def _key_tolerance(self) -> float:
        return 0.5 / self.player.clip.fps

    def _key(self, mix: dict[str, float]) -> None:
        track = self.player.performance.keyframes
        self.player.set_keyframes(track.with_key(self.frame_time(), mix, tolerance=self._key_tolerance()))

    def _keys_removed(self, mix: dict[str, float]) -> None:
        if not self.player.performance.keyframes:  # the sliders hold again, as they stand
            self.player.set_emotions(mix)
        self.performanceChanged.emit(True)

    # ---- background work and notices ------------------------------------------------------
    def run_task(self, work: Callable[[Task], object], done: Callable[[object], None], error_title: str,
                 on_error: Callable[[BaseException], None] | None = None) -> Task:
        """Run `work` off the GUI thread; its result goes to `done`, a failure to `on_error`
        or to `failed` titled `error_title`."""
        task = Task(work, self)
        self.tasks.add(task)

        def finish(result: object) -> None:
            self.tasks.discard(task)
            done(result)

        def fail(err: BaseException) -> None:
            self.tasks.discard(task)
            if on_error is not None:
                on_error(err)
            else:
                self.fail(error_title, err)

        task.succeeded.connect(finish)
        task.failed.connect(fail)
        return task.start()

    def close(self, cleanup_s: float) -> None:
        """Cancel all background work and give each piece up to `cleanup_s` to remove its
        unfinished files."""
        for task in list(self.tasks):
            task.cancel.set()
        for task in list(self.tasks):
            task.wait(cleanup_s)

    def fail(self, title: str, err: BaseException | str) -> None:
        self.failed.emit(title, str(err))

    def tell(self, text: str, ms: int = 0) -> None:
        self.message.emit(text, ms)
