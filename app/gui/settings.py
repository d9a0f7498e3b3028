"""Versioned QSettings: window state, recent models and folders, last choices per panel."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSettings

# Bump when a stored value changes meaning; older stores are then ignored, not misread.
SETTINGS_VERSION = 1
MAX_RECENT = 8


class Settings:
    """Thin typed wrapper; every key a panel stores is written here with the code that uses it."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings or QSettings("INT8 Studio", "int8-studio")
        stored = self.q.value("version")
        if stored is not None and int(stored) != SETTINGS_VERSION:
            self.q.clear()
        self.q.setValue("version", SETTINGS_VERSION)

    def get(self, key: str, default: Any = None) -> Any:
        value = self.q.value(key, default)
        if isinstance(default, bool) and isinstance(value, str):
            return value.lower() == "true"  # ini files store booleans as text
        if isinstance(default, int) and not isinstance(default, bool) and value is not None:
            try:
                return int(value)
            except (TypeError, ValueError):
                return default
        return value

    def set(self, key: str, value: Any) -> None:
        self.q.setValue(key, value)

    def recent(self, kind: str) -> list[str]:
        value = self.q.value(f"recent/{kind}", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def add_recent(self, kind: str, item: str) -> list[str]:
        items = [item] + [i for i in self.recent(kind) if i != item]
        items = items[:MAX_RECENT]
        self.q.setValue(f"recent/{kind}", items)
        return items

    def sync(self) -> None:
        self.q.sync()
