"""Start the desktop app: `python -m app.gui.app [--model M] [--source S]` (the flags of
`int8-studio gui`, which starts it the same way)."""

from __future__ import annotations

from app.gui.scripted import main as scripted_main


def main(argv: list[str] | None = None) -> int:
    return scripted_main(argv, prog="python -m app.gui.app")


if __name__ == "__main__":
    raise SystemExit(main())
