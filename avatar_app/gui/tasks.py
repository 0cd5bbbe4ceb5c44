"""Work that takes more than a moment (loading, exporting) runs on a thread; its result,
failure and progress come back to the GUI thread as signals."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal


class Task(QObject):
    """Runs `work(task)` on a thread. `work` may call `task.report(n)` and should stop soon
    after `task.cancel` is set."""

    succeeded = Signal(object)
    failed = Signal(object)   # the exception
    progressed = Signal(int)

    def __init__(self, work: Callable[[Task], Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._work = work
        self.cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="app-task", daemon=True)

    def start(self) -> Task:
        self._thread.start()
        return self

    def report(self, done: int) -> None:
        self.progressed.emit(done)

    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds` for the work to end (after `cancel`, to let it clean up)."""
        self._thread.join(seconds)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            result = self._work(self)
        except BaseException as err:  # noqa: BLE001 - delivered to the GUI, which shows it
            self.failed.emit(err)
        else:
            self.succeeded.emit(result)
