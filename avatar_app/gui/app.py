"""`avatar app`: open the main window on a loaded player; `--snapshot` grabs it and exits."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from ..avatar import AvatarSource
from ..clip import ClipSource
from ..player import Player
from .main_window import MainWindow

ORGANISATION, APPLICATION = "talking-head-studio", "avatar"
SNAPSHOT_TIMEOUT_MS = 120_000
SNAPSHOT_WINDOW = (1280, 860)


def application() -> QApplication:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    return app


def run_app(player: Player, avatar_source: AvatarSource, clip_source: ClipSource,
            snapshot: Optional[Path] = None, settings: Optional[QSettings] = None) -> int:
    """Show the window until it closes. With `snapshot`, wait for the first full-size frame,
    save a grab of the whole window there and exit (0 on success)."""
    app = application()
    if settings is None and snapshot is not None:  # default layout; the user's settings untouched
        scratch = tempfile.TemporaryDirectory(prefix="avatar-snapshot-")
        settings = QSettings(str(Path(scratch.name) / "settings.ini"), QSettings.IniFormat)
    window = MainWindow(player, avatar_source, clip_source, settings or QSettings())
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
        if window.grab().save(str(snapshot)):
            outcome["code"] = 0
            print(f"wrote {snapshot}")
        else:
            print(f"avatar: error: {snapshot}: could not write the snapshot", file=sys.stderr)
        window.close()

    def give_up() -> None:
        print("avatar: error: no frame was rendered in time for the snapshot", file=sys.stderr)
        window.close()

    window.frame_shown.connect(grab)
    QTimer.singleShot(SNAPSHOT_TIMEOUT_MS, give_up)
    app.exec()
    return outcome["code"]
