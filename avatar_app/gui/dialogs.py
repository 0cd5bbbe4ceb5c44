"""The dialogs of the File menu: which avatar to open, and the size and frame rate of a recording."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from common.errors import InputError
from models.audio.decode import AUDIO_SUFFIXES

from ..avatar import AvatarSource

FILTERS = {
    "avatar": "Gaussian avatar (*.ply)",
    "flame": "FLAME model (*.pkl *.npz)",
    "blendshapes": "Blendshape model (*.npz)",
    "audio": f"Audio or video ({' '.join('*' + s for s in AUDIO_SUFFIXES)});;All files (*)",  # ffmpeg decodes it
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
