"""Precision panel: which layers INT8 hurts (per-block error chart and activation histograms),
keep chosen blocks in float and re-score, or let the mixed-precision search choose."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSplitter, QWidget

from app.backends.factory import make_runner
from app.core import defaults
from app.core.errors import UserError
from app.core.frames.sources import has_images
from app.core.model.workspace import Workspace
from app.core.precision.workflow import (
    analysis_path,
    run_analysis,
    run_auto,
    run_custom,
)
from app.core.quant.calibration import latest_calibration
from app.core.safe_json import load_json
from app.gui.panels.base import Panel, run_panel
from app.gui.precision_blocks import BlockExplorer
from app.gui.precision_controls import PrecisionControls
from app.gui.precision_results import BlockDetail, ResultTables


# the panel ----------------------------------------------------------------------------------
class PrecisionPanel(Panel):
    """Per-block INT8 error, histograms and clip ranges; keep blocks float; mixed precision."""

    title = "Precision"
    settings_key = "precision"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.analysis: dict[str, Any] | None = None
        self.blocks: list[dict[str, Any]] = []
        self.trials_report: dict[str, Any] = {}
        self.compare_result: dict[str, Any] = {}
        self.body.addWidget(self._build_controls())
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self._build_left())
        split.addWidget(self._build_right())
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([640, 460])
        self.body.addWidget(split, 1)
        self.state.variants_changed.connect(self._check_calibration)
        if self.state.spec is not None:
            self.on_spec_changed(self.state.spec)

    # building --------------------------------------------------------------------------------
    def _build_controls(self) -> PrecisionControls:
        box = PrecisionControls(
            str(self.setting("images", "")),
            str(self.setting("labels", "")),
            str(self.setting("target", defaults.BACKEND)),
            int(self.setting("count", defaults.ANALYSIS_IMAGES)),
            float(self.setting("drop", defaults.TARGET_DROP)),
            str(self.setting("pool", "")),
        )
        self.controls = box
        self.images, self.labels, self.target = box.images, box.labels, box.target
        self.count, self.drop = box.count, box.drop
        self.analyse_btn, self.auto_btn = box.analyse_btn, box.auto_btn
        self.rerun_btn = box.rerun_btn
        self.pool_field = box.pool
        box.pool_btn.clicked.connect(self.pick_pool)
        box.add_job_bar(self.make_job_bar("", box.buttons()))
        self.target.currentIndexChanged.connect(self._target_changed)
        self.analyse_btn.clicked.connect(lambda: self.analyse())
        self.auto_btn.clicked.connect(lambda: self.auto())
        self.rerun_btn.clicked.connect(lambda: self.rerun())
        return box

    def _build_left(self) -> QWidget:
        self.explorer = BlockExplorer()
        self.explorer.block_selected.connect(self.select_block)
        self.chart, self.table = self.explorer.chart, self.explorer.table
        self.legend, self.bars = self.chart.legend, self.chart.bars
        self.selection_bar, self.kept_marks = self.chart.selection_bar, self.chart.kept_marks
        return self.explorer

    def _build_right(self) -> QWidget:
        self.detail = BlockDetail(log_counts=bool(self.setting("log_counts", True)))
        self.detail.log_toggled.connect(lambda on: self.set_setting("log_counts", on))
        histogram = self.detail.histogram
        self.hist, self.clip_lines = histogram.hist, histogram.clip_lines
        self.tensor_stats = histogram.stats
        self.results = ResultTables()
        self.compare, self.trials = self.results.compare, self.results.trials
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.detail)
        split.addWidget(self.results)
        split.setSizes([360, 220])
        return split

    # model, workspace, settings --------------------------------------------------------------
    def on_spec_changed(self, spec: object) -> None:
        self.show_analysis(None)
        self.results.clear()
        if spec is None:
            return
        self._check_calibration()
        self._load_saved()

    def _workspace_calibration(self) -> str:
        """The latest calibration's key; UserError (said the GUI's way) when there is none."""
        ws = self.state.workspace()
        try:
            return latest_calibration(ws).name
        except UserError as exc:
            raise UserError(
                "No calibration for this model yet: calibrate first (Calibration tab), then "
                "analyse."
            ) from exc

    def _check_calibration(self) -> bool:
        if self.state.spec is None:
            return False
        try:
            self._workspace_calibration()
        except UserError as exc:
            self.messages.set("calibration", str(exc), "warning")
            return False
        self.messages.clear("calibration")
        return True

    def _load_saved(self) -> None:
        """The last analysis for this target, when it was made from the current calibration."""
        try:
            calib = self._workspace_calibration()
            path = analysis_path(self.state.workspace(), self._target())
            if not path.is_file():
                return
            saved = load_json(path)
        except (UserError, OSError, ValueError):
            return  # damaged or unreadable: analyse again
        if saved.get("calibration") == calib and saved.get("blocks"):
            self.show_analysis(saved)
            self.status.setText(f"analysis from {saved.get('images', '?')} images (saved)")

    def _target(self) -> str:
        return str(self.target.currentData() or defaults.BACKEND)

    def _target_changed(self) -> None:
        self.set_setting("target", self._target())
        if self.analysis is not None and self.analysis.get("target") != self._target():
            self.show_analysis(None)
            self._load_saved()

    def _eval_inputs(self) -> tuple[str, str]:
        """Checked evaluation folder and labels (UserError with what to fix)."""
        images, labels = self.images.text().strip(), self.labels.text().strip()
        if not images or not Path(images).is_dir():
            raise UserError(f"'{images}': choose a folder of evaluation images")
        if not has_images(images):  # on the GUI thread: must not walk the whole tree
            raise UserError(f"{images}: no images in this folder (or its subfolders)")
        if labels and not Path(labels).exists():
            raise UserError(f"{labels}: no such label folder or COCO file")
        self.set_setting("images", images)
        self.set_setting("labels", labels)
        return images, labels

    def _pool_inputs(self) -> list[str]:
        """The pool's folders and videos, checked (UserError naming the one to fix)."""
        from app.core.frames.imageio import is_video_path

        entries = [e.strip() for e in self.pool_field.text().split(";") if e.strip()]
        for entry in entries:
            path = Path(entry)
            if not (path.is_dir() or (path.is_file() and is_video_path(path))):
                raise UserError(f"{entry}: not a folder or a video file; fix the Pool field")
        self.set_setting("pool", "; ".join(entries))
        return entries

    def pick_pool(self) -> None:
        """Add a folder (or, when that dialog is cancelled, a video) to the pool."""
        start = self.images.text()
        path = self.pick_folder("Pool: a folder of images (no labels needed)", start)
        if not path:
            path = self.pick_file("Pool: a video", start, "Videos (*.mp4 *.avi *.mov *.mkv)")
        if path:
            current = self.pool_field.text().strip()
            self.pool_field.setText(f"{current}; {path}" if current else path)

    # actions ---------------------------------------------------------------------------------
    def _ready(self, key: str, need_images: bool) -> tuple[Workspace, str, str] | None:
        """Workspace (+ evaluation inputs) or None with an inline message under `key`."""
        if self.job is not None:
            return None
        try:
            ws = self.state.workspace()
            self._workspace_calibration()
            images, labels = self._eval_inputs() if need_images else ("", "")
        except UserError as exc:
            self.messages.set(key, str(exc))
            return None
        self.messages.clear(key)
        self.messages.clear("calibration")
        return ws, images, labels

    def analyse(self) -> bool:
        """Per-layer analysis in the worker; False with an inline message when it cannot start."""
        ready = self._ready("analyse", need_images=False)
        if ready is None:
            return False
        self.set_setting("count", self.count.value())
        return self.run_job(
            run_analysis,
            ready[0],
            self._target(),
            self.count.value(),
            name="precision analysis",
            on_finished=self._analysed,
        )

    def auto(self) -> bool:
        """Mixed-precision search in the worker (analysing first when needed)."""
        ready = self._ready("auto", need_images=True)
        if ready is None:
            return False
        ws, images, labels = ready
        try:
            pool = self._pool_inputs()
        except UserError as exc:
            self.messages.set("auto", str(exc))
            return False
        self.set_setting("drop", self.drop.value())
        analysis = self.analysis if self._analysis_current() else None
        return self.run_job(
            partial(run_auto, runner_factory=make_runner, pool=pool),
            ws,
            images,
            labels,
            self._target(),
            self.drop.value(),
            analysis,
            self.count.value(),
            name="mixed precision",
            on_finished=self._auto_done,
        )

    def rerun(self) -> bool:
        """Build int8-custom with the ticked blocks float and score it against FP32."""
        ready = self._ready("rerun", need_images=True)
        if ready is None:
            return False
        ws, images, labels = ready
        keep = self.keep_float_nodes()
        return self.run_job(
            partial(run_custom, runner_factory=make_runner),
            ws,
            images,
            labels,
            self._target(),
            keep,
            name="custom precision",
            on_finished=self._rerun_done,
        )

    def _analysis_current(self) -> bool:
        return self.analysis is not None and self.analysis.get("target") == self._target()

    def _analysed(self, analysis: dict[str, Any]) -> None:
        self.show_analysis(analysis)
        self.status.setText(
            f"analysed {analysis.get('images')} images in {analysis.get('seconds')} s: "
            f"{len(self.blocks)} blocks"
        )

    def _auto_done(self, result: dict[str, Any]) -> None:
        if not self._analysis_current():
            self.show_analysis(result["analysis"])
        report = result["report"]
        self.show_trials(report)
        kept = set(report.get("kept_float") or [])
        self.set_kept({i for i, b in enumerate(self.blocks) if kept & set(b["nodes"])})
        text = auto_summary(report)
        if report.get("reached"):
            self.messages.set("auto", text, "info")
        else:
            self.messages.set(
                "auto",
                text + " No trial within the cap met the target; the closest to FP32 was kept.",
                "warning",
            )
        self.status.setText(f"{report['variant']} written")
        self.state.variants_changed.emit()

    def _rerun_done(self, result: dict[str, Any]) -> None:
        self.show_compare(result)
        self.status.setText(f"{result['variant']} built and scored")
        self.state.variants_changed.emit()

    # showing ---------------------------------------------------------------------------------
    def show_analysis(self, analysis: dict[str, Any] | None) -> None:
        """Chart and table of an analyse_layers() result (None clears them)."""
        self.analysis = analysis
        self.blocks = list((analysis or {}).get("blocks") or [])
        self.detail.tensors = {t["name"]: t for t in (analysis or {}).get("tensors") or []}
        if analysis is None:
            self.explorer.show_blocks(self.blocks)
        else:
            self.explorer.show_blocks(
                self.blocks,
                f"{len(self.blocks)} blocks, {analysis.get('images')} calibration images, "
                f"target {analysis.get('target')}. Click a bar or a row; tick blocks to keep "
                "them float.",
            )
        self.detail.show_block(-1, None)

    def show_trials(self, report: dict[str, Any]) -> None:
        """The search's trials: float compute ops vs accuracy vs latency; the chosen one bold."""
        self.trials_report = report
        self.results.show_trials(report)

    def show_compare(self, result: dict[str, Any]) -> None:
        """FP32, before and after: accuracy and latency from one scorer."""
        self.compare_result = result
        self.results.show_compare(result)

    # selection and keep-float ----------------------------------------------------------------
    @property
    def selected(self) -> int:
        return self.explorer.selected

    def select_block(self, index: int) -> None:
        """Select a block (bar and row) and show its worst tensor's histogram."""
        if self.explorer.select(index):
            self.detail.show_block(index, self.blocks[index])

    def current_tensor(self) -> dict[str, Any] | None:
        return self.detail.current_tensor()

    def kept_indices(self) -> set[int]:
        return self.table.kept()

    def set_kept(self, indices: set[int]) -> None:
        """Tick exactly these blocks' keep-float boxes."""
        self.table.set_kept(indices)

    def keep_float_nodes(self) -> list[str]:
        """Union of the ticked blocks' node names (what `quantize(keep_float=)` gets)."""
        nodes: list[str] = []
        for i in sorted(self.kept_indices()):
            nodes += [n for n in self.blocks[i]["nodes"] if n not in nodes]
        return nodes


def auto_summary(report: dict[str, Any]) -> str:
    """The search's result in words: search figures, then the held-out check."""
    metric, lmetric = report["metric"], report.get("labelled_metric")
    img, held = report["images"], report["held_out"]

    def figures(m: dict[str, Any], ref: dict[str, Any]) -> str:
        parts = [f"{metric} {m[metric]:.4g}"]
        if lmetric and m.get(lmetric) is not None:
            parts.append(f"{lmetric} {m[lmetric]:.4g} (FP32 {ref[lmetric]:.4g})")
        return ", ".join(parts)

    search = {metric: report["int8"], lmetric: report.get("labelled")}
    fp32_search = {lmetric: report.get("fp32_labelled")}
    chosen, default = held["chosen"]["metrics"], held["default"]["metrics"]
    fp32_held = held["fp32"]["metrics"]
    over = report.get("closer_over_cap")
    note = (
        f" '{over['trial']}' was closer to FP32 ({metric} {over['value']:.4g}) with "
        f"{over['compute_ops_float']} compute ops float, over the cap of {report['cap']}."
        if over
        else ""
    )
    return (
        f"Wrote variant {report['variant']} with {report['layers_kept']} of "
        f"{report['compute_ops']} compute ops float ({report['chosen_trial']}). "
        f"Search ({img['search_images']} images, {img['search_labelled']} labelled): "
        f"{figures(search, fp32_search)}. Held out ({img['held_out_images']} images the search "
        f"never saw, {img['held_out_labelled']} labelled): {figures(chosen, fp32_held)}; "
        f"default recipe {figures(default, fp32_held)}.{note}"
    )


def main() -> int:
    return run_panel(lambda state: PrecisionPanel(state))


if __name__ == "__main__":
    raise SystemExit(main())
