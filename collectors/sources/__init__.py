"""Telemetry sources. Each module exposes small readers that take a root path and return values
or None, plus one `Source` subclass the agent schedules. A source never raises into the agent loop:
failures become its status."""

from __future__ import annotations

from collectors.sources.base import Source, SourceStatus

__all__ = ["Source", "SourceStatus"]
