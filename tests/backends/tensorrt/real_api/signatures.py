"""Signatures of NVIDIA's real pybind11 / Cython functions, and whether a call fits one.

pybind11 functions have no inspect.Signature; their docstrings start with one line per overload,
`name(self: T, a: T, b: T = default) -> R`, which is what pybind11 itself matches against. The
probe in `accepts_in_child` then lets the real binding convert the arguments.
"""

from __future__ import annotations

import faulthandler
import inspect
import os
import re
from typing import Any

_SIG = re.compile(r"^(?:\d+\. )?(\w+)\((.*)\) -> (.+)$")


def _split_params(text: str) -> list[str]:
    """Split at top-level commas (types like Tuple[int, int] contain commas)."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def overloads(fn: Any) -> list[list[tuple[str, bool]]]:
    """Per overload: [(parameter name, has default)], `self` left out; [] when unreadable."""
    found = []
    for line in (getattr(fn, "__doc__", None) or "").splitlines():
        m = _SIG.match(line.strip())
        if not m or m.group(1) != getattr(fn, "__name__", m.group(1)):
            continue
        params = []
        for p in _split_params(m.group(2)):
            if p in ("*args", "**kwargs"):
                params = None
                break
            name = p.split(":", 1)[0].split("=", 1)[0].strip()
            params.append((name, "=" in p))
        if params is not None:
            found.append([p for p in params if p[0] != "self"])
    if found:
        return found
    try:  # Cython (cuda-python) functions carry a real signature
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    return [[(p.name, p.default is not p.empty) for p in sig.parameters.values()]]


def fits(params: list[tuple[str, bool]], npos: int, keywords: list[str]) -> str | None:
    """None when a call with `npos` positionals and `keywords` binds to `params`, else why not."""
    if npos > len(params):
        return f"{npos} positional arguments, it takes {len(params)}"
    names = [p[0] for p in params]
    for k in keywords:
        if k not in names:
            return f"no parameter named {k!r} (it has {', '.join(names) or 'none'})"
        if names.index(k) < npos:
            return f"{k!r} given twice"
    missing = [n for i, (n, d) in enumerate(params) if i >= npos and n not in keywords and not d]
    return f"missing {', '.join(missing)}" if missing else None


def call_fits(fn: Any, npos: int, keywords: list[str]) -> str | None:
    """None when some overload of `fn` takes the call; the reasons otherwise."""
    sigs = overloads(fn)
    if not sigs:
        return None  # *args/**kwargs only: pybind11 decides, and the probe asks it
    reasons = [fits(s, npos, keywords) for s in sigs]
    return None if None in reasons else "; ".join(r for r in reasons if r)


def accepts_in_child(call: Any) -> tuple[bool, str]:
    """Run `call` in a forked child: (False, message) when pybind11 rejects the arguments.

    The real method is called on an instance made with `cls.__new__` (no C++ object behind it),
    so after pybind11 has converted the arguments it may crash; that counts as accepted. Only
    pybind11's own "incompatible function arguments" TypeError means the call does not fit.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report and leave without running any cleanup of the parent's
        os.close(read)
        faulthandler.disable()  # a crash after conversion is expected; keep the log quiet
        try:
            call()
            msg = b"ok"
        except TypeError as exc:
            msg = b"TypeError: " + str(exc).encode("utf-8", "replace")[:2000]
        except BaseException as exc:
            msg = f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")[:2000]
        os.write(write, msg)
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 4096):
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode("utf-8", "replace") or f"child ended with status {status}"
    rejected = text.startswith("TypeError:") and "incompatible" in text
    return not rejected, text
