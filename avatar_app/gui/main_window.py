"""The main window: viewport, transport, emotion panel, curves and status bar around one Player.

The window owns the live settings (`self.player`); every frame request carries a snapshot of
them to the render thread, so a slider move shows on the next rendered frame and nothing the
user does waits for the renderer."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QColor, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (QColorDialog, QLabel, QMainWindow, QMessageBox, QSplitter,
                               QVBoxLayout, QWidget)

from models.emotion import EmotionTrack
from models.errors import InputError

from ..avatar import AvatarSource
from ..clip import DEFAULT_FPS, ClipSource
from ..player import VIEW_PRESETS, Player
from . import viewport as view_controls
from .curves import CurvePanel, curve_data
from .emotion_panel import EmotionPanel
from .file_actions import FileActions
from .playback import PlaybackClock
from .render_worker import RenderRequest, RenderResult, RenderWorker
from .tasks import Task
from .transport import TransportBar
from .viewport import Viewport

PREVIEW_SIDE = 256        # CPU: long side of the image while the user interacts or plays
FULL_SIDE = {"cpu": 1024, "gsplat": 2048}
SETTLE_MS = 250           # after the last interaction, render full size
TICK_MS = 8               # playback clock polling while playing
FPS_WINDOW = 1.0          # seconds over which the shown frame rate is measured
TASK_CLEANUP_S = 30.0     # on closing, how long a cancelled recording may take to remove its file


class MainWindow(QMainWindow):
    frame_shown = Signal(bool)  # preview?

    def __init__(self, player: Player, avatar_source: AvatarSource, clip_source: ClipSource,
                 settings: QSettings) -> None:
        super().__init__()
        self.setWindowTitle("Talking-head studio")
        self.setAcceptDrops(True)
        self.settings = settings
        self.player = player
        self.avatar_source, self.clip_source = avatar_source, clip_source
        self.frame = 0
        self.error_box: Optional[QMessageBox] = None
        self.tasks: set[Task] = set()
        self.last_change_latency: Optional[float] = None
        self._serial = 0
        self._shown_serial = 0
        self._change_mark: Optional[tuple[int, float]] = None
        self._shown_times: list[float] = []
        self._interact_until = 0.0

        self.viewport = Viewport(self)
        self.transport = TransportBar(self)
        self.emotion_panel = EmotionPanel(self)
        self.curves = CurvePanel(self)
        self.clock = PlaybackClock(self)
        self.worker = RenderWorker(self)
        self.files = FileActions(self)
        self._build_layout()
        self._build_menus()
        self._build_status_bar()
        self._connect()

        self._tick = QTimer(self, interval=TICK_MS, timerType=Qt.PreciseTimer)
        self._tick.timeout.connect(self._on_tick)
        self._settle = QTimer(self, singleShot=True, interval=SETTLE_MS)
        self._settle.timeout.connect(self._on_settled)
        self._curve_timer = QTimer(self, singleShot=True, interval=60)
        self._curve_timer.timeout.connect(self._update_curves)

        self.install(player, avatar_source, clip_source)
        self._restore_settings()

    # ---- layout --------------------------------------------------------------------------
    def _build_layout(self) -> None:
        top = QSplitter(Qt.Horizontal, self)
        top.addWidget(self.viewport)
        top.addWidget(self.emotion_panel)
        top.setStretchFactor(0, 1)
        top.setSizes([700, 320])
        upper = QWidget(self)
        upper_layout = QVBoxLayout(upper)
        upper_layout.setContentsMargins(0, 0, 0, 0)
        upper_layout.addWidget(top, 1)
        upper_layout.addWidget(self.transport)
        self.splitter = QSplitter(Qt.Vertical, self)
        self.splitter.addWidget(upper)
        self.splitter.addWidget(self.curves)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([500, 400])
        self.setCentralWidget(self.splitter)

    def add_action(self, menu, text: str, slot: Callable, shortcut: Optional[str | QKeySequence] = None) -> QAction:
        """A menu entry; its shortcut works anywhere in the window."""
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda *_: slot())
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        self.files.build_menu(bar.addMenu("&File"))

        play = bar.addMenu("&Playback")
        self.add_action(play, "Play / pause", self.toggle_play, Qt.Key_Space)
        self.add_action(play, "Stop", self.stop)
        self.add_action(play, "Previous frame", lambda: self.step(-1), Qt.Key_Left)
        self.add_action(play, "Next frame", lambda: self.step(1), Qt.Key_Right)
        self.add_action(play, "Go to start", lambda: self.seek_frame(0), Qt.Key_Home)
        self.mute_action = self.add_action(play, "Mute", lambda: self.clock.set_muted(self.mute_action.isChecked()))
        self.mute_action.setCheckable(True)
        play.addSeparator()
        self.add_action(play, "Set emotion key at playhead", self.set_key, Qt.Key_K)
        self.add_action(play, "Delete emotion key at playhead", self.delete_key, QKeySequence.Delete)

        view = bar.addMenu("&View")
        for name, (yaw, pitch) in VIEW_PRESETS.items():
            self.add_action(view, name, lambda y=yaw, p=pitch: self.set_view_angles(y, p))
        self.add_action(view, "Reset view", self.reset_view, "R")
        view.addSeparator()
        self.add_action(view, "Background colour…", self.choose_background)

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.backend_label = QLabel(self)
        self.count_label = QLabel(self)
        self.fps_label = QLabel(self)
        for label in (self.fps_label, self.count_label, self.backend_label):
            status.addPermanentWidget(label)

    def _connect(self) -> None:
        self.worker.rendered.connect(self._on_rendered)
        self.worker.failed.connect(lambda message: self.statusBar().showMessage(message, 8000))
        self.clock.silenced.connect(lambda message: self.statusBar().showMessage(message, 8000))
        t = self.transport
        t.play_toggled.connect(self.toggle_play)
        t.stop_requested.connect(self.stop)
        t.step_requested.connect(self.step)
        t.seek_requested.connect(self.seek_frame)
        v = self.viewport
        v.orbited.connect(lambda dx, dy: self._change_view(view_controls.orbit, dx, dy))
        v.panned.connect(lambda dx, dy: self._change_view(view_controls.pan, dx, dy, self._distance(),
                                                          self.viewport.height()))
        v.zoomed.connect(lambda notches: self._change_view(view_controls.zoom, notches, self._distance()))
        v.reset_requested.connect(self.reset_view)
        v.resized.connect(lambda: self._change_view(lambda _view: None))
        e = self.emotion_panel
        e.emotions_changed.connect(self._on_emotions_changed)
        e.gains_changed.connect(self._on_gains_changed)
        e.key_requested.connect(self.set_key)
        e.delete_key_requested.connect(self.delete_key)
        e.clear_keys_requested.connect(self.clear_keys)
        e.reset_requested.connect(self.reset_performance)
        e.save_preset_requested.connect(self.files.save_preset)
        e.load_preset_requested.connect(self.files.load_preset)
        self.curves.seek_requested.connect(self.seek_time)

    # ---- loading -------------------------------------------------------------------------
    def install(self, player: Player, avatar_source: AvatarSource, clip_source: ClipSource) -> None:
        """Show a newly loaded player, keeping the view and, where the emotions still exist,
        the performance of the previous one."""
        previous = self.player
        self.player, self.avatar_source, self.clip_source = player, avatar_source, clip_source
        if previous is not player:
            player.view = previous.view
            try:
                player.set_performance(previous.performance)
            except InputError:
                self.statusBar().showMessage("the new blendshape model has other emotions: emotions reset", 8000)
        bs = player.avatar.blendshapes
        self.emotion_panel.set_emotion_names(bs.emotion_names if bs is not None else ())
        self._sync_panel()
        self.clock.set_audio(player.clip.audio)
        if self.clock.silent_reason and player.clip.audio is not None:
            self.statusBar().showMessage(self.clock.silent_reason, 8000)
        self.backend_label.setText("gsplat (CUDA)" if player.backend == "gsplat" else "CPU renderer")
        self.count_label.setText(f"{player.num_gaussians:,} Gaussians")
        self.setWindowTitle(f"Talking-head studio: {Path(avatar_source.avatar).name} · {clip_source.describe()}")
        self.frame = min(self.frame, player.clip.num_frames - 1)
        self.clock.seek(self.frame / player.clip.fps)
        self._update_curves()
        self._set_frame(self.frame)

    def load(self, avatar_source: AvatarSource, clip_source: ClipSource, what: str) -> Task:
        """Load in the background; on failure show the file and the problem and keep what was
        loaded. The avatar is reused when only the clip changes."""
        reuse = self.player.snapshot() if avatar_source == self.avatar_source else None
        backend = self.player.backend

        def work(_task: Task) -> Player:
            player = reuse if reuse is not None else Player(avatar_source.load(), backend)
            player.clip = clip_source.build(player.driver, player.avatar.blendshapes, DEFAULT_FPS)
            return player

        self.statusBar().showMessage(f"loading {what}…")
        return self.run_task(work, lambda player: self._loaded(player, avatar_source, clip_source, what),
                             f"Cannot open {what}")

    def _loaded(self, player: Player, avatar_source: AvatarSource, clip_source: ClipSource, what: str) -> None:
        self.install(player, avatar_source, clip_source)
        self.statusBar().showMessage(f"loaded {what}", 5000)
        self.files.remember(what)

    def run_task(self, work: Callable[[Task], object], done: Callable[[object], None], error_title: str,
                 on_error: Optional[Callable[[BaseException], None]] = None) -> Task:
        """Run `work` off the GUI thread; its result goes to `done`, a failure to `on_error`
        or to an error dialog titled `error_title`."""
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
                self.show_error(error_title, err)

        task.succeeded.connect(finish)
        task.failed.connect(fail)
        return task.start()

    def show_error(self, title: str, err: BaseException | str) -> None:
        """A non-blocking dialog naming the file and the problem; the app keeps running."""
        self.statusBar().showMessage(f"{title}: {err}", 10000)
        self.error_box = QMessageBox(QMessageBox.Critical, title, str(err), QMessageBox.Ok, self)
        self.error_box.open()

    # ---- playback ------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return self.player.clip.num_frames

    def frame_time(self) -> float:
        return self.frame / self.player.clip.fps

    def toggle_play(self) -> None:
        if self.clock.playing:
            self.clock.pause()
            self._tick.stop()
            self.transport.set_playing(False)
            self.request_render()
            return
        if self.frame >= self.num_frames - 1:
            self.seek_frame(0)
        self.clock.play()
        self._tick.start()
        self.transport.set_playing(True)

    def stop(self) -> None:
        if self.clock.playing:
            self.toggle_play()
        self.seek_frame(0)

    def step(self, delta: int) -> None:
        if self.clock.playing:
            self.toggle_play()
        self.seek_frame(self.frame + delta)

    def seek_frame(self, frame: int) -> None:
        frame = int(np.clip(frame, 0, self.num_frames - 1))
        self.clock.seek(frame / self.player.clip.fps)
        self._set_frame(frame)

    def seek_time(self, seconds: float) -> None:
        """Seek to a time (a click on the curves); a click near a keyframe lands on it."""
        fps = self.player.clip.fps
        key = self.player.performance.keyframes.key_near(seconds, max(0.1, 1 / fps))
        self.seek_frame(int(round((key.time if key else seconds) * fps)))

    def _on_tick(self) -> None:
        clip = self.player.clip
        t = self.clock.time()
        if t >= clip.duration:
            if self.transport.loop.isChecked():
                self.clock.seek(0.0)
                t = 0.0
            else:
                self.toggle_play()
                self._set_frame(clip.num_frames - 1)
                return
        frame = min(int(t * clip.fps), clip.num_frames - 1)
        if frame != self.frame:
            self._set_frame(frame)

    def _set_frame(self, frame: int) -> None:
        self.frame = frame
        clip = self.player.clip
        self.transport.set_position(frame, clip.num_frames, clip.fps)
        self.curves.set_playhead(frame / clip.fps)
        if self.player.performance.keyframes and not self.emotion_panel.dragging():
            self._sync_panel()
        self._show_key_state()
        self.request_render()

    # ---- emotions ------------------------------------------------------------------------
    def _sync_panel(self) -> None:
        """Sliders show the performance at the playhead (the keyed values when there are keys)."""
        perf, bs = self.player.performance, self.player.avatar.blendshapes
        if bs is not None:
            values = perf.intensities(np.array([self.frame_time()]), bs.emotion_names)[0]
            self.emotion_panel.set_mix(dict(zip(bs.emotion_names, values.tolist())))
        self.emotion_panel.set_gains(perf.speech_gain, perf.expression_gain)
        self._show_key_state()

    def _show_key_state(self) -> None:
        track = self.player.performance.keyframes
        at = track.key_near(self.frame_time(), 0.5 / self.player.clip.fps) is not None
        self.emotion_panel.show_keys(len(track.keys), at)

    def _on_emotions_changed(self) -> None:
        mix = self.emotion_panel.mix()
        track = self.player.performance.keyframes
        if track:  # with keys, an edit keys the playhead (what you see is what is keyed)
            self.player.set_keyframes(self._keyed(track, mix))
        else:
            self.player.set_emotions(mix)
        self._performance_changed()

    def _on_gains_changed(self) -> None:
        perf = self.player.performance
        perf.speech_gain, perf.expression_gain = self.emotion_panel.gains()
        self._performance_changed()

    def _keyed(self, track: EmotionTrack, mix: dict[str, float]) -> EmotionTrack:
        return track.with_key(self.frame_time(), mix, tolerance=0.5 / self.player.clip.fps)

    def set_key(self) -> None:
        if self.player.avatar.blendshapes is None:
            return
        self.player.set_keyframes(self._keyed(self.player.performance.keyframes, self.emotion_panel.mix()))
        self._performance_changed()

    def delete_key(self) -> None:
        track = self.player.performance.keyframes
        key = track.key_near(self.frame_time(), 0.5 / self.player.clip.fps)
        if key is not None:
            self.player.set_keyframes(track.without_key(key.time))
            self._after_key_removal()

    def clear_keys(self) -> None:
        self.player.set_keyframes(EmotionTrack())
        self._after_key_removal()

    def _after_key_removal(self) -> None:
        if not self.player.performance.keyframes:  # the sliders hold again, as they stand
            self.player.set_emotions(self.emotion_panel.mix())
        self._sync_panel()
        self._performance_changed()

    def performance_loaded(self) -> None:
        """A preset replaced the whole performance: show it."""
        self._sync_panel()
        self._performance_changed()

    def reset_performance(self) -> None:
        perf = self.player.performance
        perf.emotions, perf.keyframes, perf.speech_gain, perf.expression_gain = {}, EmotionTrack(), 1.0, 1.0
        self._sync_panel()
        self._performance_changed()

    def _performance_changed(self) -> None:
        self._show_key_state()
        self._interact()
        self.request_render()
        self._change_mark = (self._serial, time.perf_counter())
        self._curve_timer.start()

    def _update_curves(self) -> None:
        try:
            self.curves.set_data(curve_data(self.player))
        except InputError as err:
            self.statusBar().showMessage(str(err), 8000)
        self.curves.set_playhead(self.frame_time())

    # ---- view ----------------------------------------------------------------------------
    def _distance(self) -> float:
        view = self.player.view
        return view.distance if view.distance is not None else self.player.auto_distance()

    def _change_view(self, change: Callable, *args: float) -> None:
        change(self.player.view, *args)
        self._interact()
        self.request_render()

    def set_view_angles(self, yaw: float, pitch: float) -> None:
        self.player.view.yaw, self.player.view.pitch = yaw, pitch
        self.request_render()

    def reset_view(self) -> None:
        view_controls.reset(self.player.view)
        self.request_render()

    def choose_background(self) -> None:
        colour = QColorDialog.getColor(QColor.fromRgbF(*self.player.view.background), self, "Background colour")
        if colour.isValid():
            self.set_background((colour.redF(), colour.greenF(), colour.blueF()))

    def set_background(self, rgb: tuple[float, float, float]) -> None:
        self.player.view.background = tuple(float(c) for c in rgb)
        self.request_render()

    # ---- rendering -----------------------------------------------------------------------
    def _interact(self) -> None:
        self._interact_until = time.monotonic() + SETTLE_MS / 1000
        self._settle.start()

    def _on_settled(self) -> None:
        self._interact_until = 0.0  # timers may fire a little early
        if not self.clock.playing:
            self.request_render()

    def wants_preview(self) -> bool:
        """On CPU, a smaller image while playing or interacting keeps things fluid."""
        busy = self.clock.playing or time.monotonic() < self._interact_until
        return self.player.backend == "cpu" and busy

    def request_render(self) -> None:
        preview = self.wants_preview()
        side = PREVIEW_SIDE if preview else FULL_SIDE.get(self.player.backend, 1024)
        width, height = self.viewport.render_size(side)
        self._serial += 1
        self.worker.submit(RenderRequest(self.player.snapshot(), self.frame, width, height, preview, self._serial))

    def settled(self) -> bool:
        """The last requested frame is shown at full size and nothing is loading."""
        return (self._shown_serial == self._serial and not self.wants_preview() and not self.tasks
                and not self._settle.isActive())

    def _on_rendered(self, result: RenderResult) -> None:
        request = result.request
        if request.serial < self._shown_serial:
            return  # an older request finished after a newer one
        self._shown_serial = request.serial
        self.viewport.show_frame(result.image, request.player.view.background)
        now = time.perf_counter()
        if self._change_mark is not None and request.serial >= self._change_mark[0]:
            self.last_change_latency = now - self._change_mark[1]
            self._change_mark = None
        self._shown_times = [t for t in self._shown_times if now - t < FPS_WINDOW] + [now]
        fps = (len(self._shown_times) - 1) / (now - self._shown_times[0]) if len(self._shown_times) > 1 else 0.0
        kind = "preview" if request.preview else "full"
        latency = f" · change→frame {self.last_change_latency * 1000:.0f} ms" if self.last_change_latency else ""
        self.fps_label.setText(f"{fps:4.1f} fps · {request.width}×{request.height} {kind} · "
                               f"{result.seconds * 1000:.0f} ms/frame{latency}")
        self.frame_shown.emit(request.preview)

    # ---- drag and drop, settings, closing -----------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and all(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        for url in event.mimeData().urls():
            self.files.open_path(Path(url.toLocalFile()))
        event.acceptProposedAction()

    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 860)
        state = self.settings.value("window/splitter")
        if state is not None:
            self.splitter.restoreState(state)

    def closeEvent(self, event) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/splitter", self.splitter.saveState())
        self.settings.sync()
        for task in list(self.tasks):
            task.cancel.set()
        for task in list(self.tasks):  # a recording removes its unfinished file before we go
            task.wait(TASK_CLEANUP_S)
        self._tick.stop()
        self.clock.close()
        self.worker.stop()
        super().closeEvent(event)
