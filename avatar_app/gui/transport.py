"""The transport bar: play/pause, stop, loop, frame steps, and a scrub slider with time and frame."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QStyle,
    QToolButton,
    QWidget,
)


def clock_text(seconds: float) -> str:
    minutes, rest = divmod(max(seconds, 0.0), 60.0)
    return f"{int(minutes):02d}:{rest:05.2f}"


class TransportBar(QWidget):
    play_toggled = Signal()
    stop_requested = Signal()
    step_requested = Signal(int)
    seek_requested = Signal(int)     # frame

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        style = self.style()
        self._icons = (style.standardIcon(QStyle.SP_MediaPlay), style.standardIcon(QStyle.SP_MediaPause))

        def button(icon: QStyle.StandardPixmap, tip: str) -> QToolButton:
            b = QToolButton(self)
            b.setIcon(style.standardIcon(icon))
            b.setToolTip(tip)
            b.setFocusPolicy(Qt.NoFocus)
            return b

        self.play_button = button(QStyle.SP_MediaPlay, "Play / pause (Space)")
        self.stop_button = button(QStyle.SP_MediaStop, "Stop: pause and go to the start")
        back = button(QStyle.SP_MediaSeekBackward, "Previous frame (Left)")
        forward = button(QStyle.SP_MediaSeekForward, "Next frame (Right)")
        self.loop = QCheckBox("Loop", self)
        self.loop.setChecked(True)
        self.loop.setFocusPolicy(Qt.NoFocus)
        self.slider = QSlider(Qt.Horizontal, self)
        self.slider.setFocusPolicy(Qt.NoFocus)
        self.label = QLabel(self)
        self.label.setMinimumWidth(230)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        for widget in (self.play_button, self.stop_button, back, forward, self.loop, self.slider, self.label):
            layout.addWidget(widget)
        layout.setStretch(5, 1)

        self.play_button.clicked.connect(self.play_toggled)
        self.stop_button.clicked.connect(self.stop_requested)
        back.clicked.connect(lambda: self.step_requested.emit(-1))
        forward.clicked.connect(lambda: self.step_requested.emit(1))
        self.slider.valueChanged.connect(self.seek_requested)  # set_position blocks it

    def set_position(self, frame: int, num_frames: int, fps: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(num_frames - 1, 0))
        self.slider.setValue(frame)
        self.slider.blockSignals(False)
        self.label.setText(f"{clock_text(frame / fps)} / {clock_text(num_frames / fps)}   "
                           f"frame {frame + 1}/{num_frames}")

    def set_playing(self, playing: bool) -> None:
        self.play_button.setIcon(self._icons[playing])
