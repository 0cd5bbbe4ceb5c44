"""The emotion panel: one slider per emotion of the loaded model (0–100 %, mixable), speech and
expression strength, reset, presets, and emotion keyframes at the playhead."""
from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

GAIN_MAX = 200  # percent
LIVING = {"blink": ("Blinks", 100), "gaze": ("Gaze", 200), "head_motion": ("Head motion", 200)}  # name, max %


class PercentSlider(QWidget):
    """A labelled horizontal slider showing its value in percent."""

    changed = Signal()

    def __init__(self, name: str, maximum: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = QLabel(name, self)
        self.slider = QSlider(Qt.Horizontal, self)
        self.slider.setRange(0, maximum)
        self.slider.setPageStep(10)
        self.value_label = QLabel(self)
        self.value_label.setMinimumWidth(40)
        self.value_label.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.name.setMinimumWidth(80)
        layout.addWidget(self.name)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.value_label)
        self.slider.valueChanged.connect(self._on_value)
        self._on_value(0)

    def _on_value(self, value: int) -> None:
        self.value_label.setText(f"{value} %")
        self.changed.emit()

    def fraction(self) -> float:
        return self.slider.value() / 100.0

    def set_fraction(self, value: float) -> None:
        """Set without emitting `changed` (the caller already knows)."""
        self.slider.blockSignals(True)
        self.slider.setValue(round(value * 100))
        self.slider.blockSignals(False)
        self.value_label.setText(f"{self.slider.value()} %")


class EmotionPanel(QWidget):
    emotions_changed = Signal()        # an emotion slider moved by the user
    gains_changed = Signal()           # speech or expression strength moved by the user
    living_changed = Signal()          # a blink, gaze or head-motion strength moved by the user
    key_requested = Signal()
    delete_key_requested = Signal()
    clear_keys_requested = Signal()
    reset_requested = Signal()
    save_preset_requested = Signal()
    load_preset_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.emotions: dict[str, PercentSlider] = {}
        self._emotion_box = QGroupBox("Emotions", self)
        self._emotion_layout = QVBoxLayout(self._emotion_box)
        self.speech_gain = PercentSlider("Speech", GAIN_MAX, self)
        self.expression_gain = PercentSlider("Expression", GAIN_MAX, self)
        for gain in (self.speech_gain, self.expression_gain):
            gain.slider.setValue(100)
            gain.changed.connect(self.gains_changed)
        strength = QGroupBox("Strength", self)
        strength_layout = QVBoxLayout(strength)
        strength_layout.addWidget(self.speech_gain)
        strength_layout.addWidget(self.expression_gain)

        alive = QGroupBox("Alive", self)
        alive.setToolTip("Blinks, saccadic gaze and idle head motion at human statistics (100 %); seeded, "
                         "recorded with the performance and carried by a FLAME motion export")
        alive_layout = QVBoxLayout(alive)
        self.living_sliders: dict[str, PercentSlider] = {}
        for name, (label, maximum) in LIVING.items():
            slider = PercentSlider(label, maximum, alive)
            slider.changed.connect(self.living_changed)
            alive_layout.addWidget(slider)
            self.living_sliders[name] = slider

        keys = QGroupBox("Emotion keyframes", self)
        self.key_label = QLabel("none: the sliders hold for the whole clip", keys)
        self.key_label.setWordWrap(True)
        key_button = QPushButton("Set key (K)", keys)
        key_button.setToolTip("Key the current emotion sliders at the playhead")
        self.delete_key_button = QPushButton("Delete key (Del)", keys)
        clear_button = QPushButton("Clear keys", keys)
        key_layout = QGridLayout(keys)
        key_layout.addWidget(self.key_label, 0, 0, 1, 3)
        key_layout.addWidget(key_button, 1, 0)
        key_layout.addWidget(self.delete_key_button, 1, 1)
        key_layout.addWidget(clear_button, 1, 2)

        reset = QPushButton("Reset", self)
        reset.setToolTip("All emotions to 0 %, strengths to 100 %, no keyframes")
        save = QPushButton("Save preset…", self)
        load = QPushButton("Load preset…", self)
        buttons = QHBoxLayout()
        for b in (reset, save, load):
            buttons.addWidget(b)

        layout = QVBoxLayout(self)
        layout.addWidget(self._emotion_box)
        layout.addWidget(strength)
        layout.addWidget(alive)
        layout.addWidget(keys)
        layout.addLayout(buttons)
        layout.addStretch(1)

        key_button.clicked.connect(self.key_requested)
        self.delete_key_button.clicked.connect(self.delete_key_requested)
        clear_button.clicked.connect(self.clear_keys_requested)
        reset.clicked.connect(self.reset_requested)
        save.clicked.connect(self.save_preset_requested)
        load.clicked.connect(self.load_preset_requested)

    def set_emotion_names(self, names: Sequence[str]) -> None:
        """Rebuild the emotion sliders for a newly loaded blendshape model."""
        for slider in self.emotions.values():
            slider.setParent(None)
            slider.deleteLater()
        self.emotions = {}
        for name in names:
            slider = PercentSlider(name, 100, self._emotion_box)
            slider.changed.connect(self.emotions_changed)
            self._emotion_layout.addWidget(slider)
            self.emotions[name] = slider
        self._emotion_box.setEnabled(bool(names))
        self._emotion_box.setTitle("Emotions" if names else "Emotions (no blendshape model loaded)")

    def mix(self) -> dict[str, float]:
        return {name: s.fraction() for name, s in self.emotions.items() if s.fraction() > 0}

    def set_mix(self, mix: dict[str, float]) -> None:
        for name, slider in self.emotions.items():
            slider.set_fraction(mix.get(name, 0.0))

    def gains(self) -> tuple[float, float]:
        return self.speech_gain.fraction(), self.expression_gain.fraction()

    def set_gains(self, speech: float, expression: float) -> None:
        self.speech_gain.set_fraction(speech)
        self.expression_gain.set_fraction(expression)

    def living(self) -> dict[str, float]:
        return {name: s.fraction() for name, s in self.living_sliders.items()}

    def set_living(self, strengths: dict[str, float], unavailable: dict[str, str]) -> None:
        """Show the layers' strengths; a layer the avatar cannot show is disabled, its tooltip
        saying why."""
        for name, slider in self.living_sliders.items():
            slider.set_fraction(strengths[name])
            slider.setEnabled(name not in unavailable)
            slider.setToolTip(unavailable.get(name, ""))

    def dragging(self) -> bool:
        return any(s.slider.isSliderDown() for s in self.emotions.values())

    def show_keys(self, count: int, at_playhead: bool) -> None:
        if count == 0:
            self.key_label.setText("none: the sliders hold for the whole clip")
        else:
            where = "a key is at the playhead" if at_playhead else "moving a slider keys the playhead"
            self.key_label.setText(f"{count} key{'s' * (count != 1)}; emotions follow them ({where})")
        self.delete_key_button.setEnabled(at_playhead)
