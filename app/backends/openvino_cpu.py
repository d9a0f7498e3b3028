"""OpenVINO runner on the CPU: the same ONNX files, run by Intel's OpenVINO runtime.

Why a second CPU runtime: ONNX Runtime's CPU provider has no integer SiLU, so a SiLU network's
INT8 graph spends what its integer convolutions save on DequantizeLinear / QuantizeLinear passes
around float SiLUs (YOLOX-Nano INT8 1.0-1.1x FP32's latency at best). OpenVINO reads the same
Q/DQ graph, turns each Q/DQ pair into its own quantized convolution with the SiLU and the next
quantization fused into it, and ran YOLOX-Nano's `int8-ov` graph at 0.78-0.85x its FP32 latency
on the same 2-core EPYC (see `app.benchmarks.int8_speed`).

OpenVINO does not always compute a Q/DQ graph as ONNX Runtime does. YOLOX-Nano's TensorRT-layout
graph (symmetric int8 activations) came out wrong in OpenVINO 2026.4 (output cosine 0.79 against
ONNX Runtime's; 0.3 mAP50-95 instead of 36) while its `openvino`-target graph (uint8
activations with a zero point) agrees (cosine >= 0.997). So the first input a quantized graph
gets runs on ONNX Runtime's CPU provider as well, and a graph whose outputs disagree is refused
with a message that says what to run instead (`check_against_onnxruntime`).

Honesty: OpenVINO's CPU plugin computes FP32 models in bfloat16 by default on CPUs that have it
(AMX, AVX512-BF16); this runner pins `INFERENCE_PRECISION_HINT` to f32, so an FP32 variant runs
in FP32 and an FP16 variant's weights are widened to FP32 (OpenVINO's CPU plugin has no FP16
arithmetic on x86), which `describe()` says.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from app.backends.base import Runner, TensorInfo
from app.core.errors import ModelRefused, UserError
from app.core.model.checks import quantized_node_count
from app.core.openvino_session import compile_cpu, core, has_dynamic_input, read_model
from app.core.ort_session import cpu_session

# Lowest cosine similarity between OpenVINO's and ONNX Runtime's output (each output flattened)
# on a quantized graph's first input that counts as the same computation. Measured on real
# photos: 0.991-0.9999 for graphs both run right (YOLOX-Nano int8 / int8-ov, EfficientNet-Lite0
# int8 / int8-trt), 0.79 for the YOLOX-Nano int8-trt graph OpenVINO runs wrong.
SAME_RESULT_COSINE = 0.95
# Input shapes of a model with open dims that get a request compiled for them (`_request_for`)
FIXED_SHAPES = 4
# The same bar for the scores of the fused-I/O detection output (see `output_agreement`)
SCORE_COSINE = 0.5

# OpenVINO element type names -> numpy dtype names
OV_TYPES = {
    "f32": "float32",
    "f16": "float16",
    "i64": "int64",
    "i32": "int32",
    "u8": "uint8",
    "i8": "int8",
    "boolean": "bool",
}


def cpu_name() -> str:
    """The CPU as OpenVINO names it, e.g. "Intel(R) Xeon(R) Platinum 8480+"."""
    return str(core().get_property("CPU", "FULL_DEVICE_NAME"))


class OpenVinoRunner(Runner):
    """Runs an ONNX file with OpenVINO on the CPU, one synchronous request at a time.

    `threads` caps OpenVINO's inference threads (INFERENCE_NUM_THREADS); None lets OpenVINO use
    the physical cores. Compiled for latency (PERFORMANCE_HINT LATENCY), in FP32 arithmetic.
    """

    backend = "openvino-cpu"

    def __init__(
        self, model_path: str | Path, *, threads: int | None = None, strict: bool = False
    ) -> None:
        super().__init__()
        self.model_path = Path(model_path)
        self.threads = threads
        self.strict = strict  # nothing to fall back from: OpenVINO runs here or refuses
        self._compiled: Any = None
        self._request: Any = None
        self._ports: list[Any] = []
        self._unchecked = False  # a quantized graph whose first result is not yet checked
        self._tail_inputs: list[str] = []  # what its NMS/TopK tail reads (`order_dependent_tail`)
        self.ort_cosine: float | None = None  # that check's result
        # a model with open input dims: requests compiled for the input shapes it gets again
        # (`has_dynamic_input`), and the shapes seen once
        self._model: Any = None
        self._fixed: dict[tuple, tuple[Any, list[Any]]] = {}
        self._seen: set[tuple] = set()

    def _open(self) -> None:
        try:
            model = read_model(self.model_path)
            self._compiled = compile_cpu(model, self.threads)
            self._model = model if has_dynamic_input(model) else None
        except Exception as exc:  # OpenVINO raises RuntimeError (unsupported op, bad file, ...)
            first = str(exc).strip().splitlines()[0][:240] if str(exc) else type(exc).__name__
            raise UserError(f"{self.model_path}: OpenVINO cannot load it ({first})") from exc
        self._request = self._compiled.create_infer_request()
        self.active_provider = "OpenVINO CPU"
        import onnx

        graph = onnx.load(str(self.model_path), load_external_data=False)  # read once here
        onnx_names = {v.name for v in [*graph.graph.input, *graph.graph.output]}
        self.inputs = [_info(p, onnx_names) for p in self._compiled.inputs]
        self._ports = list(self._compiled.outputs)
        self.outputs = [_info(p, onnx_names) for p in self._ports]
        self._unchecked = quantized_node_count(graph) > 0
        self._tail_inputs = order_dependent_tail(graph) if self._unchecked else []
        if any(i.dtype == "float16" for i in self.inputs) or _has_fp16_weights(model):
            self.caveat_note = (
                "OpenVINO's CPU plugin computes this FP16 graph in FP32 (its weights widened)"
            )

    def _close(self) -> None:
        self._request = None
        self._compiled = None
        self._ports = []
        self._model = None
        self._fixed.clear()
        self._seen.clear()

    def _infer(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        request, ports = self._request_for(feed)
        result = request.infer(feed)  # outputs copied out of the request (share_outputs)
        out = [result[p] for p in ports]
        if self._unchecked:
            self.ort_cosine = self._check(feed, out)
            self._unchecked = False
        return out

    def _request_for(self, feed: dict[str, np.ndarray]) -> tuple[Any, list[Any]]:
        """The request to run `feed` with: for a model with open input dims, one compiled for
        these input shapes once they come a second time (a video's frames, a folder's common
        size; a shape seen once is not worth 0.2-0.7 s of compiling), at most FIXED_SHAPES."""
        if self._model is None:
            return self._request, self._ports
        key = tuple((name, tuple(value.shape)) for name, value in feed.items())
        if key in self._fixed:
            return self._fixed[key]
        if key in self._seen and len(self._fixed) < FIXED_SHAPES:
            # by input index: a port has several tensor names, and reshape takes not all of them
            index = {n: i for i, p in enumerate(self._model.inputs) for n in p.get_names()}
            shapes = {index.get(n, i): list(s) for i, (n, s) in enumerate(key)}
            compiled = compile_cpu(self._model, self.threads, shapes)
            self._fixed[key] = (compiled.create_infer_request(), list(compiled.outputs))
            return self._fixed[key]
        self._seen.add(key)
        return self._request, self._ports

    def _check(self, feed: dict[str, np.ndarray], out: list[np.ndarray]) -> float:
        """`check_against_onnxruntime` on this first result, or, for a graph whose outputs come
        from an NMS or TopK (`order_dependent_tail`), on what its body hands that tail."""
        tail_inputs = self._tail_inputs
        if not tail_inputs:
            names = [o.name for o in self.outputs]
            return check_against_onnxruntime(self.model_path, feed, out, self.source_path, names)
        import onnx.utils

        with tempfile.TemporaryDirectory(prefix="int8-studio-ov-check-") as tmp:
            body = Path(tmp) / "body.onnx"
            inputs = [i.name for i in self.inputs]
            onnx.utils.extract_model(str(self.model_path), str(body), inputs, tail_inputs)
            compiled = compile_cpu(body, self.threads)
            result = compiled.create_infer_request().infer(feed)
            ours = [result[p] for p in compiled.outputs]
            return check_against_onnxruntime(body, feed, ours, self.source_path or self.model_path)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["device"] = cpu_name()
        if self.ort_cosine is not None:
            out["cosine_vs_onnxruntime"] = round(self.ort_cosine, 5)
        return out


def check_against_onnxruntime(
    model_path: Path,
    feed: dict[str, np.ndarray],
    outputs: list[np.ndarray],
    shown_as: str | Path | None = None,
    names: list[str] | None = None,
) -> float:
    """The lowest agreement (cosine similarity, `output_agreement`) between `outputs`
    (OpenVINO's, for `feed`, named `names`) and ONNX Runtime CPU's outputs for the same feed;
    raises `ModelRefused` below SAME_RESULT_COSINE, naming `shown_as` (the user's file, when
    `model_path` is a derived copy) or `model_path`."""
    reference = cpu_session(model_path).run(None, feed)
    names = names or [""] * len(outputs)
    lowest, what = 1.0, ""
    for name, ours, ref in zip(names, outputs, reference, strict=True):
        for part, value in output_agreement(name, ours, ref).items():
            if value < lowest:
                lowest, what = value, part
    if lowest < SAME_RESULT_COSINE:
        raise ModelRefused(
            f"{shown_as or model_path}: OpenVINO computes this INT8 graph differently from ONNX "
            f"Runtime (output cosine similarity {lowest:.3f}{f' of the {what}' if what else ''} "
            "on the first input), so its results would be wrong: run it on ort-cpu, or for "
            "OpenVINO build the variant made for it (int8-studio quantize --target openvino, "
            "variant int8-ov)"
        )
    return lowest


# Ops whose outputs depend on ties: which of equal scores NMS keeps, in which order TopK lists
# them. Two runtimes that compute a network alike still differ there.
ORDER_DEPENDENT_OPS = ("NonMaxSuppression", "TopK")


def order_dependent_tail(model: Any) -> list[str]:
    """The tensors a graph's float tail (decode, NMS, ...: `graph_rules.float_tail_nodes`) reads
    from its body, when that tail holds an NMS or TopK; else []. Such outputs cannot be compared
    element by element: on the TFLite COCO SSD (NMS inside), a graph OpenVINO computes like ONNX
    Runtime (same top detections, boxes within 0.01) read cosine below 0.95 on 54 of 57 photos,
    down to 0, because equal uint8 scores came out in another order or another of the tied
    boxes was kept. The body before the tail is where a quantized graph can go wrong."""
    import onnx

    from app.core.quant.graph_rules import float_tail_nodes, name_nodes

    if not isinstance(model, onnx.ModelProto):  # a path
        model = onnx.load(str(model), load_external_data=False)
    copy = onnx.ModelProto()
    copy.CopyFrom(model)  # name_nodes names in place
    model = name_nodes(copy)
    tail = set(float_tail_nodes(model))
    nodes = [n for n in model.graph.node if n.name in tail]
    if not any(n.op_type in ORDER_DEPENDENT_OPS for n in nodes):
        return []
    written = {o for n in nodes for o in n.output}
    constants = {i.name for i in model.graph.initializer} | {
        o for n in model.graph.node if n.op_type == "Constant" for o in n.output
    }
    graph_inputs = {i.name for i in model.graph.input}
    return list(
        dict.fromkeys(
            i
            for n in nodes
            for i in n.input
            if i and i not in written and i not in constants and i not in graph_inputs
        )
    )


def output_agreement(name: str, ours: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """{part: agreement} of one output: its cosine similarity, or for the fused-I/O detection
    output ([N, anchors, 6]: box offsets, score, class id) the boxes' cosine and the scores'
    cosine scaled onto the same bar. The class id is an argmax: on background anchors the
    classes tie and it flips between runtimes (YOLOX-Nano int8, a graph OpenVINO computes right:
    whole-output cosine 0.90-0.98 on 21 photos, 0.94 on a plain gray frame), which says nothing
    of the computation. Scores are a sparse vector (few anchors score), so one anchor moves
    their cosine: measured on 35 photos and gray, black and noise frames, graphs computed right
    gave box cosines >= 0.985 and score cosines >= 0.82, the int8-trt graph OpenVINO computes
    wrong <= 0.88 and <= 0.25. So a score cosine of SCORE_COSINE counts as SAME_RESULT_COSINE."""
    from app.core.frames.graph_fusion import FUSED_OUTPUT

    a = np.asarray(ours, np.float64)
    b = np.asarray(ref, np.float64)
    if name == FUSED_OUTPUT and a.shape == b.shape and a.shape[-1] == 6:
        boxes = _cosine(a[..., :4], b[..., :4])
        scores = _cosine(a[..., 4], b[..., 4])
        scaled = SAME_RESULT_COSINE + (scores - SCORE_COSINE) * (
            (1 - SAME_RESULT_COSINE) / (1 - SCORE_COSINE)
        )
        return {"boxes": boxes, "scores": min(1.0, scaled)}
    return {"": _cosine(a, b)}


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel(), b.ravel()
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    # two all-zero outputs agree; one all-zero output against a non-zero one does not
    return float(a @ b / norms) if norms > 0 else float(np.array_equal(a, b))


def _info(port: Any, onnx_names: set[str]) -> TensorInfo:
    """A port as the ONNX file names it: OpenVINO gives a port every tensor name that ends there
    (the tutorial YOLOX export's "input" is also "/Sub_output_0"), and `get_any_name` may pick
    another than the file's, which the app's messages and the fused-output check go by."""
    shape: list[int | str] = []
    for i, dim in enumerate(port.get_partial_shape()):
        shape.append(dim.get_length() if dim.is_static else f"d{i}")
    names = port.get_names()
    own = sorted(n for n in names if n in onnx_names)
    name = own[0] if own else (port.get_any_name() if names else "")
    element = port.get_element_type().get_type_name()
    return TensorInfo(name, shape, OV_TYPES.get(element, element))


def _has_fp16_weights(model: Any) -> bool:
    return any(
        op.get_type_name() == "Constant" and op.get_element_type().get_type_name() == "f16"
        for op in model.get_ops()
    )
