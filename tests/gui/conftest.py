"""GUI tests run on Qt's offscreen platform against the real assets in ../shared/assets."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# Before any Qt import: no display is needed, and workspaces go to a throwaway data dir.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="int8-studio-gui-tests-")

import pytest

from tests.assets import ASSETS, VIDEO
from tests.assets import COCO_DEV64 as IMAGES
from tests.assets import YOLOX as MODEL

atexit.register(shutil.rmtree, os.environ["XDG_DATA_HOME"], ignore_errors=True)  # when the run ends


@pytest.fixture(scope="session")
def assets() -> Path:
    if not MODEL.is_dir() or not VIDEO.is_file():
        pytest.skip(f"test assets missing: {ASSETS} (models/yolox-nano-coco, videos/*.mp4)")
    return ASSETS


@pytest.fixture(scope="session")
def yolox_spec(assets):
    from app.core.model.inspection import inspect_model

    return inspect_model(MODEL)


@pytest.fixture
def settings(tmp_path):
    from PySide6.QtCore import QSettings

    from app.gui.settings import Settings

    return Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))


@pytest.fixture
def state(tmp_path, yolox_spec):
    import copy

    from app.gui.state import AppState

    st = AppState(workspace_root=tmp_path / "ws")
    st.set_spec(copy.deepcopy(yolox_spec))
    return st


@pytest.fixture(autouse=True)
def collect_on_the_gui_thread():
    """The app's rule (app.gui.qt_app.GuiThreadCollector) for tests: no automatic collection, which
    could run in a worker or server thread and destroy a Qt widget there; collect here, on the
    GUI thread, after each test."""
    import gc

    gc.disable()
    yield
    gc.collect()
    gc.enable()


@pytest.fixture
def pool(qtbot):
    from app.gui.workers import WorkerPool

    p = WorkerPool()
    yield p
    assert p.stop_all(10.0), "a worker did not stop"


@pytest.fixture
def paths(assets) -> dict[str, Path]:
    return {"model": MODEL, "video": VIDEO, "images": IMAGES}


@pytest.fixture
def make_panel(qtbot, pool, settings):
    """Build a panel class on the given state, shown at a realistic size."""

    def make(cls, state, size=(1100, 760)):
        panel = cls(state, pool, settings)
        qtbot.addWidget(panel)
        panel.resize(*size)
        panel.show()
        return panel

    return make


@pytest.fixture(scope="session")
def int8_workspace(tmp_path_factory, yolox_spec):
    """A real workspace with a small MinMax calibration and INT8 variants (built once)."""
    import copy

    from app.core.model.workspace import Workspace
    from app.core.quant.calibration import calibrate
    from app.core.quant.quantize import quantize
    from tests.workspaces import add_stem_only_int8

    root = tmp_path_factory.mktemp("int8-ws")
    ws = Workspace.for_model(copy.deepcopy(yolox_spec), root)
    calibrate(ws, IMAGES, count=8, method="minmax")
    quantize(ws, precisions=("int8",))
    add_stem_only_int8(ws)  # the recipe with only the stem float: visibly disagrees on the video
    return root


@pytest.fixture
def int8_state(int8_workspace, yolox_spec):
    import copy

    from app.gui.state import AppState

    st = AppState(workspace_root=int8_workspace)
    st.set_spec(copy.deepcopy(yolox_spec))
    return st
