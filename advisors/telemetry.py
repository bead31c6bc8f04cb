"""The web side's handle on the telemetry store (one client per process)."""

from __future__ import annotations

from functools import lru_cache

import redis.asyncio as aioredis
from django.conf import settings

from collectors.store import TelemetryStore, connect


@lru_cache(maxsize=1)
def store() -> TelemetryStore:
    return TelemetryStore(connect(settings.REDIS_URL), settings.REDIS_PREFIX)


def async_client() -> aioredis.Redis:
    return aioredis.Redis.from_url(settings.REDIS_URL, decode_responses=True, socket_connect_timeout=2)
