"""Menu entries, shared by the window's menus and the File menu so both add them alike."""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QWidget


def add_action(owner: QWidget, menu: QMenu, text: str, slot: Callable[[], object],
               shortcut: str | QKeySequence | None = None) -> QAction:
    """A menu entry owned by `owner`; its shortcut works anywhere in that window."""
    action = QAction(text, owner)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    action.triggered.connect(lambda *_: slot())
    menu.addAction(action)
    return action
