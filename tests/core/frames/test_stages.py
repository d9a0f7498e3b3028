"""The one staged frame runner behind `run`, the benchmarks and the GUI's views (run_stages), on
the real YOLOX-Nano and a real video: pause and step, refresh, pacing at the video's own rate,
stale frames dropped, errors and cancel stopping every stage, and no thread left behind."""

from __future__ import annotations

import threading
import time

import pytest

from app.backends.onnxrt import OrtRunner
from app.core.errors import CancelToken
from app.core.frames.live import PipelineStages
from app.core.frames.pipeline import FramePipeline
from app.core.frames.sources import FrameSource
from app.core.frames.stages import END, FrameSlot, LiveStats, Playback, run_stages
from app.core.model.inspection import inspect_model
from tests.conftest import VIDEOS, YOLOX, needs_assets

pytestmark = needs_assets
VIDEO = str(VIDEOS / "bottle-detection.mp4")  # 640x360, 29.8 fps


@pytest.fixture(scope="module")
def stages():
    spec = inspect_model(YOLOX)
    with OrtRunner(spec.path) as runner:
        pipe = FramePipeline(spec, runner)
        pipe.warm_up()
        yield PipelineStages(pipe)


def _stage_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("frames-")]


def test_the_slot_queues_files_replaces_stale_frames_and_keeps_the_last():
    slot = FrameSlot(depth=2)
    slot.put(1, block=True)
    slot.put(2, block=True)
    start = time.perf_counter()
    slot.put(3, block=True, halted=lambda: time.perf_counter() - start > 0.2)  # full: waits
    assert time.perf_counter() - start >= 0.2
    assert [slot.take(0.01) for _ in range(3)] == [1, 2, 3] and slot.dropped == 0
    for i in range(4):  # a real-time source: each put replaces what nobody took
        slot.put(i, block=False)
    assert slot.qsize() == 1 and slot.dropped == 3
    slot.close()
    assert slot.take(0.01) == 3  # the last frame comes before the end
    assert slot.take(0.01) is END
    assert FrameSlot().take(0.01) is None  # nothing yet, not ended


def test_every_frame_of_a_file_in_order_on_two_named_stage_threads(stages):
    finished: list[int] = []
    setup: list[str] = []
    before = threading.active_count()
    stats = run_stages(
        FrameSource(VIDEO, max_frames=20),
        stages.infer,
        lambda state: finished.append(stages.finish(state)[0].index),
        prepare=stages.prepare,
        thread_setup=lambda: setup.append(threading.current_thread().name),
    )
    assert finished == list(range(20))
    assert (stats.frames_in, stats.frames_out, stats.dropped) == (20, 20, 0)
    assert stats.max_queue <= 2
    assert sorted(setup) == ["frames-finish", "frames-read"]
    assert set(stats.cpu_s) == {"reader_thread", "infer_thread", "finish_thread"}
    assert stats.cpu_s["infer_thread"] > 0 and stats.busy_s > 0
    assert threading.active_count() == before and not _stage_threads()


def test_without_a_finish_stage_inference_does_all_the_work_and_no_finisher_starts(stages):
    seen: list[str] = []

    def whole(frame):
        seen.append(threading.current_thread().name)
        stages.finish(stages.infer(stages.prepare(frame)))

    stats = run_stages(FrameSource(VIDEO, max_frames=5), whole)
    assert stats.frames_out == 5 and set(seen) == {threading.current_thread().name}
    assert stats.cpu_s["finish_thread"] == 0.0


def test_a_paced_video_plays_at_its_own_rate_and_drops_what_the_model_misses(stages):
    """Real time: 30 frames of a 29.8 fps video take about a second whatever the model does,
    and YOLOX-Nano on 2 cores (tens of ms a frame) misses some; none queue up."""
    src = FrameSource(VIDEO, max_frames=30)
    done: list[int] = []
    start = time.perf_counter()
    stats = run_stages(
        src,
        stages.infer,
        lambda state: done.append(stages.finish(state)[0].index),
        prepare=stages.prepare,
        drop_stale=True,
        fps=lambda: src.fps,
    )
    took = time.perf_counter() - start
    assert took >= 29 / src.fps - 0.02
    assert stats.frames_in == 30 and stats.frames_out + stats.dropped == 30
    assert done == sorted(done) and done[-1] == 29  # the last frame is shown, not dropped
    per_frame_ms = stages.pipe.timer.summary()["infer_ms"]["p50"]
    if per_frame_ms > 1000 / src.fps * 1.2:  # slower than the video: stale frames were dropped
        assert stats.dropped > 0
    assert stats.max_queue <= 2


def test_pause_step_and_refresh_then_cancel(stages):
    """Paused from the start: each step lets exactly one frame through; a refresh runs the last
    frame again (new thresholds while paused); cancel ends the run and every stage thread."""
    playback = Playback()
    playback.paused = True
    cancel = CancelToken()
    done: list[int] = []
    live = LiveStats()
    result: dict[str, object] = {}

    def play() -> None:
        result["stats"] = run_stages(
            FrameSource(VIDEO),
            stages.infer,
            lambda state: done.append(stages.finish(state)[0].index),
            prepare=stages.prepare,
            drop_stale=True,
            playback=playback,
            cancel=cancel,
            stats=live,
        )

    player = threading.Thread(target=play)
    player.start()
    try:
        time.sleep(0.5)
        assert done == [] and live.frames_in == 1  # read one frame, then waits for a step
        playback.step()
        playback.step()
        deadline = time.perf_counter() + 10
        while len(done) < 2 and time.perf_counter() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        assert done == [0, 1]  # two steps, two frames, paused again
        playback.refresh = True
        while len(done) < 3 and time.perf_counter() < deadline:
            time.sleep(0.02)
        assert done == [0, 1, 1] and not playback.refresh
    finally:
        cancel.cancel()
        player.join(10)
    assert not player.is_alive() and not _stage_threads()
    assert result["stats"] is live and live.frames_out == 3


def test_an_error_in_a_stage_reaches_the_caller_and_stops_every_stage(stages):
    def finish(state):
        frame, _ = stages.finish(state)
        if frame.index == 3:
            raise RuntimeError("disk full while writing frame 3")

    before = threading.active_count()
    start = time.perf_counter()
    stats = LiveStats()
    with pytest.raises(RuntimeError, match="frame 3"):
        run_stages(FrameSource(VIDEO), stages.infer, finish, prepare=stages.prepare, stats=stats)
    assert time.perf_counter() - start < 10
    assert stats.frames_in < 20  # the reader stopped too, not after all 1189 frames
    assert threading.active_count() == before and not _stage_threads()


def test_cancel_from_the_sink_stops_promptly_and_leaves_the_token_to_its_owner(stages):
    cancel = CancelToken()

    def finish(state):
        if stages.finish(state)[0].index == 2:
            cancel.cancel()

    stats = run_stages(
        FrameSource(VIDEO), stages.infer, finish, prepare=stages.prepare, cancel=cancel
    )
    assert 3 <= stats.frames_out <= 6 and not _stage_threads()
    ended = CancelToken()
    run_stages(
        FrameSource(VIDEO, max_frames=2),
        stages.infer,
        stages.finish,
        cancel=ended,
        prepare=stages.prepare,
    )
    assert not ended.cancelled  # ending normally does not mark the caller's token


def test_a_failing_thread_setup_is_an_error_of_the_run_not_a_hang(stages):
    def setup():
        raise PermissionError("cannot lower this thread's priority")

    start = time.perf_counter()
    with pytest.raises(PermissionError):
        run_stages(
            FrameSource(VIDEO),
            stages.infer,
            stages.finish,
            prepare=stages.prepare,
            thread_setup=setup,
        )
    assert time.perf_counter() - start < 10 and not _stage_threads()
