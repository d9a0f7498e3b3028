"""Live view: one variant on a camera, video, image or folder, with per-stage latency charts."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSplitter

from app.gui.panels.base import run_panel
from app.gui.panels.stream_panel import StreamPanel
from app.gui.stream import Packet
from app.gui.widgets import FrameView, LatencyChart

STAGES = ["preprocess_ms", "infer_ms", "postprocess_ms"]


class LivePanel(StreamPanel):
    """Annotated frames scaled to the view, FPS, and a scrolling chart per pipeline stage."""

    title = "Live"
    settings_key = "live"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.view = FrameView(placeholder="press Start to play the source")
        self.chart = LatencyChart(STAGES, title="latency per stage (ms)")
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.view)
        split.addWidget(self.chart)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setSizes([480, 200])
        self.body.addWidget(split, 1)

    def view_size(self) -> tuple[int, int]:
        return self.view.width(), self.view.height()

    def reset_views(self) -> None:
        self.chart.clear()

    def show_packet(self, packet: Packet) -> None:
        self.view.set_image(packet.images[0])
        self.add_timings(packet.backlog or [packet.timings])

    def add_timings(self, frames: list[list[dict[str, float]]]) -> None:
        for timings in frames:  # every frame, drawn or not
            self.chart.add(timings[0])

    def charts(self) -> list[LatencyChart]:
        return [self.chart]

    def views(self) -> list:
        return [self.view]


def main() -> int:
    return run_panel(lambda state: LivePanel(state))


if __name__ == "__main__":
    raise SystemExit(main())
