"""The `trtexec` command line equivalent to a build: reproduce an engine outside the app.

Pure: made from the same `plan_build` decision the builder follows, flag by flag (trtexec's
options as documented for TensorRT 10: --memPoolSize, --stronglyTyped, --fp16, --int8 with
--calib, --versionCompatible, --builderOptimizationLevel, --timingCacheFile, --min/opt/maxShapes).
On 11 every network is strongly typed, so no typing or precision flag is printed there; whether
11's trtexec still accepts each of the others is [unverified].
"""

from __future__ import annotations

import shlex
from pathlib import Path

from app.backends.tensorrt.settings import BuildSettings, plan_build, validate_profiles

_BUILDER_FLAGS = {"FP16": "--fp16", "INT8": "--int8", "VERSION_COMPATIBLE": "--versionCompatible"}


def trtexec_args(
    onnx_path: str | Path,
    engine_path: str | Path,
    settings: BuildSettings,
    trt_major: int,
    *,
    calibration_cache: str | Path | None = None,
) -> list[str]:
    """trtexec's arguments for building `onnx_path` into `engine_path` with `settings`."""
    plan = plan_build(settings, trt_major)
    args = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={engine_path}"]
    if "STRONGLY_TYPED" in plan.network_flags:
        args.append("--stronglyTyped")
    args += [_BUILDER_FLAGS[f] for f in plan.builder_flags]
    if plan.use_calibrator:
        # trtexec cannot read images: it takes the calibration cache our calibrator wrote.
        args.append(f"--calib={calibration_cache or 'calibration.cache'}")
    mib = plan.workspace_bytes / (1 << 20)
    args.append(f"--memPoolSize=workspace:{mib:g}M")
    args.append(f"--builderOptimizationLevel={plan.opt_level}")
    if settings.timing_cache_path:
        args.append(f"--timingCacheFile={settings.timing_cache_path}")
    profiles = validate_profiles(settings.profiles)
    for k, flag in enumerate(("--minShapes", "--optShapes", "--maxShapes")):
        if profiles:
            shapes = ",".join(
                f"{name}:{'x'.join(str(d) for d in dims[k])}" for name, dims in profiles.items()
            )
            args.append(f"{flag}={shapes}")
    args.append("--skipInference")  # build only, as the app does
    return args


def trtexec_command(*args: object, **kwargs: object) -> str:
    """`trtexec_args` as one shell-quoted line."""
    return shlex.join(trtexec_args(*args, **kwargs))  # type: ignore[arg-type]
