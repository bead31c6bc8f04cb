"""The contract between the agent and a telemetry source."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class SourceStatus:
    ok: bool = True
    message: str = ""
    last_ok: float | None = None
    errors: int = 0


@dataclass
class Source:
    """A named producer of recording-format records, run every `interval` seconds."""

    root: Path = field(default_factory=lambda: Path("/"))
    interval: float = 1.0
    name: str = "source"

    def available(self) -> bool:
        """Whether this source applies to this machine (files present, library installed)."""
        return True

    def collect(self, now: float) -> list[dict[str, Any]]:
        """Return records (values/state/event) stamped `now`. May raise; the agent records it."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections (jtop client, HTTP sessions)."""


def values_record(now: float, source: str, values: dict[str, float | None]) -> dict[str, Any]:
    """A values record, dropping readers that returned None."""
    return {"ts": now, "source": source, "values": {k: v for k, v in values.items() if v is not None}}


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def read_int(path: Path) -> int | None:
    text = read_text(path)
    if text is None:
        return None
    try:
        return int(text.strip().split()[0])
    except (ValueError, IndexError):
        return None
