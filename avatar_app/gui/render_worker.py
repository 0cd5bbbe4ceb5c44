"""Renders viewport frames on a background thread so the GUI never waits for the renderer.

Requests are coalesced: while a frame renders, newer requests replace the pending one, so a
slow renderer drops frames instead of falling behind (playback follows the clock, not the
renderer)."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Signal

from ..player import Player
from ..threads import usable_cores, use_threads


@dataclass
class RenderRequest:
    player: Player  # a snapshot: its settings do not change while it renders
    frame: int
    width: int
    height: int
    preview: bool
    serial: int


@dataclass
class RenderResult:
    image: np.ndarray  # uint8 [H, W, 3]
    request: RenderRequest
    seconds: float


class RenderWorker(QObject):
    """One render thread; `submit` never blocks, `rendered`/`failed` arrive on the GUI thread."""

    rendered = Signal(object)  # RenderResult
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pending: RenderRequest | None = None
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="viewport-render", daemon=True)
        self._thread.start()

    def submit(self, request: RenderRequest) -> None:
        with self._wake:
            self._pending = request
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        use_threads(usable_cores())  # numba's count holds per thread: this one renders
        while True:
            with self._wake:
                while self._pending is None and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                request, self._pending = self._pending, None
            start = time.perf_counter()
            try:
                player = request.player
                player.set_view(width=request.width, height=request.height)
                image = player.render_frame(request.frame)
            except Exception as err:  # noqa: BLE001 - shown in the status bar; the app keeps running
                self.failed.emit(f"render failed: {err}")
                continue
            self.rendered.emit(RenderResult(image, request, time.perf_counter() - start))
