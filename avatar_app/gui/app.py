"""`avatar app`: open the main window on a loaded player; `--snapshot` grabs it and exits."""
from __future__ import annotations

import contextlib
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QSettings, QTimer
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from common.atomic import atomic_write
from common.errors import InputError

from ..avatar import AvatarSource
from ..clip import ClipSource
from ..interrupts import Terminated, exit_code
from ..player import Player
from .main_window import MainWindow

ORGANISATION, APPLICATION = "talking-head-studio", "avatar"
SNAPSHOT_TIMEOUT_MS = 120_000
SNAPSHOT_WINDOW = (1280, 860)
PNG_TAG = "talking-head-studio"


def application() -> QApplication:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    return app


def is_our_png(path: Path) -> bool:
    """A PNG whose text chunks (before its pixels) name us as the software that wrote it."""
    try:
        with open(path, "rb") as handle:
            return PNG_TAG.encode() in handle.read(1 << 16)
    except OSError:
        return False


def _png_bytes(image: QImage) -> bytes:
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise OSError("Qt could not encode the PNG")
    return bytes(data)


def run_app(player: Player, avatar_source: AvatarSource, clip_source: ClipSource,
            snapshot: Path | None = None, settings: QSettings | None = None, autoplay: bool = True,
            export_size: tuple[int, int] | None = None) -> int:
    """Show the window until it closes. With `snapshot`, wait for the first full-size frame,
    save a grab of the whole window there and exit (0 on success). The clip plays once its
    first frame is shown, unless `autoplay` is False (`--paused`) or the user's preference
    (Playback → Play when the window opens) says no. `export_size` (`--size`): the size of File →
    Save PNG snapshot, and where File → Record starts."""
    app = application()
    if settings is None and snapshot is not None:  # default layout; the user's settings untouched
        scratch = tempfile.TemporaryDirectory(prefix="avatar-snapshot-")
        settings = QSettings(str(Path(scratch.name) / "settings.ini"), QSettings.IniFormat)
    window = MainWindow(player, avatar_source, clip_source, settings or QSettings(),
                        autoplay=autoplay and snapshot is None,  # a snapshot shows the first frame
                        export_size=export_size)
    with _closed_by_signals(window) as stopped:
        code = _show(app, window, snapshot)
    return exit_code(stopped[0]) if stopped else code


@contextlib.contextmanager
def _closed_by_signals(window: MainWindow) -> Iterator[list[KeyboardInterrupt]]:
    """Ctrl-C and SIGTERM close the window as its close button does (background work is
    cancelled and its temporary files removed); the list says which signal did it. A timer
    lets Python see signals while Qt's event loop runs."""
    stopped: list[KeyboardInterrupt] = []

    def close(signum: int, _frame: object) -> None:
        stopped.append(Terminated() if signum == signal.SIGTERM else KeyboardInterrupt())
        QTimer.singleShot(0, window.close)

    previous = {signum: signal.signal(signum, close) for signum in (signal.SIGINT, signal.SIGTERM)}
    heartbeat = QTimer(window)
    heartbeat.timeout.connect(lambda: None)
    heartbeat.start(200)
    try:
        yield stopped
    finally:
        heartbeat.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _show(app: QApplication, window: MainWindow, snapshot: Path | None) -> int:
    if snapshot is None:
        window.show()
        return app.exec()

    window.resize(*SNAPSHOT_WINDOW)  # the same picture whatever the saved geometry
    window.show()
    outcome = {"code": 1}

    def grab(_preview: bool) -> None:
        if window.settled():
            window.frame_shown.disconnect(grab)
            QTimer.singleShot(200, save)  # let the curves and status bar paint

    def save() -> None:
        if not window.settled():  # something changed meanwhile: wait for its frame
            window.frame_shown.connect(grab)
            return
        image = window.grab().toImage()
        image.setText("Software", PNG_TAG)  # marks the file as ours: a later snapshot may replace it
        try:
            atomic_write(snapshot, lambda handle: handle.write(_png_bytes(image)))
            outcome["code"] = 0
            print(f"wrote {snapshot}")
        except (InputError, OSError) as err:
            print(f"avatar: error: {snapshot}: could not write the snapshot ({err})", file=sys.stderr)
        window.close()

    def give_up() -> None:
        print("avatar: error: no frame was rendered in time for the snapshot", file=sys.stderr)
        window.close()

    window.frame_shown.connect(grab)
    QTimer.singleShot(SNAPSHOT_TIMEOUT_MS, give_up)
    app.exec()
    return outcome["code"]
