"""The File menu: open avatar / FLAME / blendshapes / audio / weights / motion (also by drag and
drop and from recent files), record an MP4, save a PNG snapshot, export weights and FLAME motion,
and emotion presets. Recording is an exact offline render through the player, not a screen grab."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLineEdit, QMenu, QProgressDialog, QPushButton, QSpinBox,
                               QWidget)

from models.errors import InputError
from models.flame import save_flame_params

from ..avatar import AvatarSource
from ..clip import ClipSource, frame_count
from ..info import file_kind
from ..player import Cancelled
from ..preset import load_preset, save_preset
from ..video import write_mp4, write_png

if TYPE_CHECKING:
    from .main_window import MainWindow

MAX_RECENT = 10
FILTERS = {
    "avatar": "Gaussian avatar (*.ply)",
    "flame": "FLAME model (*.pkl *.npz)",
    "blendshapes": "Blendshape model (*.npz)",
    "audio": "Audio (*.wav)",
    "clip": "Weights or FLAME motion (*.npz)",
    "preset": "Emotion preset (*.json)",
}


class AvatarDialog(QDialog):
    """Avatar folder, the FLAME model it was trained with, and a blendshape model, together."""

    def __init__(self, source: AvatarSource, parent: QWidget) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open avatar")
        self.fields: dict[str, QLineEdit] = {}
        form = QFormLayout(self)
        for key, label in (("avatar", "Avatar folder or PLY"), ("flame", "FLAME model"),
                           ("blendshapes", "Blendshape model")):
            value = getattr(source, key)
            edit = QLineEdit(str(value) if value else "", self)
            browse = QPushButton("Browse…", self)
            browse.clicked.connect(lambda _=False, k=key: self._browse(k))
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            row.addWidget(browse)
            form.addRow(label, row)
            self.fields[key] = edit
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.resize(640, self.sizeHint().height())

    def _browse(self, key: str) -> None:
        edit = self.fields[key]
        if key == "avatar":
            path = QFileDialog.getExistingDirectory(self, "Avatar folder", edit.text())
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Open", edit.text(), FILTERS[key])
        if path:
            edit.setText(path)

    def source(self) -> AvatarSource:
        values = {k: Path(e.text().strip()) if e.text().strip() else None for k, e in self.fields.items()}
        if values["avatar"] is None:
            raise InputError("no avatar folder given")
        return AvatarSource(values["avatar"], values["flame"], values["blendshapes"])


class ExportDialog(QDialog):
    """Size and frame rate of a recording."""

    def __init__(self, size: tuple[int, int], fps: float, parent: QWidget) -> None:
        super().__init__(parent)
        self.setWindowTitle("Record MP4")
        self.width_box, self.height_box = QSpinBox(self), QSpinBox(self)
        for box, value in ((self.width_box, size[0]), (self.height_box, size[1])):
            box.setRange(16, 4096)
            box.setSingleStep(2)
            box.setValue(value)
        self.fps_box = QDoubleSpinBox(self)
        self.fps_box.setRange(1, 240)
        self.fps_box.setValue(fps)
        form = QFormLayout(self)
        form.addRow("Width", self.width_box)
        form.addRow("Height", self.height_box)
        form.addRow("Frames per second", self.fps_box)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def values(self) -> tuple[tuple[int, int], float]:
        return (self.width_box.value() // 2 * 2, self.height_box.value() // 2 * 2), self.fps_box.value()


class FileActions:
    """What the File menu does, for one main window."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.recent_menu: Optional[QMenu] = None

    # ---- menu ----------------------------------------------------------------------------
    def build_menu(self, menu: QMenu) -> None:
        w = self.window
        w.add_action(menu, "Open avatar…", self.open_avatar_dialog, "Ctrl+O")
        w.add_action(menu, "Open FLAME model…", lambda: self._ask_open("flame"))
        w.add_action(menu, "Open blendshape model…", lambda: self._ask_open("blendshapes"))
        w.add_action(menu, "Open audio…", lambda: self._ask_open("audio"), "Ctrl+A")
        w.add_action(menu, "Open weights or motion…", lambda: self._ask_open("clip"))
        self.recent_menu = menu.addMenu("Open recent")
        self._fill_recent()
        menu.addSeparator()
        w.add_action(menu, "Record MP4…", self.ask_record, "Ctrl+R")
        w.add_action(menu, "Save PNG snapshot…", self.ask_snapshot, "Ctrl+S")
        w.add_action(menu, "Export weights (CSV or .weights.npz)…", self.ask_export_weights)
        w.add_action(menu, "Export FLAME motion (NPZ)…", self.ask_export_motion)
        menu.addSeparator()
        w.add_action(menu, "Save emotion preset…", self.save_preset)
        w.add_action(menu, "Load emotion preset…", self.load_preset)
        menu.addSeparator()
        w.add_action(menu, "Quit", w.close, "Ctrl+Q")

    def _last_dir(self) -> str:
        return str(self.window.settings.value("files/last_dir", str(Path.home())))

    def _ask_open(self, kind: str) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open", self._last_dir(), FILTERS[kind])
        if path:
            self.open_path(Path(path))

    def _ask_save(self, title: str, default_name: str, file_filter: str) -> Optional[Path]:
        start = str(Path(self._last_dir()) / default_name)
        path, _ = QFileDialog.getSaveFileName(self.window, title, start, file_filter)
        if path:
            self.window.settings.setValue("files/last_dir", str(Path(path).parent))
        return Path(path) if path else None

    # ---- opening -------------------------------------------------------------------------
    def open_avatar_dialog(self) -> None:
        dialog = AvatarDialog(self.window.avatar_source, self.window)
        if dialog.exec() == QDialog.Accepted:
            try:
                self.open_avatar(dialog.source())
            except InputError as err:
                self.window.show_error("Cannot open avatar", err)

    def open_avatar(self, source: AvatarSource) -> None:
        self.window.load(source, self.window.clip_source, str(source.avatar))

    def open_path(self, path: Path) -> None:
        """Open any file by what it holds (menus, drag and drop, recent files)."""
        w = self.window
        try:
            kind = file_kind(path)
        except InputError as err:
            w.show_error("Cannot open file", err)
            return
        w.settings.setValue("files/last_dir", str(path.parent if path.is_file() else path))
        avatar, clip = w.avatar_source, w.clip_source
        if kind in ("avatar", "flame", "blendshapes"):
            w.load(dataclasses.replace(avatar, **{kind: path}), clip, str(path))
        elif kind == "audio":
            w.load(avatar, ClipSource(audio=path), str(path))
        else:  # weights or motion keep the current audio as their soundtrack
            w.load(avatar, ClipSource(audio=clip.audio, **{kind: path}), str(path))

    # ---- recent files --------------------------------------------------------------------
    def recent(self) -> list[str]:
        value = self.window.settings.value("files/recent", [])
        return [value] if isinstance(value, str) else list(value or [])

    def remember(self, path: str) -> None:
        paths = [path] + [p for p in self.recent() if p != path]
        self.window.settings.setValue("files/recent", paths[:MAX_RECENT])
        self._fill_recent()

    def _fill_recent(self) -> None:
        if self.recent_menu is None:
            return
        self.recent_menu.clear()
        for path in self.recent():
            self.recent_menu.addAction(path, lambda p=path: self.open_path(Path(p)))
        self.recent_menu.setEnabled(bool(self.recent()))

    # ---- exports -------------------------------------------------------------------------
    def ask_record(self) -> None:
        w = self.window
        size = tuple(int(v) for v in str(w.settings.value("export/size", "512x512")).split("x"))
        dialog = ExportDialog(size, w.player.clip.fps, w)
        if dialog.exec() != QDialog.Accepted:
            return
        size, fps = dialog.values()
        path = self._ask_save("Record MP4", "clip.mp4", "MP4 video (*.mp4)")
        if path is not None:
            w.settings.setValue("export/size", f"{size[0]}x{size[1]}")
            self.record(path.with_suffix(".mp4") if path.suffix.lower() != ".mp4" else path, size, fps)

    def record(self, path: Path, size: tuple[int, int], fps: float):
        """Render the clip offline with the current settings and keyframes, with its audio,
        showing progress; cancelling leaves no file behind."""
        w = self.window
        player = w.player.snapshot()
        player.view.width, player.view.height = size
        clip_source = w.clip_source
        expected = frame_count(player.clip.duration, fps)
        progress = QProgressDialog(f"Recording {path.name}…", "Cancel", 0, max(expected, 1), w)
        progress.setWindowModality(Qt.WindowModal)
        progress.setMinimumDuration(0)

        def work(task):
            if abs(fps - player.clip.fps) > 1e-9:
                player.clip = clip_source.build(player.driver, player.avatar.blendshapes, fps)
            clip = player.clip

            def frames():
                for i, frame in enumerate(player.render_range(0, clip.num_frames, cancel=task.cancel,
                                                             require_visible=True)):
                    task.report(i + 1)
                    yield frame

            write_mp4(frames(), path, size, clip.fps, clip.num_frames, clip.audio)
            return clip

        def done(clip) -> None:
            progress.close()
            w.statusBar().showMessage(f"wrote {path}: {clip.num_frames} frames, {size[0]}×{size[1]} at "
                                      f"{clip.fps:g} fps", 10000)

        def failed(err: BaseException) -> None:
            progress.close()
            if isinstance(err, Cancelled):
                w.statusBar().showMessage("recording cancelled: nothing was written", 8000)
            else:
                w.show_error(f"Cannot record {path}", err)

        task = w.run_task(work, done, f"Cannot record {path}", on_error=failed)
        task.progressed.connect(progress.setValue)
        progress.canceled.connect(task.cancel.set)
        progress.show()
        return task

    def ask_snapshot(self) -> None:
        path = self._ask_save("Save PNG snapshot", f"frame_{self.window.frame:05d}.png", "PNG image (*.png)")
        if path is not None:
            self.snapshot(path.with_suffix(".png"))

    def snapshot(self, path: Path):
        """The current frame rendered at the viewport's full size."""
        w = self.window
        player = w.player.snapshot()
        player.view.width, player.view.height = w.viewport.render_size(1 << 14)
        frame = w.frame

        def work(_task) -> None:
            write_png(player.render_frame(frame), path)

        return w.run_task(work, lambda _: w.statusBar().showMessage(f"wrote {path}", 8000),
                          f"Cannot save {path}")

    def ask_export_weights(self) -> None:
        path = self._ask_save("Export weights", "clip.csv", "CSV (*.csv);;Weights (*.weights.npz)")
        if path is not None:
            self.export_weights(path)

    def export_weights(self, path: Path) -> None:
        try:
            weights = self.window.player.weight_sequence()
            if path.suffix.lower() == ".npz":
                weights.save(path)
            else:
                weights.to_csv(path)
        except (InputError, OSError) as err:
            self.window.show_error(f"Cannot export {path}", err)
        else:
            self.window.statusBar().showMessage(f"wrote {path}", 8000)

    def ask_export_motion(self) -> None:
        path = self._ask_save("Export FLAME motion", "flame_param.npz", "FLAME motion (*.npz)")
        if path is not None:
            self.export_motion(path)

    def export_motion(self, path: Path) -> None:
        player = self.window.player
        try:
            if player.rig is None:
                raise InputError("a static scene has no FLAME motion")
            save_flame_params(player.flame_params(0, player.clip.num_frames), path)
        except (InputError, OSError) as err:
            self.window.show_error(f"Cannot export {path}", err)
        else:
            self.window.statusBar().showMessage(f"wrote {path}", 8000)

    # ---- presets -------------------------------------------------------------------------
    def save_preset(self, path: Optional[Path] = None) -> None:
        path = path or self._ask_save("Save emotion preset", "preset.json", FILTERS["preset"])
        if path is None:
            return
        try:
            save_preset(self.window.player.performance, path)
        except OSError as err:
            self.window.show_error(f"Cannot save {path}", err)
        else:
            self.window.statusBar().showMessage(f"wrote {path}", 8000)

    def load_preset(self, path: Optional[Path] = None) -> None:
        if path is None:
            name, _ = QFileDialog.getOpenFileName(self.window, "Load emotion preset", self._last_dir(),
                                                  FILTERS["preset"])
            path = Path(name) if name else None
        if path is None:
            return
        try:
            self.window.player.set_performance(load_preset(path))
        except InputError as err:
            self.window.show_error("Cannot load preset", f"{path}: {err}" if str(path) not in str(err) else err)
            return
        self.window.performance_loaded()
