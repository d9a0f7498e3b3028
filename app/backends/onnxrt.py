"""ONNX Runtime runner: CPU, CUDA or TensorRT execution provider, never silently on another.

ONNX Runtime quietly drops a provider it cannot load (no CUDA libraries, no libnvinfer) and runs
on the CPU. This runner compares what was asked with `session.get_providers()` and either records
the fallback in `fallback_note` (shown by the CLI and GUI) or, when `strict`, refuses to run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from app.backends.base import Runner, TensorInfo
from app.core.errors import UserError

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(bool)": "bool",
}


class OrtRunner(Runner):
    """Runs an ONNX file with ONNX Runtime on the chosen execution provider.

    device: "cpu", "cuda" or "tensorrt". `provider_options` go to that provider. `spin=False`
    stops idle ORT threads busy-waiting (for the GUI, where other threads need the cores). With
    `io_binding` (CUDA only) inputs and outputs live in fixed device buffers, which CUDA graphs
    (`cuda_graph=True`, fixed shapes only) require.
    """

    backend = "ort"

    def __init__(
        self,
        model_path: str | Path,
        device: str = "cpu",
        *,
        provider_options: dict[str, Any] | None = None,
        strict: bool = False,
        threads: int | None = None,
        io_binding: bool = False,
        cuda_graph: bool = False,
        extra_providers: list[Any] | None = None,
        spin: bool = True,
    ) -> None:
        super().__init__()
        if device not in PROVIDERS:
            raise UserError(f"unknown device '{device}'; choose one of {', '.join(PROVIDERS)}")
        self.model_path = Path(model_path)
        self.device = device
        self.backend = f"ort-{device}"
        self.provider_options = dict(provider_options or {})
        self.strict = strict
        self.threads = threads
        self.io_binding = io_binding or cuda_graph
        self.cuda_graph = cuda_graph
        self.extra_providers = extra_providers
        self.spin = spin
        self.session: Any = None
        self._binding: Any = None
        self._in_values: dict[str, Any] = {}
        self._in_shapes: dict[str, tuple[int, ...]] = {}
        self._out_values: list[Any] = []
        self.last_timings: dict[str, float] = {}

    def _providers(self) -> list[Any]:
        if self.extra_providers is not None:
            return self.extra_providers
        name = PROVIDERS[self.device]
        opts = dict(self.provider_options)
        if self.device == "cuda" and self.cuda_graph:
            opts["enable_cuda_graph"] = "1"
        chain: list[Any] = [(name, opts)] if opts else [name]
        if self.device == "tensorrt":
            chain.append("CUDAExecutionProvider")
        if self.device != "cpu":
            chain.append("CPUExecutionProvider")
        return chain

    def _open(self) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # provider load failures are reported by us, in words
        if self.threads:
            opts.intra_op_num_threads = self.threads
        if not self.spin:
            # idle ORT threads otherwise busy-wait, starving the GUI and decoder on small machines
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if self.device != "cpu":
            ort.set_default_logger_severity(4)  # a provider that fails to load is reported below
        if self.device == "tensorrt" and PROVIDERS["tensorrt"] in ort.get_available_providers():
            for key in ("trt_engine_cache_path", "trt_timing_cache_path"):
                if self.provider_options.get(key):  # the provider makes one level at most
                    Path(self.provider_options[key]).mkdir(parents=True, exist_ok=True)
        if self.cuda_graph:  # a graph it cannot capture is retried below and said in words,
            opts.log_severity_level = 4  # not as ONNX Runtime's raw error line
        try:
            try:
                self.session = ort.InferenceSession(
                    str(self.model_path), opts, providers=self._providers()
                )
            except Exception as exc:
                if not (self.cuda_graph and "graph capture" in str(exc)):
                    raise
                # Some nodes (e.g. Q/DQ patterns) fall to the CPU, and CUDA graphs need every
                # node on the GPU: run without the graph, and say so.
                self.cuda_graph = False
                self.caveat_note = "CUDA graph not used: not every node runs on CUDA"
                opts.log_severity_level = 3
                self.session = ort.InferenceSession(
                    str(self.model_path), opts, providers=self._providers()
                )
        except Exception as exc:  # ORT raises Fail/InvalidGraph/RuntimeError etc.
            first = str(exc).strip().splitlines()[0][:240] if str(exc) else type(exc).__name__
            raise UserError(f"{self.model_path}: ONNX Runtime cannot load it ({first})") from exc
        finally:
            ort.set_default_logger_severity(2)
        active = self.session.get_providers()
        self.active_provider = active[0]
        wanted = PROVIDERS[self.device]
        if self.active_provider != wanted:
            why = fallback_reason(self.device)
            self.caveat_note = ""  # moot: it does not run on the provider asked for
            self.fallback_note = (
                f"asked for {wanted} but ONNX Runtime is running {self.active_provider}: {why}"
            )
            if self.strict:
                self.session = None
                raise UserError(self.fallback_note + " (strict mode: not running)")
        self.inputs = [
            TensorInfo(i.name, list(i.shape), ORT_TYPES.get(i.type, i.type))
            for i in self.session.get_inputs()
        ]
        self.outputs = [
            TensorInfo(o.name, list(o.shape), ORT_TYPES.get(o.type, o.type))
            for o in self.session.get_outputs()
        ]
        if self.io_binding and self.active_provider == "CPUExecutionProvider":
            self.io_binding = self.cuda_graph = False  # nothing to bind to; plain run is faster

    def _close(self) -> None:
        self._binding = None
        self._in_values.clear()
        self._in_shapes.clear()
        self._out_values.clear()
        self.session = None

    def _infer(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        if not self.io_binding:
            return self.session.run(None, feed)
        return self._infer_bound(feed)

    def _infer_bound(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Device-resident I/O: copy inputs into fixed device buffers, run, copy outputs back.

        Buffers are allocated on the first call (or when a shape changes) and reused, so a CUDA
        graph captured on the first run replays on the same addresses.
        """
        import onnxruntime as ort

        if self._binding is None or any(self._in_shapes.get(k) != v.shape for k, v in feed.items()):
            self._binding = self.session.io_binding()
            self._in_values = {}
            for name, arr in feed.items():
                value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(arr), "cuda", 0)
                self._in_values[name] = value
                self._in_shapes[name] = arr.shape
                self._binding.bind_ortvalue_input(name, value)
            for out in self.outputs:
                self._binding.bind_output(out.name, "cuda", 0)
            self.session.run_with_iobinding(self._binding)
            self._out_values = self._binding.get_outputs()
            # Rebind the outputs the first run allocated, so later runs write to fixed addresses.
            for out, value in zip(self.outputs, self._out_values):
                self._binding.bind_ortvalue_output(out.name, value)
            return [v.numpy() for v in self._out_values]
        # the per-frame path: nothing here but the copies, the run and four clock reads
        clock = time.perf_counter
        t0 = clock()
        for name, arr in feed.items():
            self._in_values[name].update_inplace(
                arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)
            )
        t1 = clock()
        self.session.run_with_iobinding(self._binding)  # returns once the stream has finished
        t2 = clock()
        out = [v.numpy() for v in self._out_values]
        t3 = clock()
        self.last_timings = {
            "h2d_ms": (t1 - t0) * 1e3,
            "compute_ms": (t2 - t1) * 1e3,
            "d2h_ms": (t3 - t2) * 1e3,
        }
        return out

    def run_resident(self) -> None:
        """Run again on the inputs already on the device, outputs left there (compute only)."""
        self.session.run_with_iobinding(self._binding)


def fallback_reason(device: str) -> str:
    """Why ONNX Runtime could not use the provider for `device` on this machine (one line)."""
    from app.backends.registry import backend_statuses

    for status in backend_statuses():
        if status.name == f"ort-{device}" and not status.available:
            return status.reason
    return "the provider failed to initialise (see ONNX Runtime's log with verbose logging)"
