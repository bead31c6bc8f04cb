"""The web side's handle on the telemetry store (one client per process)."""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings

from collectors.store import TelemetryStore, connect


@lru_cache(maxsize=1)
def store() -> TelemetryStore:
    return TelemetryStore(connect(settings.REDIS_URL), settings.REDIS_PREFIX)

