"""The real-bindings tests in real_api/ run only in the subprocesses test_real_bindings.py starts.

Each TensorRT generation is its own `tensorrt` module, and one process can import only one, so
test_real_bindings.py runs real_api/ once per generation with INT8_STUDIO_REAL_TRT set.
"""

from __future__ import annotations

import os

collect_ignore = [] if os.environ.get("INT8_STUDIO_REAL_TRT") else ["real_api"]
