"""The async side of the telemetry store: what the websocket consumer reads, on redis.asyncio.

One reader per open device page. Entries are checked like every other read (collectors/entries.py):
a bad one is skipped, and each stream's cursor moves only past entries that were read.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from collectors.entries import decode_all
from collectors.keys import Keys
from collectors.store import decode_state

STREAMS = ("telemetry", "events", "requests")


class AsyncDeviceReader:
    def __init__(self, client: aioredis.Redis, prefix: str, device: str):
        self.r: Any = client  # redis-py's command stubs are sync/async unions (see TelemetryStore)
        self.keys = Keys(prefix, device)
        self.streams = [self.keys.stream(s) for s in STREAMS]
        self.cursors: dict[str, str] = {}

    @classmethod
    def from_url(cls, url: str, prefix: str, device: str) -> AsyncDeviceReader:
        client = aioredis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=2,
                                          health_check_interval=15)
        return cls(client, prefix, device)

    async def window(self, since: float) -> list[dict[str, Any]]:
        """Every stream's records from `since` (epoch s) on, sorted by ts; cursors set after them."""
        records: list[dict[str, Any]] = []
        for stream in self.streams:
            entries = await self.r.xrange(stream, min=str(int(since * 1000)), max="+")
            records.extend(decode_all(entries, stream))
            self.cursors[stream] = entries[-1][0] if entries else await self._last_id(stream)
        records.sort(key=lambda r: r["ts"])
        return records

    async def start_at_end(self) -> None:
        """Follow only what is written from now on."""
        for stream in self.streams:
            self.cursors[stream] = await self._last_id(stream)

    async def _last_id(self, stream: str) -> str:
        entries = await self.r.xrevrange(stream, count=1)
        return entries[0][0] if entries else "0-0"

    async def state(self) -> dict[str, Any]:
        return decode_state(await self.r.hgetall(self.keys.state))

    async def follow(self, block_ms: int = 1000, count: int = 2000) -> list[dict[str, Any]]:
        """The records written after the cursors (waiting up to `block_ms`), sorted by ts."""
        if not self.cursors:
            await self.start_at_end()
        response = await self.r.xread(dict(self.cursors), block=block_ms, count=count)
        records: list[dict[str, Any]] = []
        for stream, entries in response or []:
            records.extend(decode_all(entries, stream))
            if entries:
                self.cursors[stream] = entries[-1][0]
        records.sort(key=lambda r: r["ts"])
        return records

    async def close(self) -> None:
        await self.r.aclose()
