"""The viewport: shows the latest rendered frame and turns mouse gestures into camera moves.

Left-drag orbits, the wheel zooms, right- or middle-drag pans, a double-click resets the view."""
from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from renderer.camera import DEFAULT_FOVY

from ..player import View

DEGREES_PER_PIXEL = 0.3
ZOOM_PER_NOTCH = 0.9          # distance factor per wheel notch (120 units)


# Gestures to view changes: each returns the fields to change (for Player.set_view), so the
# player stays the one place its view is written.

def orbit(view: View, dx: float, dy: float) -> dict[str, float]:
    return {"yaw": (view.yaw - dx * DEGREES_PER_PIXEL + 180.0) % 360.0 - 180.0,
            "pitch": float(np.clip(view.pitch + dy * DEGREES_PER_PIXEL, -89.0, 89.0))}


def pan(view: View, dx: float, dy: float, distance: float, widget_height: float) -> dict[str, tuple[float, float]]:
    """Move the target so the head follows the cursor (metres per pixel at the target depth)."""
    metres_per_pixel = 2 * distance * math.tan(math.radians(DEFAULT_FOVY) / 2) / max(widget_height, 1.0)
    return {"pan": (view.pan[0] - dx * metres_per_pixel, view.pan[1] + dy * metres_per_pixel)}


def zoom(notches: float, distance: float) -> dict[str, float]:
    return {"distance": float(np.clip(distance * ZOOM_PER_NOTCH ** notches, 0.05, 50.0))}


class Viewport(QWidget):
    """Paints the latest frame scaled to fit; emits gestures as pixel deltas."""

    orbited = Signal(float, float)
    panned = Signal(float, float)
    zoomed = Signal(float)
    reset_requested = Signal()
    resized = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMinimumSize(160, 160)
        self.setFocusPolicy(Qt.ClickFocus)
        self._image: QImage | None = None
        self.shown: np.ndarray | None = None  # the frame on screen, as rendered
        self._background = QColor(255, 255, 255)
        self._last: QPointF | None = None
        self._button = Qt.NoButton

    def sizeHint(self) -> QSize:
        return QSize(560, 560)

    def render_size(self, max_side: int, aspect: float | None = None) -> tuple[int, int]:
        """The widget's size in device pixels (with an `aspect` width/height, the largest such
        size inside it), scaled down to `max_side`, even (for video)."""
        ratio = self.devicePixelRatioF()
        w, h = self.width() * ratio, self.height() * ratio
        if aspect is not None:
            w, h = min(w, h * aspect), min(h, w / aspect)
        scale = min(1.0, max_side / max(w, h))
        return max(16, int(w * scale) // 2 * 2), max(16, int(h * scale) // 2 * 2)

    def show_frame(self, image: np.ndarray, background: tuple[float, float, float]) -> None:
        self.shown = image
        h, w, _ = image.shape
        data = np.ascontiguousarray(image)
        self._image = QImage(data.data, w, h, 3 * w, QImage.Format_RGB888).copy()
        self._background = QColor.fromRgbF(*background)
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), self._background)
        if self._image is not None:
            painter.setRenderHint(QPainter.SmoothPixmapTransform)
            iw, ih = self._image.width(), self._image.height()
            scale = min(self.width() / iw, self.height() / ih)
            w, h = iw * scale, ih * scale
            painter.drawImage(QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h), self._image)
        painter.end()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.resized.emit()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._last, self._button = event.position(), event.button()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._last is None:
            return
        delta = event.position() - self._last
        self._last = event.position()
        if self._button == Qt.LeftButton:
            self.orbited.emit(delta.x(), delta.y())
        elif self._button in (Qt.RightButton, Qt.MiddleButton):
            self.panned.emit(delta.x(), delta.y())

    def mouseReleaseEvent(self, _event: QMouseEvent) -> None:
        self._last, self._button = None, Qt.NoButton

    def mouseDoubleClickEvent(self, _event: QMouseEvent) -> None:
        self.reset_requested.emit()

    def wheelEvent(self, event: QWheelEvent) -> None:
        self.zoomed.emit(event.angleDelta().y() / 120.0)
