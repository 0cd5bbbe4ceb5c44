"""The main window: viewport, transport, emotion panel, curves and status bar around one Session.

The session owns the document (the Player with its live settings, the sources, the playhead);
the window turns gestures into session calls and redraws on its signals. Every frame request
carries a snapshot of the player to the render thread, so a slider move shows on the next
rendered frame and nothing the user does waits for the renderer."""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QColor, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QColorDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from common.errors import InputError

from ..avatar import AvatarSource
from ..clip import ClipSource
from ..player import VIEW_PRESETS, Player, View
from . import viewport as view_controls
from .actions import add_action
from .camera_dialog import ask_camera
from .curves import CurveData, CurvePanel, curve_data
from .emotion_panel import EmotionPanel
from .file_actions import FileActions
from .playback import PlaybackClock
from .render_worker import RenderRequest, RenderResult, RenderWorker
from .session import Session
from .transport import TransportBar
from .viewport import Viewport

PREVIEW_SIDE = 256        # CPU: long side of the image while the user interacts or plays ...
PLAY_BUDGET_S = 1 / 24    # ... if a full-size frame takes longer than this to render
FULL_SIDE = {"cpu": 1024, "gsplat": 2048}
SETTLE_MS = 250           # after the last interaction, render full size
TICK_MS = 8               # playback clock polling while playing
FPS_WINDOW = 1.0          # seconds over which the shown frame rate is measured
TASK_CLEANUP_S = 30.0     # on closing, how long a cancelled recording may take to remove its file
AUTOPLAY_KEY = "playback/autoplay"  # the preference: play when the window opens (default yes)


class MainWindow(QMainWindow):
    frame_shown = Signal(bool)  # preview?

    def __init__(self, player: Player, avatar_source: AvatarSource, clip_source: ClipSource,
                 settings: QSettings, autoplay: bool = False, export_size: tuple[int, int] | None = None) -> None:
        """With `autoplay` the clip starts playing once its first frame is shown, unless the
        user's preference (Playback → Play when the window opens) says no. `export_size`: see
        `FileActions`."""
        super().__init__()
        self.setWindowTitle("Talking-head studio")
        self.setAcceptDrops(True)
        self.settings = settings
        self.session = Session(player, avatar_source, clip_source, settings, self)
        self.error_box: QMessageBox | None = None
        self.last_change_latency: float | None = None
        self._serial = 0
        self._shown_serial = 0
        self._change_mark: tuple[int, float] | None = None
        self._shown_times: list[float] = []
        self._interact_until = 0.0
        self._full_seconds = 0.0  # how long the last full-size frame took to render

        self.viewport = Viewport(self)
        self.transport = TransportBar(self)
        self.emotion_panel = EmotionPanel(self)
        self.curves = CurvePanel(self)
        self.clock = PlaybackClock(self)
        self.worker = RenderWorker(self)
        self.files = FileActions(self.session, self, lambda: self._render_size(1 << 14), export_size)
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
        self._curves_busy = self._curves_stale = False

        self._show_document()
        self._restore_settings()
        if autoplay and self.autoplay_action.isChecked():
            self.frame_shown.connect(self._play_on_open)

    # ---- layout --------------------------------------------------------------------------
    def _build_layout(self) -> None:
        top = self.top_splitter = QSplitter(Qt.Horizontal, self)
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

    def _build_menus(self) -> None:
        bar = self.menuBar()
        self.files.build_menu(bar.addMenu("&File"))

        play = bar.addMenu("&Playback")
        play.setToolTipsVisible(True)
        add_action(self, play, "Play / pause", self.toggle_play, Qt.Key_Space)
        add_action(self, play, "Stop", self.stop)
        add_action(self, play, "Previous frame", lambda: self.step(-1), Qt.Key_Left)
        add_action(self, play, "Next frame", lambda: self.step(1), Qt.Key_Right)
        add_action(self, play, "Go to start", lambda: self.seek_frame(0), Qt.Key_Home)
        self.mute_action = add_action(self, play, "Mute", self._mute)
        self.mute_action.setCheckable(True)
        self.autoplay_action = add_action(self, play, "Play when the window opens", lambda: self.settings.setValue(
            AUTOPLAY_KEY, self.autoplay_action.isChecked()))
        self.autoplay_action.setCheckable(True)
        self.autoplay_action.setChecked(self.settings.value(AUTOPLAY_KEY, True, type=bool))
        self.autoplay_action.setToolTip("Remembered between runs; avatar app --paused opens paused once")
        play.addSeparator()
        add_action(self, play, "Set emotion key at playhead", self.set_key, Qt.Key_K)
        add_action(self, play, "Delete emotion key at playhead", self.delete_key, QKeySequence.Delete)

        face = bar.addMenu("F&ace")
        face.setToolTipsVisible(True)  # a disabled entry says why
        self.expression_space_action = add_action(self, face, "Stay inside the avatar's expressions",
                                                  self.toggle_expression_space)
        self.expression_space_action.setCheckable(True)

        view = bar.addMenu("&View")
        for name, (yaw, pitch) in VIEW_PRESETS.items():
            add_action(self, view, name, lambda y=yaw, p=pitch: self.set_view_angles(y, p))
        add_action(self, view, "Reset view", self.reset_view, "R")
        add_action(self, view, "Camera from file…", self.choose_camera)
        view.addSeparator()
        add_action(self, view, "Background colour…", self.choose_background)

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.backend_label = QLabel(self)
        self.count_label = QLabel(self)
        self.fps_label = QLabel(self)
        self.sound_label = QLabel(self)  # why nothing is heard, while that lasts
        self.sound_label.setContentsMargins(0, 0, 12, 0)
        for label in (self.sound_label, self.fps_label, self.count_label, self.backend_label):
            status.addPermanentWidget(label)

    def _connect(self) -> None:
        s = self.session
        s.loaded.connect(lambda _what: self._show_document())
        s.performanceChanged.connect(self._on_performance_changed)
        s.failed.connect(self.show_error)
        s.message.connect(lambda text, ms: self.statusBar().showMessage(text, ms))
        self.worker.rendered.connect(self._on_rendered)
        self.worker.failed.connect(lambda message: self.statusBar().showMessage(message, 8000))
        self.clock.silenced.connect(self._on_silenced)
        t = self.transport
        t.play_toggled.connect(self.toggle_play)
        t.stop_requested.connect(self.stop)
        t.step_requested.connect(self.step)
        t.seek_requested.connect(self.seek_frame)
        v = self.viewport
        v.orbited.connect(lambda dx, dy: self._gesture(lambda: view_controls.orbit(self._view(), dx, dy)))
        v.panned.connect(lambda dx, dy: self._gesture(lambda: view_controls.pan(self._view(), dx, dy, self._distance(),
                                                                                 self.viewport.height())))
        v.zoomed.connect(lambda notches: self._gesture(lambda: view_controls.zoom(notches, self._distance())))
        v.reset_requested.connect(self.reset_view)
        v.resized.connect(lambda: self._change_view({}))
        e = self.emotion_panel
        e.emotions_changed.connect(lambda: s.set_mix(e.mix()))
        e.gains_changed.connect(lambda: s.set_gains(*e.gains()))
        e.living_changed.connect(lambda: s.set_living(e.living()))
        e.key_requested.connect(self.set_key)
        e.delete_key_requested.connect(self.delete_key)
        e.clear_keys_requested.connect(lambda: s.clear_keys(e.mix()))
        e.reset_requested.connect(s.reset_performance)
        e.save_preset_requested.connect(self.files.save_preset)
        e.load_preset_requested.connect(self.files.load_preset)
        self.curves.seek_requested.connect(self.seek_time)

    # ---- the document ---------------------------------------------------------------------
    def _show_document(self) -> None:
        """Show the session's player and clip (at start and after each load)."""
        player = self.session.player
        bs = player.avatar.blendshapes
        self.emotion_panel.set_emotion_names(bs.emotion_names if bs is not None else ())
        self._sync_panel()
        self._show_expression_space()
        self.clock.set_audio(player.clip.audio)
        self._show_sound()
        self.backend_label.setText("gsplat (CUDA)" if player.backend == "gsplat" else "CPU renderer")
        self.count_label.setText(f"{player.num_gaussians:,} Gaussians")
        self.setWindowTitle(f"Talking-head studio: {Path(self.session.avatar_source.avatar).name} · "
                            f"{self.session.clip_source.describe()}")
        self.clock.seek(self.session.frame_time())
        self._update_curves()
        self._set_frame(self.session.frame)

    def show_error(self, title: str, err: BaseException | str) -> None:
        """A non-blocking dialog naming the file and the problem; the app keeps running."""
        self.statusBar().showMessage(f"{title}: {err}", 10000)
        self.error_box = QMessageBox(QMessageBox.Critical, title, str(err), QMessageBox.Ok, self)
        self.error_box.open()

    # ---- playback ------------------------------------------------------------------------
    def _play_on_open(self, _preview: bool) -> None:
        """The first frame is on screen: start playing (once)."""
        self.frame_shown.disconnect(self._play_on_open)
        if not self.clock.playing:
            self.toggle_play()

    def _show_sound(self) -> None:
        """The status bar says why nothing is heard: no audio in the clip, no output device,
        a failed output, or muted."""
        reason = self.clock.sound_off()
        self.sound_label.setText(f"sound off: {reason}" if reason else "")
        self.sound_label.setVisible(bool(reason))

    def _mute(self) -> None:
        self.clock.set_muted(self.mute_action.isChecked())
        self._show_sound()

    def _on_silenced(self, reason: str) -> None:
        self.statusBar().showMessage(f"{reason}: playing silently", 8000)
        self._show_sound()

    def toggle_play(self) -> None:
        if self.clock.playing:
            self.clock.pause()
            self._tick.stop()
            self.transport.set_playing(False)
            self.request_render()
            return
        if self.session.frame >= self.session.num_frames - 1:
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
        self.seek_frame(self.session.frame + delta)

    def seek_frame(self, frame: int) -> None:
        frame = int(np.clip(frame, 0, self.session.num_frames - 1))
        self.clock.seek(frame / self.session.player.clip.fps)
        self._set_frame(frame)

    def seek_time(self, seconds: float) -> None:
        """Seek to a time (a click on the curves); a click near a keyframe lands on it."""
        player = self.session.player
        fps = player.clip.fps
        key = player.performance.keyframes.key_near(seconds, max(0.1, 1 / fps))
        self.seek_frame(round((key.time if key else seconds) * fps))

    def _on_tick(self) -> None:
        clip = self.session.player.clip
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
        if frame != self.session.frame:
            self._set_frame(frame)

    def _set_frame(self, frame: int) -> None:
        self.session.frame = frame
        player = self.session.player
        self.transport.set_position(frame, player.clip.num_frames, player.clip.fps)
        self.curves.set_playhead(frame / player.clip.fps)
        if player.performance.keyframes and not self.emotion_panel.dragging():
            self._sync_panel()
        self._show_key_state()
        self.request_render()

    # ---- emotions ------------------------------------------------------------------------
    def _sync_panel(self) -> None:
        """Sliders show the performance at the playhead (the keyed values when there are keys)."""
        perf, bs = self.session.player.performance, self.session.player.avatar.blendshapes
        if bs is not None:
            values = perf.intensities(np.array([self.session.frame_time()]), bs.emotion_names)[0]
            self.emotion_panel.set_mix(dict(zip(bs.emotion_names, values.tolist())))
        self.emotion_panel.set_gains(perf.speech_gain, perf.expression_gain)
        self.emotion_panel.set_living(dataclasses.asdict(perf.living), self.session.player.living_unavailable())
        self._show_key_state()

    def _show_key_state(self) -> None:
        keys = self.session.player.performance.keyframes.keys
        self.emotion_panel.show_keys(len(keys), self.session.key_at_playhead() is not None)

    def set_key(self) -> None:
        self.session.key(self.emotion_panel.mix())

    def delete_key(self) -> None:
        self.session.delete_key(self.emotion_panel.mix())

    def _on_performance_changed(self, replaced: bool) -> None:
        """Redraw after an emotion edit; re-read the sliders when the edit did not come from them."""
        if replaced:
            self._sync_panel()
        self._show_key_state()
        self._interact()
        self.request_render()
        self._change_mark = (self._serial, time.perf_counter())
        self._curve_timer.start()

    def toggle_expression_space(self) -> None:
        self.session.set_expression_space(self.expression_space_action.isChecked())
        self._show_expression_space()

    def _show_expression_space(self) -> None:
        """The toggle shows the player's setting; on an avatar without tracked expressions (or
        without blendshapes) it is disabled and its tooltip says why."""
        action, player = self.expression_space_action, self.session.player
        try:
            player.expression_space()
            action.setEnabled(True)
            action.setToolTip("Keep each frame's expression inside the principal subspace and ranges of the "
                              "avatar's own tracked expressions (its flame_param.npz), and the jaw inside its "
                              "tracked range")
        except InputError as err:
            action.setEnabled(False)
            action.setToolTip(str(err))
        action.setChecked(player.performance.expression_space == "avatar")

    def _update_curves(self) -> None:
        """Recompute the curves on a task thread (the whole clip: seconds for a long one), one
        computation at a time; a change meanwhile recomputes once more when it is done."""
        if self._curves_busy:
            self._curves_stale = True
            return
        self._curves_busy, self._curves_stale = True, False
        player = self.session.player.snapshot()
        self.session.run_task(lambda _task: curve_data(player), self._show_curves, "Cannot draw the curves",
                              on_error=self._show_curves)

    def _show_curves(self, data: CurveData | BaseException) -> None:
        self._curves_busy = False
        if isinstance(data, InputError):
            self.statusBar().showMessage(str(data), 8000)
        elif isinstance(data, BaseException):
            self.show_error("Cannot draw the curves", data)
        else:
            self.curves.set_data(data)
            self.curves.set_playhead(self.session.frame_time())
        if self._curves_stale:
            self._update_curves()

    # ---- view ----------------------------------------------------------------------------
    def _view(self) -> View:
        return self.session.player.view

    def _distance(self) -> float:
        player = self.session.player
        return player.view.distance if player.view.distance is not None else player.auto_distance()

    def _change_view(self, changes: dict[str, object]) -> None:
        """A gesture's view change: a preview while it goes on, full size when it settles."""
        self.session.player.set_view(**changes)
        self._interact()
        self.request_render()

    def _gesture(self, changes: Callable[[], dict[str, object]]) -> None:
        """A drag or the wheel. Over a camera from a file it carries on from that camera's pose
        in the orbit view (`Player.orbit_from_camera`), as leaving a camera view does in 3D tools."""
        self.session.player.orbit_from_camera()
        self._change_view(changes())

    def set_view_angles(self, yaw: float, pitch: float) -> None:
        self.session.player.set_view(yaw=yaw, pitch=pitch, camera=None)
        self.request_render()

    def choose_camera(self) -> None:
        """View → Camera from file…: the camera replaces the orbit view until Reset view or a drag."""
        try:
            chosen = ask_camera(self)
        except InputError as err:
            self.show_error("Cannot use this camera", err)
            return
        if chosen is not None:
            path, camera = chosen
            self.session.player.set_view(camera=camera)
            self.statusBar().showMessage(f"camera from {path} ({camera.width}×{camera.height}); Reset view (R) "
                                         "returns to the orbit", 8000)
            self.request_render()

    def _render_size(self, max_side: int) -> tuple[int, int]:
        """The viewport's size for a frame; with a camera from a file, the largest at its aspect ratio."""
        camera = self._view().camera
        return self.viewport.render_size(max_side, None if camera is None else camera.width / camera.height)

    def reset_view(self) -> None:
        self.session.player.reset_view()
        self.request_render()

    def choose_background(self) -> None:
        colour = QColorDialog.getColor(QColor.fromRgbF(*self._view().background), self, "Background colour")
        if colour.isValid():
            self.set_background((colour.redF(), colour.greenF(), colour.blueF()))

    def set_background(self, rgb: tuple[float, float, float]) -> None:
        self.session.player.set_view(background=tuple(float(c) for c in rgb))
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
        """On CPU, a smaller image while playing or interacting keeps things fluid when the last
        full-size frame took longer than PLAY_BUDGET_S; a fast machine plays at full size."""
        busy = self.clock.playing or time.monotonic() < self._interact_until
        slow = self._full_seconds > PLAY_BUDGET_S
        return busy and slow and self.session.player.device.type == "cpu"

    def request_render(self) -> None:
        preview = self.wants_preview()
        player = self.session.player
        side = PREVIEW_SIDE if preview else FULL_SIDE.get(player.backend, 1024)
        width, height = self._render_size(side)
        self._serial += 1
        self.worker.submit(RenderRequest(player.snapshot(), self.session.frame, width, height, preview, self._serial))

    def settled(self) -> bool:
        """The last requested frame is shown at full size and nothing is loading."""
        return (self._shown_serial == self._serial and not self.wants_preview() and not self.session.tasks
                and not self._settle.isActive())

    def _on_rendered(self, result: RenderResult) -> None:
        request = result.request
        if request.serial < self._shown_serial:
            return  # an older request finished after a newer one
        self._shown_serial = request.serial
        if not request.preview:
            self._full_seconds = result.seconds
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
        for key, splitter in (("window/splitter", self.splitter), ("window/top_splitter", self.top_splitter)):
            state = self.settings.value(key)
            if state is not None:
                splitter.restoreState(state)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/splitter", self.splitter.saveState())
        self.settings.setValue("window/top_splitter", self.top_splitter.saveState())
        self.settings.sync()
        self.session.close(TASK_CLEANUP_S)  # a recording removes its unfinished file before we go
        self._tick.stop()
        self.clock.close()
        self.worker.stop()
        super().closeEvent(event)
