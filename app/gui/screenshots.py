"""Re-take the README screenshots: one PNG per panel of the real app on the real assets.

    python -m app.gui.screenshots --out resources/screenshots --workspace W --eval-json F

`W` is a workspace with fp16 and int8 variants (`int8-studio calibrate ... --workspace W` then
`int8-studio quantize --workspace W`), `F` an `int8-studio evaluate --json F` report. Run it on a
real display or a virtual one (`xvfb-run -s "-screen 0 1600x1000x24" python -m ...`). The
calibration shot calibrates into a throwaway workspace, so `W` is left as it was.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QBuffer, QIODevice, QSettings
from PySide6.QtGui import QPixmap

ASSETS = Path(__file__).resolve().parents[2].parent / "shared" / "assets"
MAX_BYTES = 300_000


def wait_until(app, condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Process events until `condition()` holds; SystemExit naming `what` on timeout."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise SystemExit(f"screenshots: timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.01)


def wait(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def save_png(pixmap: QPixmap, path: Path) -> int:
    """Save as PNG; when over MAX_BYTES, as a 256-colour PNG (UI and video frames stay sharp)."""
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    pixmap.save(buffer, "PNG")
    data = bytes(buffer.data())
    if len(data) > MAX_BYTES:
        from PIL import Image

        image = Image.open(io.BytesIO(data)).convert("RGB")
        out = io.BytesIO()
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
        data = out.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return len(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.gui.screenshots", description=__doc__)
    parser.add_argument("--out", required=True, help="folder for <panel>.png")
    parser.add_argument("--workspace", required=True, help="workspace with fp16/int8 variants")
    parser.add_argument("--eval-json", help="an `evaluate --json` report for the results shot")
    parser.add_argument("--model", default=str(ASSETS / "models" / "yolox-nano-coco"))
    parser.add_argument(
        "--video", default=str(ASSETS / "videos" / "one-by-one-person-detection.mp4")
    )
    parser.add_argument(
        "--calibration-images", default=str(ASSETS / "images" / "coco-train128" / "images")
    )
    parser.add_argument("--size", default="1400x900", help="window size, WxH")
    parser.add_argument("--only", help="comma-separated panels to shoot (default: all)")
    parser.add_argument("--variants-backend", help="backend picked for the variants build")
    args = parser.parse_args(argv)

    from app.core.model.inspection import inspect_model
    from app.gui.main_window import MainWindow
    from app.gui.qt_app import application
    from app.gui.settings import Settings

    app = application()
    scratch = Path(tempfile.mkdtemp(prefix="int8-studio-shots-"))
    # Settings of their own: the shots must not depend on (or change) the user's.
    settings = Settings(QSettings(str(scratch / "settings.ini"), QSettings.Format.IniFormat))
    window = MainWindow(settings, workspace_root=args.workspace)
    width, height = (int(v) for v in args.size.lower().split("x"))
    window.resize(width, height)
    window.show()
    wait(app, 0.5)
    out = Path(args.out)
    only = set(args.only.split(",")) if args.only else None
    shot_sizes: dict[str, int] = {}

    def shoot(name: str) -> None:
        app.processEvents()
        shot_sizes[name] = save_png(window.grab(), out / f"{name}.png")
        print(f"{out / f'{name}.png'}: {shot_sizes[name] / 1000:.0f} KB")

    def wanted(name: str) -> bool:
        return only is None or name in only

    state = window.state
    state.open_spec(inspect_model(args.model))  # as the app opens it: the workspace's corrections
    wait(app, 0.5)
    if wanted("model"):
        window.tabs.setCurrentWidget(window.model_panel)
        window.model_panel.labels.setCurrentRow(0)
        shoot("model")

    if wanted("calibration"):
        panel = window.calibration_panel
        window.tabs.setCurrentWidget(panel)
        state.workspace_root, state._workspace = scratch / "calibration-ws", None
        panel.folder.setText(args.calibration_images)
        panel.count.setValue(100)
        panel.method.setCurrentText("percentile")
        if not panel.start():
            raise SystemExit(f"screenshots: calibration did not start: {panel.messages.keys()}")
        wait_until(app, lambda: panel.thumbs.count() >= 12, 30, "thumbnails")
        wait_until(app, lambda: panel.progress.value() >= 350, 120, "calibration progress")
        shoot("calibration")
        panel.cancel()
        wait_until(app, lambda: panel.job is None, 30, "calibration to stop")
        state.workspace_root, state._workspace = Path(args.workspace), None
        state.variants_changed.emit()

    if wanted("variants"):
        window.tabs.setCurrentWidget(window.variants_panel)
        window.variants_panel.refresh()
        wait_until(
            app, lambda: window.variants_panel.backends.topLevelItemCount() > 0, 30, "backend probe"
        )
        # a build: the workspace's variants are reused, INT8 is timed against FP32 on this CPU,
        # and the panel says what stayed float and whether INT8 is faster here
        if args.variants_backend:
            combo = window.variants_panel.target
            combo.setCurrentIndex(combo.findData(args.variants_backend))
        if not window.variants_panel.build():
            raise SystemExit("screenshots: the variants build did not start")
        wait_until(app, lambda: window.variants_panel.job is None, 120, "the variants build")
        shoot("variants")

    for name, panel, variants in (
        ("live", window.live_panel, ["fp32"]),
        ("compare", window.compare_panel, ["fp32", "int8"]),
    ):
        if not wanted(name):
            continue
        window.tabs.setCurrentWidget(panel)
        wait(app, 0.3)
        panel.source.setText(args.video)
        panel.realtime.setChecked(True)
        panel.refresh_variants()
        panel.set_variants(variants)
        if not panel.start():
            raise SystemExit(f"screenshots: {name} did not start: {panel.messages.keys()}")
        # Late enough for a filled chart and people in view (the video starts on an empty hall).
        wait_until(
            app,
            lambda p=panel: p.control is not None and p.control.shown >= 80,
            120,
            f"{name} frames",
        )
        wait(app, 0.3)
        shoot(name)
        panel.stop()
        wait_until(app, lambda p=panel: not p.running, 30, f"{name} to stop")

    if wanted("results"):
        panel = window.results_panel
        window.tabs.setCurrentWidget(panel)
        panel.load_workspace_results()
        if args.eval_json:
            panel.load_file(args.eval_json, remember=False)
        panel.images.setText(str(ASSETS / "images" / "coco-val-dev64" / "images"))
        wait(app, 0.3)
        shoot("results")

    if wanted("precision"):
        panel = window.precision_panel
        window.tabs.setCurrentWidget(panel)
        panel.images.setText(str(ASSETS / "images" / "coco-val-dev64" / "images"))
        panel.count.setValue(8)
        if not panel.analyse():
            raise SystemExit(f"precision analysis did not start: {panel.messages.keys()}")
        wait_until(app, lambda: panel.job is None, 600, "the precision analysis")
        panel.select_block(0)
        wait(app, 0.3)
        shoot("precision")

    window.close()
    too_big = [n for n, size in shot_sizes.items() if size > MAX_BYTES]
    if too_big:
        print(f"over {MAX_BYTES // 1000} KB: {', '.join(too_big)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from app.core.errors import UserError

    try:
        raise SystemExit(main())
    except UserError as exc:  # e.g. the platform check's missing xcb libraries: said, not a trace
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
