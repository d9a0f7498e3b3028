"""The INT8 targets (Q/DQ layouts) and what the default recipe does per target: which backend
each is made for and timed on, and which of the recipe's optional steps it takes by default,
with the measurements that chose them. `quantize` reads these; see its module doc for the
layouts themselves."""

from __future__ import annotations

TARGETS = ("ort-cpu", "ort-cuda", "tensorrt", "openvino")
# What a target's variants are called after their base name: int8, int8-trt, int8-ov (and
# int8-mp, int8-mp-trt, ... for the precision workflow's)
VARIANT_SUFFIX = {"ort-cpu": "", "openvino": "-ov", "tensorrt": "-trt", "ort-cuda": "-trt"}
# Leading blocks kept float once equalisation evened a stem input (see `make_int8`); None: the
# default's own keep list (the stem and the sensitive blocks) stays float, equalised or not
EQUALIZED_STEM_BLOCKS: dict[str, int | None] = {
    "ort-cpu": 2,
    "tensorrt": None,
    "ort-cuda": None,
    "openvino": 0,
}


def equalized_stem_blocks(target: str, equalized: bool) -> int | None:
    """How many leading blocks an equalised default keeps float (EQUALIZED_STEM_BLOCKS); None
    when the default's own keep list (stem and sensitive blocks) applies: unequalised, or a
    target that keeps it equalised too."""
    return EQUALIZED_STEM_BLOCKS.get(target, 0) if equalized else None


# Equalisation in the default recipe, per target (int8_unseen_epyc_avx2_2026-12-03_*): on
# ort-cpu the float SiLUs it needs cost 6-16% latency (AVX2 EPYC) for tuning-image gains
# within noise (agreement 88.6 -> 89.8, mAP50-95 -1.6), so it stays off there unless asked.
# The TensorRT layout (ort-cuda's too), equalised on top of activation shifting with the stem and
# sensitive blocks float (`quantize --equalize`): on YOLOX-Nano (issue-17 protocol,
# int8_unseen_epyc_zen4_vnni_2026-12-05_trt_equalised.txt) tuning pool agreement 93.4 -> 96.0,
# unseen photo / video agreement 94.1 / 91.5 -> 95.3 / 96.1, unseen mAP50-95 vs FP32 +0.07 ->
# -1.52; but on the HaGRID hand detector, a ReLU model none of it was tuned on, agreement fell on
# all three folders it was checked on (trt_equalise_hand_detector_epyc_zen4_vnni_2026-12-05.txt:
# 259 video frames 84.3 -> 77.9). It helps one model and hurts another, so it is not a default.
EQUALIZE_BY_DEFAULT = {"ort-cpu": False, "tensorrt": False, "ort-cuda": False, "openvino": False}
# Bias correction by default: ort-cpu and openvino. On the openvino layout (with the sensitive
# blocks float too; issue-17 protocol, YOLOX-Nano, 2-core Zen 5 EPYC with VNNI, 2026-12-04) the
# tuning rows moved: pool agreement 91.2 -> 93.2 on ONNX Runtime, 91.7 -> 92.8 on OpenVINO,
# tuning mAP50-95 vs FP32 +0.04 -> -0.47 / +1.49 -> +0.07 (32 photos: within their noise);
# EfficientNet-Lite0 top-1 agreement 91.0% -> 96.0% (177 photos).
# On the TensorRT layout, before activation shifting (`int8_unseen --candidates int8-trt-bias`,
# 2026-12-04), it lowered unseen agreement (video 77.4 -> 65.9, photos 86.4 -> 84.7): symmetric
# int8 activations, not weight rounding, made the error there. Shifted (`shift`, QUANTIZE_VERSION
# 12), the activations get their lost bit back and the weights' rounding shows; on the same
# protocol's tuning rows (choose on those only) shift alone read pool agreement 90.18 / tuning
# mAP50-95 vs FP32 +1.17, with bias correction 89.51 / +0.63, with the sensitive blocks float
# 93.59 / -1.23, with both 93.37 / -0.54: both are the default there now
# (int8_unseen_epyc_vnni_2026-12-04_trt_shift.txt).
BIAS_CORRECTED_TARGETS = ("ort-cpu", "openvino", "tensorrt", "ort-cuda")
# Where the default keeps float the blocks that alone wreck the output (see `sensitive_blocks`
# for the measurements: a gain on every layout, on the TensorRT one once it is shifted)
SENSITIVE_BLOCK_TARGETS = ("ort-cpu", "openvino", "tensorrt", "ort-cuda")
# Whose quantized conv outputs that only a SiLU, or an Add + Relu, reads get a floor under their
# calibrated range (`range_floors`): the layout whose convs write uint8 outputs; the others leave
# those outputs float
FLOORED_TARGETS = ("ort-cpu",)
# Whose average pools that narrow their range stay float (`pools`): the layout that quantizes a
# pool's output (on its input's grid); the others quantize only compute ops' inputs
FLOAT_POOL_TARGETS = ("ort-cpu",)
# Whose float convs are guarded from ONNX Runtime's per-tensor weight rounding (`float_convs`):
# the openvino layout runs on ONNX Runtime too (evaluate, the precision search, a user's ort-cpu
# run; see `int8_finish.finish_for_onnxruntime`); the TensorRT layout leaves no float conv behind
# a DequantizeLinear and takes per-tensor activation scales only
FLOAT_CONV_GUARD_TARGETS = ("ort-cpu", "openvino")
# Where conv inputs are shifted onto the whole symmetric grid (`shift`): the layouts without
# zero points. YOLOX-Nano, issue-17 protocol, unseen photos / video frames, agreement with FP32:
# 86.4 / 77.4 -> 91.7 / 88.8 (shift alone), 94.1 / 91.5 with bias correction and sensitive blocks
# float; unseen mAP50-95 vs FP32 -1.47 -> +0.07
SHIFTED_TARGETS = ("tensorrt", "ort-cuda")
# Targets `measure_speed` times on this CPU, and the backend each runs on there
SPEED_TARGETS = {"ort-cpu": "ort-cpu", "openvino": "openvino-cpu"}
# The Q/DQ layout (target) of the INT8 graph for each backend a user may pick to run it on
TARGET_OF_BACKEND = {
    "ort-cpu": "ort-cpu",
    "ort-cuda": "ort-cuda",
    "ort-tensorrt": "tensorrt",
    "tensorrt": "tensorrt",
    "openvino-cpu": "openvino",
}


def variant_name(base: str, target: str) -> str:
    """`base` ("int8", "int8-mp", ...) named for `target`, as `quantize` names its variants."""
    return f"{base}{VARIANT_SUFFIX.get(target, '-trt')}"


def layout_note(variant: str, target: str | None, backend: str) -> str | None:
    """What to tell a user who runs INT8 variant `variant`, laid out for `target`, on `backend`
    when the backend's own layout is another one (int8, with uint8 zero points TensorRT cannot
    take, on ort-tensorrt; int8-trt, dequantized into float convs, on ort-cpu): the variant made
    for that backend and how to build it. None when the layouts match, when the variant is not
    an INT8 graph of the app's, or on the native `tensorrt` backend, which runs the engine of
    the graph made for it whatever the variant is called."""
    want = TARGET_OF_BACKEND.get(backend)
    if not target or target not in VARIANT_SUFFIX or want is None or backend == "tensorrt":
        return None
    if VARIANT_SUFFIX[target] == VARIANT_SUFFIX[want]:
        return None
    base = base_name(variant, target)
    return (
        f"{variant} is laid out for {target}, not for {backend}; the variant made for "
        f"{backend} is {variant_name(base, want)} ({_how_to_build(base, want)})"
    )


def layout_summary(
    targets: dict[str, str | None], backend: str, have: set[str] | frozenset[str] = frozenset()
) -> str | None:
    """One line for several variants ({name: target}) run on `backend`: which of them are laid
    out for other backends, and the variants made for this one, those not in `have` (the
    workspace's variants) marked as not built (see `layout_note`)."""
    other = {n: str(t) for n, t in targets.items() if layout_note(n, t, backend)}
    if not other:
        return None
    want = TARGET_OF_BACKEND[backend]
    own = sorted({variant_name(base_name(n, t), want) for n, t in other.items()})
    laid = ", ".join(f"{n} ({t})" for n, t in other.items())
    made = ", ".join(
        [n for n in own if n in have]
        + [
            f"{n} not built ({_how_to_build(base_name(n, want), want)})"
            for n in own
            if n not in have
        ]
    )
    return (
        f"on {backend}, {laid} {'is' if len(other) == 1 else 'are'} laid out for another "
        f"backend; made for {backend}: {made}"
    )


def base_name(variant: str, target: str) -> str:
    """`variant` without its target's suffix: "int8-mp-trt" -> "int8-mp" (`variant_name`'s
    inverse)."""
    suffix = VARIANT_SUFFIX.get(target, "")
    return variant.removesuffix(suffix) if suffix else variant


def _how_to_build(base: str, target: str) -> str:
    if base == "int8":
        return f"int8-studio quantize --target {target}"
    if base == "int8-eq":
        return f"int8-studio quantize --target {target} --equalize"
    return f"int8-studio debug-precision --target {target}"  # the mixed-precision variants
