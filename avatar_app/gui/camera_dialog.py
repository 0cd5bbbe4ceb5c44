"""View → Camera from file…: a camera file (a transforms*.json, asking which camera_index when
it holds several, or a camera JSON) chosen in a dialog."""
from __future__ import annotations

from PySide6.QtWidgets import QFileDialog, QInputDialog, QWidget

from renderer.camera import Camera
from renderer.camera_files import camera_indices, load_camera


def ask_camera(parent: QWidget, folder: str = "") -> tuple[str, Camera] | None:
    """The chosen file and its camera, or None if the user cancels; a bad file is an InputError."""
    path, _ = QFileDialog.getOpenFileName(parent, "Camera from file", folder, "Camera files (*.json);;All files (*)")
    if not path:
        return None
    indices = camera_indices(path)
    index = None
    if len(indices) > 1:
        choice, ok = QInputDialog.getItem(parent, "Camera", "camera_index:", [str(i) for i in indices], 0, False)
        if not ok:
            return None
        index = int(choice)
    return path, load_camera(path, index)
