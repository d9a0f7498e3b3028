"""Engine build settings and the pure decision of how TensorRT 10 or 11 must build them.

`plan_build` is where the 10 -> 11 break is handled (shared/docs/TENSORRT.md sections 0, 2, 3):
on 11 every network is strongly typed, so precision comes only from the graph; on 10 the FP16/INT8
builder flags ("weak typing") still work for an FP32 graph but must not be mixed with the
STRONGLY_TYPED network flag. Nothing here imports TensorRT: flags are named, and the builder
resolves the names against the real module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from app.backends.tensorrt.deps import check_supported_major
from app.core.errors import UserError

PRECISIONS = ("fp32", "fp16", "int8")
GRAPH_KINDS = ("fp32", "fp16", "qdq")
INT8_SOURCES = ("qdq", "calibrator")
CALIBRATORS = ("entropy2", "minmax")

Shape = tuple[int, ...]
ProfileShapes = tuple[Shape, Shape, Shape]  # (min, opt, max)


@dataclass(frozen=True)
class BuildSettings:
    """What the user asked for. `graph` says which ONNX variant is built (FP32, FP16-cast, Q/DQ)."""

    precision: str = "fp32"
    graph: str = "fp32"
    int8_source: str = "qdq"
    calibrator: str = "entropy2"
    workspace_bytes: int = 1 << 30
    opt_level: int = 3
    timing_cache_path: str | None = None
    profiles: dict[str, ProfileShapes] = field(default_factory=dict)
    version_compatible: bool = False
    # Calibrator INT8 on 10 only: let non-INT8 layers use FP16 too. Off by default so an INT8
    # engine's accuracy is INT8-vs-FP32, not INT8 mixed with FP16 rounding.
    int8_fp16_fallback: bool = False

    def identity(self) -> dict[str, Any]:
        """The settings that change the engine (recorded beside it); paths are left out."""
        data = asdict(self)
        data.pop("timing_cache_path")
        data["profiles"] = {
            name: [list(s) for s in shapes] for name, shapes in sorted(self.profiles.items())
        }
        return data


@dataclass(frozen=True)
class BuildPlan:
    """How to drive TensorRT for one build; flag *names*, resolved by the builder."""

    trt_major: int
    strongly_typed: bool
    network_flags: tuple[str, ...]
    builder_flags: tuple[str, ...]
    use_calibrator: bool
    calibrator: str | None
    workspace_bytes: int
    opt_level: int
    notes: tuple[str, ...] = ()

    def network_flag_bits(self, trt: Any) -> int:
        """Bitmask for `builder.create_network(flags)`: `1 << int(flag)` per flag name."""
        bits = 0
        for name in self.network_flags:
            bits |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
        return bits


def validate_profiles(profiles: dict[str, Any]) -> dict[str, ProfileShapes]:
    """Check min/opt/max shapes per input (same rank, positive, min <= opt <= max); normalise."""
    clean: dict[str, ProfileShapes] = {}
    for name, shapes in profiles.items():
        if not name or any(ch in name for ch in ",:"):
            raise UserError(
                f"input name {name!r} cannot carry a shape profile (empty or has ',' ':')"
            )
        if len(shapes) != 3:
            raise UserError(f"profile for '{name}' needs three shapes: min, opt and max")
        try:
            mn, opt, mx = (tuple(int(d) for d in s) for s in shapes)
        except (TypeError, ValueError) as exc:
            raise UserError(f"profile for '{name}' has a shape that is not whole numbers") from exc
        if not (len(mn) == len(opt) == len(mx)) or not mn:
            raise UserError(f"profile for '{name}': min, opt and max must have the same rank")
        if any(d <= 0 for d in mn + opt + mx):
            raise UserError(f"profile for '{name}': every dimension must be positive")
        if any(not (a <= b <= c) for a, b, c in zip(mn, opt, mx, strict=True)):
            raise UserError(
                f"profile for '{name}' must satisfy min <= opt <= max in every dimension "
                f"(got {list(mn)}, {list(opt)}, {list(mx)})"
            )
        clean[name] = (mn, opt, mx)
    return clean


def _check_choices(s: BuildSettings) -> None:
    for value, allowed, what in (
        (s.precision, PRECISIONS, "precision"),
        (s.graph, GRAPH_KINDS, "graph kind"),
        (s.int8_source, INT8_SOURCES, "INT8 source"),
        (s.calibrator, CALIBRATORS, "calibrator"),
    ):
        if value not in allowed:
            raise UserError(f"unknown {what} '{value}'; choose one of {', '.join(allowed)}")
    if s.workspace_bytes <= 0:
        raise UserError("the builder workspace must be larger than 0 bytes")
    if not 0 <= s.opt_level <= 5:
        raise UserError(f"builder optimisation level must be 0..5, got {s.opt_level}")


def plan_build(settings: BuildSettings, trt_major: int) -> BuildPlan:
    """Decide network flags, builder flags and calibrator use; UserError for impossible combos."""
    check_supported_major(trt_major)
    _check_choices(settings)
    validate_profiles(settings.profiles)
    s, v11 = settings, trt_major >= 11
    notes: list[str] = []
    builder_flags: list[str] = []
    use_calibrator = False

    if s.graph == "qdq" and s.precision != "int8":
        raise UserError("a Q/DQ graph builds an INT8 engine; choose precision int8 for it")
    if s.graph == "fp16" and s.precision != "fp16":
        raise UserError(
            f"the FP16 graph cannot build a {s.precision.upper()} engine "
            "(precision comes from the graph); build the FP32 graph instead"
        )

    if s.precision == "fp32":
        strongly_typed = False  # FP32 graph: default network, TF32 stays TensorRT's default
    elif s.precision == "fp16":
        if s.graph == "fp16":
            strongly_typed = True
        elif v11:
            raise UserError(
                "TensorRT 11 has no FP16 builder flag: an FP32 graph gives an FP32 engine; "
                "build the FP16 graph (make it in the Quantize step) instead"
            )
        else:
            strongly_typed = False
            builder_flags.append("FP16")
            notes.append("FP16 via BuilderFlag.FP16 (weak typing, deprecated since TensorRT 10.12)")
    else:  # int8
        if s.int8_source == "qdq":
            if s.graph != "qdq":
                raise UserError(
                    "INT8 from Q/DQ needs the Q/DQ graph; quantize the model first"
                    + ("" if v11 else ", or choose the calibrator INT8 source")
                )
            strongly_typed = True
        else:
            if v11:
                raise UserError("TensorRT 11 removed calibrator INT8; use the Q/DQ graph")
            if s.graph != "fp32":
                raise UserError(
                    "calibrator INT8 calibrates the FP32 graph; the "
                    f"{s.graph.upper()} graph already fixes its precision"
                )
            strongly_typed = False
            use_calibrator = True
            builder_flags.append("INT8")
            if s.int8_fp16_fallback:
                builder_flags.append("FP16")
            notes.append("INT8 via calibrator (implicit quantization, deprecated since 10.1)")

    if s.version_compatible:
        # Not on 11's removed list; that it still exists there is [unverified].
        builder_flags.append("VERSION_COMPATIBLE")

    # On 11 strong typing is always on and EXPLICIT_BATCH is gone: flags=0 is the portable form.
    network_flags = ("STRONGLY_TYPED",) if strongly_typed and not v11 else ()
    return BuildPlan(
        trt_major=trt_major,
        strongly_typed=strongly_typed or v11,
        network_flags=network_flags,
        builder_flags=tuple(builder_flags),
        use_calibrator=use_calibrator,
        calibrator=s.calibrator if use_calibrator else None,
        workspace_bytes=s.workspace_bytes,
        opt_level=s.opt_level,
        notes=tuple(notes),
    )
