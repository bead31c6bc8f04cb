"""Websocket consumer: streams one device's telemetry to the browser.

On connect (session required) it sends a snapshot of the last LIVE_WINDOW_S seconds (shaped like
the range API's payload), then follows the device's streams with XREAD BLOCK and sends batched
updates at most LIVE_MAX_UPDATES_PER_S. All Redis reads go through the store's async reader
(collectors/store_async.py). Every message stays under the websocket's 1 MiB frame: a large
snapshot is sent as `snapshot` + `snapshot_part` messages (`part`, `parts`; the page draws once all
have arrived), a large update as several updates, and a snapshot keeps at most SNAPSHOT_MAX_BYTES of
series (`truncated_series` says how many were left out). When Redis goes away the consumer sends
`{"type": "error"}` and closes with CLOSE_UNAVAILABLE; the page reconnects with backoff. Request
latency is summarised server-side in closed LATENCY_STEP_S buckets; the IRQ matrix and the
time-to-ceiling forecast are refreshed every DERIVED_EVERY_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import deque
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from advisors.alerting import device_config
from collectors.store_async import AsyncDeviceReader
from thoxdash.latency import bucket_stats
from thoxdash.live import (
    ceiling_forecast,
    irq_matrix,
    memory_points,
    shrink,
    split_series,
    to_columns,
)
from thoxdash.payload import assemble, clean_events, isolated_cpus

log = logging.getLogger(__name__)

SNAPSHOT_POINTS = 600
LATENCY_STEP_S = 10.0
DERIVED_EVERY_S = 5.0
LATE_S = 1.0  # a request may reach Redis this long after its bucket closed
SNAPSHOT_MAX_BYTES = 16 * 1024 * 1024
# Close codes the server may send are 1000 or 3000-4999 (RFC 6455 7.4; autobahn refuses others,
# 1011 included): 4011 = "telemetry store unavailable, reconnect later".
CLOSE_UNAVAILABLE = 4011


def _load_config(device: str) -> dict[str, Any]:
    return device_config(device)


class LiveState:
    """What the consumer remembers between updates (plain, testable without a socket)."""

    def __init__(self, config: dict[str, Any], isolated: set[str], window_s: float):
        self.config = config
        self.isolated = isolated
        self.window_s = window_s
        self.pending: list[dict[str, Any]] = []  # requests of buckets not closed yet
        self.memory: dict[str, deque[tuple[float, float]]] = {}
        self.ceilings: dict[str, float] = {
            str(r["name"]): float(r["ceiling_bytes"]) for r in config.get("runtimes") or [] if r.get("ceiling_bytes")}
        self.irq_first: dict[str, tuple[float, float]] = {}
        self.irq_last: dict[str, tuple[float, float]] = {}
        self.derived_at = 0.0

    def take(self, cols: dict[str, Any]) -> None:
        mem, ceilings = memory_points(cols["series"])
        self.ceilings.update(ceilings)
        for runtime, points in mem.items():
            self.memory.setdefault(runtime, deque(maxlen=2000)).extend(points)
        for key, (xs, ys) in (cols.get("irq") or {}).items():
            self.irq_first.setdefault(key, (xs[0], ys[0]))
            self.irq_last[key] = (xs[-1], ys[-1])
        self.pending.extend(cols["requests"])

    def closed_latency(self, now: float) -> dict[str, list[list[float]]]:
        cutoff = math.floor((now - LATE_S) / LATENCY_STEP_S) * LATENCY_STEP_S
        done = [r for r in self.pending if r["ts"] < cutoff]
        if not done:
            return {}
        self.pending = [r for r in self.pending if r["ts"] >= cutoff]
        return bucket_stats(done, LATENCY_STEP_S, self.config.get("slos") or [])

    def derived(self, now: float) -> dict[str, Any]:
        if now - self.derived_at < DERIVED_EVERY_S:
            return {}
        self.derived_at = now
        for points in self.memory.values():
            while points and points[0][0] < now - self.window_s:
                points.popleft()
        out: dict[str, Any] = {"forecast": ceiling_forecast({k: list(v) for k, v in self.memory.items()},
                                                            self.ceilings)}
        if self.irq_last:
            cols = {k: [[self.irq_first[k][0], v[0]], [self.irq_first[k][1], v[1]]] for k, v in self.irq_last.items()}
            out["irq"] = irq_matrix(cols, self.isolated)
            # the next matrix covers the next interval: rates stay current
            self.irq_first = dict(self.irq_last)
        return out


_OPEN: dict[int, int] = {}  # user id -> websockets open in this process (THOXDASH_WS_PER_USER)


class DeviceConsumer(AsyncWebsocketConsumer):
    # This consumer reads the device streams itself and takes no group messages: no channel-layer
    # subscription (one Redis connection less per viewer, and no way for the layer to drop it).
    channel_layer_alias = "thoxdash-no-channel-layer"

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        # bounded per user (in this process): each socket holds a Redis connection
        if _OPEN.get(user.pk, 0) >= settings.WS_PER_USER:
            await self.accept()  # then close with a code the page can read (a refusal is a bare 403)
            await self.close(code=4429)
            return
        _OPEN[user.pk] = _OPEN.get(user.pk, 0) + 1
        self.counted_user = user.pk
        self.device = self.scope["url_route"]["kwargs"]["device"]
        self.reader = AsyncDeviceReader.from_url(settings.REDIS_URL, settings.REDIS_PREFIX, self.device)
        await self.accept()
        self.task = asyncio.create_task(self.follow())

    async def disconnect(self, code: int) -> None:
        counted = getattr(self, "counted_user", None)
        if counted is not None:
            self.counted_user = None
            _OPEN[counted] = _OPEN.get(counted, 1) - 1
            if _OPEN[counted] <= 0:
                del _OPEN[counted]
        task = getattr(self, "task", None)
        if task:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        reader = getattr(self, "reader", None)
        if reader is not None:
            with contextlib.suppress(Exception):
                await reader.close()

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(message, separators=(",", ":")))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        return  # the browser only listens

    def wants_snapshot(self) -> bool:
        """`?snapshot=0`: the page shows a stored range and only needs updates (and liveness)."""
        return b"snapshot=0" not in (self.scope.get("query_string") or b"")

    async def snapshot(self) -> LiveState:
        now = time.time()
        config = await database_sync_to_async(_load_config)(self.device)
        if not self.wants_snapshot():
            await self.reader.start_at_end()
            await self.send_json({"type": "snapshot", "device": self.device, "now": now, "series": {}, "events": []})
            return LiveState(config, set(), settings.LIVE_WINDOW_S)
        records = await self.reader.window(now - settings.LIVE_WINDOW_S)
        state = await self.reader.state()
        cols = to_columns(records, keep_irq=True)
        live = LiveState(config, isolated_cpus(config, state), settings.LIVE_WINDOW_S)
        live.take(cols)
        latency = live.closed_latency(now)
        payload = assemble(cols, latency, SNAPSHOT_POINTS, config, live.isolated)
        live.derived_at = now
        parts, dropped = split_series(payload.pop("series"), settings.LIVE_PART_BYTES, SNAPSHOT_MAX_BYTES)
        head: dict[str, Any] = {"type": "snapshot", "device": self.device, "range_s": settings.LIVE_WINDOW_S,
                                "now": now, **payload, "series": parts[0], "parts": len(parts)}
        if dropped:
            head["truncated_series"] = dropped
        await self.send_json(head)
        for index, part in enumerate(parts[1:], start=1):
            await self.send_json({"type": "snapshot_part", "part": index, "parts": len(parts), "series": part})
        return live

    async def follow(self) -> None:
        min_gap = 1.0 / settings.LIVE_MAX_UPDATES_PER_S
        try:
            live = await self.snapshot()
            while True:
                started = time.monotonic()
                records = await self.reader.follow(block_ms=1000, count=2000)
                cols = to_columns(records, keep_irq=True)
                live.take(cols)
                now = time.time()
                series = cols["series"]
                for key, xy in live.closed_latency(now).items():
                    series[key] = xy
                message: dict[str, Any] = {}
                if series:
                    message.update(live.derived(now))  # forecast/IRQ only move with new data
                if cols["events"]:
                    message["events"] = clean_events(cols["events"])
                if series or message:
                    parts, _ = split_series(shrink(series, SNAPSHOT_POINTS), settings.LIVE_PART_BYTES,
                                            SNAPSHOT_MAX_BYTES)
                    for index, part in enumerate(parts):
                        extra = message if index == len(parts) - 1 else {}
                        await self.send_json({"type": "update", "now": now, **extra, "series": part})
                    await asyncio.sleep(max(0.0, min_gap - (time.monotonic() - started)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis gone (or a bug): tell the browser, which reconnects
            log.warning("live feed for %s stopped: %s: %s", self.device, exc.__class__.__name__, exc)
            with contextlib.suppress(Exception):
                await self.send_json({"type": "error", "message": "telemetry store unavailable; reconnecting"})
            with contextlib.suppress(Exception):
                await self.close(code=CLOSE_UNAVAILABLE)
