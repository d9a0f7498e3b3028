"""Compare view: two variants on the same frames, side by side, with disagreements highlighted."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSplitter, QVBoxLayout, QWidget

from app.gui.panels.base import run_panel
from app.gui.panels.stream_panel import StreamPanel
from app.gui.processors import CompareProcessor
from app.gui.stream import Packet
from app.gui.widgets import FrameView, LatencyChart, SteadyLabel

B_PREFERENCE = ("int8", "fp16")  # variant B by default: the first of these that is built


class ComparePanel(StreamPanel):
    """Both variants see each frame; thick boxes are those the other variant does not agree with."""

    title = "Compare"
    settings_key = "compare"
    processor_class = CompareProcessor
    n_variants = 2

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.views_: list[FrameView] = []
        self.captions: list[QLabel] = []
        pair = QWidget()
        row = QHBoxLayout(pair)
        row.setContentsMargins(0, 0, 0, 0)
        for side in "AB":
            col = QVBoxLayout()
            caption = QLabel(side)
            caption.setStyleSheet("font-weight:bold;")
            view = FrameView(placeholder=f"variant {side}")
            col.addWidget(caption)
            col.addWidget(view, 1)
            row.addLayout(col, 1)
            self.views_.append(view)
            self.captions.append(caption)
        self.agreement = SteadyLabel(
            "agreement –",
            "agreement so far 100.0% · this frame 100% (only in A 99, only in B 99, "
            "other class 99) · mask IoU 0.99",
        )
        self.agreement.setToolTip(
            "Share of boxes with a same-class partner (IoU ≥ 0.5) in the other variant, over "
            "all frames so far and in this frame (for classifiers: frames with the same top "
            "class); thick boxes are missing from the other side or have another class there. "
            "Segmentation models: mean IoU of the matched boxes' masks so far; a pair whose "
            "masks overlap less than 0.75 is drawn thick too"
        )
        self.agreement.setStyleSheet("font-size:11pt;")
        self.chart = LatencyChart(["A", "B"], title="total latency per variant (ms)")
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(pair)
        split.addWidget(self.chart)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setSizes([440, 200])
        self.body.addWidget(self.agreement)
        self.body.addWidget(split, 1)

    def default_variant(self, index: int, names: list[str]) -> str:
        """A is fp32; B the best other variant built (int8, else fp16), so a first run compares
        the model with its quantized version instead of with itself."""
        if index == 0:
            return "fp32"
        return next((n for n in B_PREFERENCE if n in names), "fp32")

    def view_size(self) -> tuple[int, int]:
        view = self.views_[0]
        return view.width(), view.height()

    def reset_views(self) -> None:
        self.chart.clear()
        names = [b.currentText() for b in self.variant_boxes]
        for caption, side, name in zip(self.captions, "AB", names):
            caption.setText(f"{side}: {name}")
        for side, name in zip("AB", names):
            self.chart.readouts[side].setToolTip(name)
            self.chart.rename(side, f"{side}: {name}")

    def show_packet(self, packet: Packet) -> None:
        for view, image in zip(self.views_, packet.images):
            view.set_image(image)
        self.add_timings(packet.backlog or [packet.timings])
        extra = packet.extra
        if "agreement" in extra:
            text = f"agreement so far {extra['agreement'] * 100:.1f}% · this frame "
            text += f"{extra.get('frame_agreement', 1.0) * 100:.0f}%"
            if "only_a" in extra:
                text += (
                    f" (only in A {extra['only_a']}, only in B {extra['only_b']}, "
                    f"other class {extra['class_diff']})"
                )
            if extra.get("mask_iou") is not None:
                text += f" · mask IoU {extra['mask_iou']:.2f}"
            self.agreement.setText(text)

    def add_timings(self, frames: list[list[dict[str, float]]]) -> None:
        for timings in frames:  # every frame, drawn or not
            totals = {
                side: t["preprocess_ms"] + t["infer_ms"] + t["postprocess_ms"]
                for side, t in zip("AB", timings)
            }
            self.chart.add(totals)

    def charts(self) -> list[LatencyChart]:
        return [self.chart]

    def views(self) -> list:
        return list(self.views_)


def main() -> int:
    return run_panel(lambda state: ComparePanel(state))


if __name__ == "__main__":
    raise SystemExit(main())
