"""The main window's tabs, each panel inside a scroll area: on a small screen (a 1366 x 768
laptop) a tall or wide panel scrolls, where before the window's minimum size grew to the largest
panel's (1380 x 885 once a results caption or the Find-preprocessing box was shown), past the
screen's edge."""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QScrollArea, QTabWidget, QWidget


class PanelTabs(QTabWidget):
    """`add_panel` puts a panel in a resizable scroll area; `setCurrentWidget` takes the panel."""

    def __init__(self) -> None:
        super().__init__()
        self._areas: dict[QWidget, QScrollArea] = {}

    def add_panel(self, panel: QWidget, title: str) -> None:
        area = QScrollArea()
        area.setWidgetResizable(True)  # the panel fills the tab while it fits
        area.setFrameShape(QFrame.Shape.NoFrame)
        area.setWidget(panel)
        self._areas[panel] = area
        self.addTab(area, title)

    def setCurrentWidget(self, widget: QWidget) -> None:  # (Qt's name)
        super().setCurrentWidget(self._areas.get(widget, widget))

    def panel_at(self, index: int) -> QWidget | None:
        area = self.widget(index)
        return area.widget() if isinstance(area, QScrollArea) else area
