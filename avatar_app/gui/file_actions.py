"""The File menu: open avatar / FLAME / blendshapes / audio / weights / motion (also by drag and
drop and from recent files), record an MP4, save a PNG snapshot, export weights, FLAME motion,
ARKit curves and glTF, and emotion presets. Recording is an exact offline render through the
player, not a screen grab.

It asks the user (dialogs on `parent`) and hands the work to the Session, so it needs nothing
of the window."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QFileDialog, QMenu, QProgressDialog, QWidget

from assets import DEMO_ARKIT_SHAPES, DEMO_AVATAR
from common.errors import InputError
from models.rig.flame import save_flame_params

from ..clip import Clip, frame_count
from ..exports.player_files import write_export
from ..player import Cancelled
from ..preset import save_preset
from ..video import write_png
from .actions import add_action
from .dialogs import FILTERS, AvatarDialog, ExportDialog
from .session import Session
from .tasks import Task

MAX_RECENT = 10
ARKIT_FILTERS = {"Live Link Face CSV (*.csv)": "livelink", "ARKit CSV, Apple's names (*.csv)": "csv",
                 "ARKit JSON (*.json)": "json"}  # save dialog filter → format


class FileActions:
    """What the File menu does for one session; `snapshot_size` is the full size of the view
    the user sees (a snapshot is that image); `export_size` (`avatar app --size`), when given,
    is the size of snapshots and where the Record dialog starts."""

    def __init__(self, session: Session, parent: QWidget, snapshot_size: Callable[[], tuple[int, int]],
                 export_size: tuple[int, int] | None = None) -> None:
        self.session = session
        self.parent = parent
        self.snapshot_size = snapshot_size
        self.export_size = export_size
        self.recent_menu: QMenu | None = None
        session.loaded.connect(self.remember)

    # ---- menu ----------------------------------------------------------------------------
    def build_menu(self, menu: QMenu) -> None:
        for text, slot, shortcut in (
                ("Open avatar…", self.open_avatar_dialog, "Ctrl+O"),
                ("Open FLAME model…", lambda: self._ask_open("flame"), None),
                ("Open blendshape model…", lambda: self._ask_open("blendshapes"), None),
                ("Open audio…", lambda: self._ask_open("audio"), "Ctrl+A"),
                ("Open weights or motion…", lambda: self._ask_open("clip"), None),
                ("Open motion folder (VHAP flame_param/)…", self._ask_open_folder, None)):
            add_action(self.parent, menu, text, slot, shortcut)
        self.recent_menu = menu.addMenu("Open recent")
        self._fill_recent()
        for group in ((("Record MP4…", self.ask_record, "Ctrl+R"),
                       ("Save PNG snapshot…", self.ask_snapshot, "Ctrl+S"),
                       ("Export weights (CSV or .weights.npz)…", self.ask_export_weights, None),
                       ("Export FLAME motion (NPZ)…", self.ask_export_motion, None),
                       ("Export ARKit curves…", self.ask_export_arkit, None),
                       ("Export glTF…", self.ask_export_gltf, None)),
                      (("Save emotion preset…", self.save_preset, None),
                       ("Load emotion preset…", self.load_preset, None)),
                      (("Quit", self.parent.close, "Ctrl+Q"),)):
            menu.addSeparator()
            for text, slot, shortcut in group:
                add_action(self.parent, menu, text, slot, shortcut)

    def _last_dir(self) -> str:
        return str(self.session.settings.value("files/last_dir", str(Path.home())))

    def _ask_open(self, kind: str) -> None:
        path, _ = QFileDialog.getOpenFileName(self.parent, "Open", self._last_dir(), FILTERS[kind])
        if path:
            self.open_path(Path(path))

    def _ask_open_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self.parent, "Open motion folder", self._last_dir())
        if path:
            self.open_path(Path(path))

    def _ask_save(self, title: str, default_name: str, file_filter: str) -> Path | None:
        return self._ask_save_filtered(title, default_name, file_filter)[0]

    def _ask_save_filtered(self, title: str, default_name: str, file_filter: str) -> tuple[Path | None, str]:
        """Where to save (None if cancelled) and the filter the user chose."""
        start = str(Path(self._last_dir()) / default_name)
        path, chosen = QFileDialog.getSaveFileName(self.parent, title, start, file_filter)
        if path:
            self.session.settings.setValue("files/last_dir", str(Path(path).parent))
        return (Path(path) if path else None), chosen

    def _save_as(self, save: Callable[[Path], object], title: str, default_name: str, file_filter: str) -> None:
        """Ask where, then `save` there (nothing if the user cancels)."""
        path = self._ask_save(title, default_name, file_filter)
        if path is not None:
            save(path)

    # ---- opening -------------------------------------------------------------------------
    def open_avatar_dialog(self) -> None:
        dialog = AvatarDialog(self.session.avatar_source, self.parent)
        if dialog.exec() == QDialog.Accepted:
            try:
                self.session.open_avatar(dialog.source())
            except InputError as err:
                self.session.fail("Cannot open avatar", err)

    def open_path(self, path: Path) -> None:
        """Open any file by what it holds (menus, drag and drop, recent files)."""
        if self.session.open_path(path) is not None:
            self.session.settings.setValue("files/last_dir", str(path.parent if path.is_file() else path))

    # ---- recent files --------------------------------------------------------------------
    def recent(self) -> list[str]:
        value = self.session.settings.value("files/recent", [])
        return [value] if isinstance(value, str) else list(value or [])

    def remember(self, path: str) -> None:
        paths = [path] + [p for p in self.recent() if p != path]
        self.session.settings.setValue("files/recent", paths[:MAX_RECENT])
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
        settings = self.session.settings
        size = tuple(int(v) for v in str(settings.value("export/size", "512x512")).split("x"))
        camera = self.session.player.view.camera
        if camera is not None:  # a camera from a file: its own image size (even, for the MP4)
            size = (camera.width // 2 * 2, camera.height // 2 * 2)
        size = self.export_size or size
        dialog = ExportDialog(size, self.session.player.clip.fps, self.parent)
        if dialog.exec() != QDialog.Accepted:
            return
        size, fps = dialog.values()
        path = self._ask_save("Record MP4", "clip.mp4", "MP4 video (*.mp4)")
        if path is not None:
            settings.setValue("export/size", f"{size[0]}x{size[1]}")
            self.record(path.with_suffix(".mp4") if path.suffix.lower() != ".mp4" else path, size, fps)

    def record(self, path: Path, size: tuple[int, int], fps: float) -> Task:
        """Render the clip offline with the current settings and keyframes, with its audio,
        showing progress; cancelling leaves no file behind."""
        session = self.session
        player = session.player.snapshot()
        player.set_view(width=size[0], height=size[1])
        clip_source = session.clip_source
        expected = frame_count(player.clip.duration, fps)
        progress = QProgressDialog(f"Recording {path.name}…", "Cancel", 0, max(expected, 1), self.parent)
        progress.setWindowModality(Qt.WindowModal)
        progress.setMinimumDuration(0)

        def work(task: Task) -> Clip:
            if abs(fps - player.clip.fps) > 1e-9:
                player.load_clip(clip_source, fps)
            player.record(path, cancel=task.cancel, on_frame=lambda index, _frame: task.report(index + 1))
            return player.clip

        def done(clip: Clip) -> None:
            progress.close()
            session.tell(f"wrote {path}: {clip.num_frames} frames, {size[0]}×{size[1]} at {clip.fps:g} fps", 10000)

        def failed(err: BaseException) -> None:
            progress.close()
            if isinstance(err, Cancelled):
                session.tell("recording cancelled: nothing was written", 8000)
            else:
                session.fail(f"Cannot record {path}", err)

        task = session.run_task(work, done, f"Cannot record {path}", on_error=failed)
        task.progressed.connect(progress.setValue)
        progress.canceled.connect(task.cancel.set)
        progress.show()
        return task

    def ask_snapshot(self) -> None:
        self._save_as(lambda path: self.snapshot(path.with_suffix(".png")), "Save PNG snapshot",
                      f"frame_{self.session.frame:05d}.png", "PNG image (*.png)")

    def snapshot(self, path: Path) -> Task:
        """The current frame rendered at the view's full size (or the `export_size`)."""
        player = self.session.player.snapshot()
        width, height = self.export_size or self.snapshot_size()
        player.set_view(width=width, height=height)
        frame = self.session.frame

        def work(_task: Task) -> None:
            write_png(player.render_frame(frame), path)

        return self.session.run_task(work, lambda _: self.session.tell(f"wrote {path}", 8000), f"Cannot save {path}")

    def ask_export_weights(self) -> None:
        self._save_as(self.export_weights, "Export weights", "clip.csv", "CSV (*.csv);;Weights (*.weights.npz)")

    def export_weights(self, path: Path) -> None:
        def write() -> None:
            weights = self.session.player.weight_sequence()
            if path.suffix.lower() == ".npz":
                weights.save(path)
            else:
                weights.to_csv(path)

        self._write(path, write)

    def ask_export_motion(self) -> None:
        self._save_as(self.export_motion, "Export FLAME motion", "flame_param.npz", "FLAME motion (*.npz)")

    def export_motion(self, path: Path) -> None:
        def write() -> None:
            player = self.session.player
            if player.rig is None:
                raise InputError("a static scene has no FLAME motion")
            save_flame_params(player.flame_params(0, player.clip.num_frames), path)

        self._write(path, write)

    def ask_export_arkit(self) -> None:
        path, chosen = self._ask_save_filtered("Export ARKit curves", "take.csv", ";;".join(ARKIT_FILTERS))
        if path is None:
            return
        fmt = ARKIT_FILTERS.get(chosen, "json" if path.suffix.lower() == ".json" else "livelink")
        shapes = self._arkit_shapes()
        if shapes is not None:
            self.export_file(path.with_suffix(".json" if fmt == "json" else ".csv"), "arkit", fmt, shapes)

    def _arkit_shapes(self) -> Path | None:
        """The demo's own ARKit target shapes on the demo head; else a file the user picks
        (the last one offered first)."""
        if self.session.avatar_source.avatar == DEMO_AVATAR:
            return DEMO_ARKIT_SHAPES
        last = str(self.session.settings.value("export/arkit_shapes", self._last_dir()))
        name, _ = QFileDialog.getOpenFileName(self.parent, "ARKit target shapes for this avatar", last,
                                              "ARKit target shapes (*.npz)")
        if name:
            self.session.settings.setValue("export/arkit_shapes", name)
        return Path(name) if name else None

    def ask_export_gltf(self) -> None:
        self._save_as(lambda path: self.export_file(path.with_suffix(".glb"), "gltf"), "Export glTF", "clip.glb",
                      "glTF binary (*.glb)")

    def export_file(self, path: Path, kind: str, arkit_format: str = "livelink",
                    arkit_shapes: Path | None = None) -> Task:
        """Export the clip as `avatar export` does (exports/player_files.py), from a snapshot of
        the player, off the GUI thread: ARKit solving and glTF writing take a while on long clips."""
        player = self.session.player.snapshot()

        return self.session.run_task(lambda _task: write_export(player, path, kind, arkit_format, arkit_shapes), lambda what: self.session.tell(f"wrote {path}: {what}", 10000),
                                     f"Cannot export {path}")

    def _write(self, path: Path, write: Callable[[], None], verb: str = "export") -> None:
        """Write a small file now, on the GUI thread; a failure names it."""
        try:
            write()
        except (InputError, OSError) as err:
            self.session.fail(f"Cannot {verb} {path}", err)
        else:
            self.session.tell(f"wrote {path}", 8000)

    # ---- presets -------------------------------------------------------------------------
    def save_preset(self, path: Path | None = None) -> None:
        if path is None:
            self._save_as(self.save_preset, "Save emotion preset", "preset.json", FILTERS["preset"])
        else:
            self._write(path, lambda: save_preset(self.session.player.performance, path), "save")

    def load_preset(self, path: Path | None = None) -> None:
        if path is None:
            name, _ = QFileDialog.getOpenFileName(self.parent, "Load emotion preset", self._last_dir(),
                                                  FILTERS["preset"])
            path = Path(name) if name else None
        if path is not None:
            self.session.apply_preset(path)
