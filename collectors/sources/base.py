"""The contract between the agent and a telemetry source."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from collectors.catalog import written_by


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
    # True for a source that describes the whole board (jtop, tegrastats, Tegra sysfs): the host
    # source leaves it the names both write (RAM, swap, per-core CPU, thermal zones), so each has
    # one owner. A source that only adds its own label values (NVML's zone "gpu") is not.
    board_wide: ClassVar[bool] = False

    def available(self) -> bool:
        """Whether this source applies to this machine (files present, library installed)."""
        return True

    def collect(self, now: float) -> list[dict[str, Any]]:
        """Return records (values/state/event) stamped `now`. May raise; the agent records it."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections (jtop client, HTTP sessions)."""

    def writing(self) -> frozenset[str]:
        """The metric names this source writes now (collectors/catalog.py lists them per source); a
        source whose output changes with its state (jtop and its fallback) says so here."""
        return written_by(self.name)


def values_record(now: float, source: str, values: dict[str, float | None]) -> dict[str, Any]:
    """A values record, dropping readers that returned None."""
    return {"ts": now, "source": source, "values": {k: v for k, v in values.items() if v is not None}}
