#!/usr/bin/env bash
# install.sh DEST: NVIDIA's real TensorRT Python bindings (one 10.x, one 11.x) and cuda-python (cuda-bindings)
# 12.x / 13.x into separate folders under DEST, for tests/backends/tensorrt/test_real_bindings.py.
#
# TensorRT's libraries cannot be installed on machines without NVIDIA's index, but the bindings
# wheels (tensorrt-cuXX-bindings) are on PyPI. Their extension only needs a handful of C
# functions from libnvinfer / libnvinfer_plugin / libnvonnxparser; tiny stub libraries defining
# them (each returns NULL) sit next to tensorrt.so, found through its $ORIGIN runpath, so the
# REAL module imports: classes, methods, signatures, enums and callback trampolines are
# TensorRT's own; anything needing a real builder or engine fails. After shared/tools/trt-api.
# Needs: python (the interpreter the tests run with), pip, gcc, nm, readelf. Everything from PyPI.
set -euo pipefail
DEST=${1:?usage: install.sh DEST}
PY=${PY:-python}
TRT10=${TRT10:-10.16.1.11}
TRT11=${TRT11:-11.4.0.106}
for tool in gcc nm readelf; do
  command -v "$tool" >/dev/null || { echo "install.sh: $tool is needed to build the stubs" >&2; exit 2; }
done
mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)

stub_bindings() {  # stub_bindings VERSION FLAVOUR FOLDER
  local version=$1 flavour=$2 out=$3 so src
  rm -rf "$out" && mkdir -p "$out"
  "$PY" -m pip install -q --no-deps --target "$out" "tensorrt-${flavour}-bindings==${version}"
  so=$(ls "$out"/tensorrt_bindings/tensorrt*.so | head -1)
  # The real `tensorrt` package of the sdist is these two lines; writing them avoids its build.
  mkdir -p "$out/tensorrt"
  printf 'from tensorrt_bindings import *\nfrom tensorrt_bindings import __version__\n' \
    > "$out/tensorrt/__init__.py"
  local provided
  provided=$(for l in $(ldconfig -p | awk '/(libc|libm|libstdc\+\+|libgcc_s|libdl|libpthread|librt)\.so\.[0-9]+ .*x86-64/ {print $NF}' | sort -u); do
    nm -D --defined-only "$l" 2>/dev/null | awk '{print $3}' | sed 's/@.*//'; done | sort -u)
  mapfile -t needed < <(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(libnv.*\)\]/\1/p')
  mapfile -t undef < <(nm -D --undefined-only "$so" | awk '$1=="U" && $2 !~ /@/ && $2 !~ /^_?Py/ {print $2}' | sort -u)
  for lib in "${needed[@]}"; do
    src=$(mktemp --suffix=.c)
    echo "int int8studio_stub_marker = 1;" > "$src"
    for s in "${undef[@]}"; do
      grep -qxF "$s" <<<"$provided" && continue
      case "$s" in
        *OnnxParser*|*Onnx*) [[ $lib == libnvonnxparser* ]] || continue;;
        initLibNvInferPlugins*|*PluginCreator*) [[ $lib == libnvinfer_plugin* ]] || continue;;
        *) [[ $lib == libnvinfer.so* ]] || continue;;
      esac
      echo "void *$s(void) { return 0; }" >> "$src"
    done
    gcc -shared -fPIC -O0 -o "$out/tensorrt_bindings/$lib" -Wl,-soname,"$lib" "$src"
    rm -f "$src"
  done
  PYTHONPATH="$out" "$PY" -c 'import tensorrt as t; print("real TensorRT bindings", t.__version__)'
}

# In parallel: the four are independent downloads.
pids=()
stub_bindings "$TRT10" cu12 "$DEST/trt10" & pids+=($!)
stub_bindings "$TRT11" cu13 "$DEST/trt11" & pids+=($!)
rm -rf "$DEST/cuda12" "$DEST/cuda13"  # a fresh target each time: pip does not replace in one
"$PY" -m pip install -q --target "$DEST/cuda12" "cuda-bindings==12.9.*" & pids+=($!)
"$PY" -m pip install -q --target "$DEST/cuda13" "cuda-bindings==13.*" & pids+=($!)
for pid in "${pids[@]}"; do wait "$pid"; done
for c in cuda12 cuda13; do
  PYTHONPATH="$DEST/$c" "$PY" -c 'import cuda.bindings as b; from cuda.bindings import runtime; print("cuda-python", b.__version__)'
done
