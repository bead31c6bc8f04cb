"""The proxy's link to the store, in a thread of its own so Redis never blocks serving.

Every `interval` seconds it publishes the finished requests (and a values record of per-model
latency means and the admission gauges), and every `admission_interval` seconds it re-reads the
admission hash. While Redis is down records wait in an OutboxBuffer (memory, then a spill file),
exactly as in the agent; the proxy keeps serving with the last limits it read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import redis

from collectors.buffer import OutboxBuffer
from collectors.proxy.series import latency_values
from collectors.store import TelemetryStore

log = logging.getLogger(__name__)


class Publisher:
    def __init__(
        self,
        store: TelemetryStore | None,
        device: str,
        runtime: str,
        buffer: OutboxBuffer | None = None,
        interval: float = 0.5,
        admission_interval: float = 1.0,
        on_admission: Callable[[dict[str, Any]], object] | None = None,
        gauges: Callable[[], dict[str, float]] | None = None,
        build: Callable[[Any], list[dict[str, Any]]] | None = None,
    ):
        self.store = store
        self.device = device
        self.runtime = runtime
        self.buffer = buffer if buffer is not None else OutboxBuffer()
        self.interval = interval
        self.admission_interval = admission_interval
        self.on_admission = on_admission
        self.gauges = gauges
        self.build = build
        self.pending: deque[Any] = deque()
        self.published = 0
        self.redis_ok: bool | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_admission = 0.0
        self._registered = False

    # called from the event loop: cheap, never blocks
    def add(self, items: Iterable[Any]) -> None:
        """Records, or whatever `build` turns into records (done here, off the event loop)."""
        self.pending.extend(items)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="proxy-publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._wake.wait(self.interval)
            self._wake.clear()
        self.tick(final=True)

    def tick(self, final: bool = False) -> None:
        now = time.time()
        records: list[dict[str, Any]] = []
        while self.pending:
            item = self.pending.popleft()
            if self.build is None:
                records.append(item)
                continue
            try:
                records.extend(self.build(item))
            except Exception:  # a record that cannot be built is lost, not the proxy
                log.exception("building a request record")
        requests = [r["request"] for r in records if "request" in r]
        gauges = self.gauges() if self.gauges is not None else {}
        if requests or gauges:
            records.append(
                {
                    "ts": now,
                    "source": "proxy",
                    "values": {**gauges, **latency_values(self.runtime, requests)},
                }
            )
        self.buffer.add(records)
        if self.store is None:
            return
        store = self.store
        try:
            if not self._registered:
                self.store.report_device(self.device)
                self._registered = True
            if len(self.buffer):
                self.published += self.buffer.flush(
                    lambda chunk: store.publish(self.device, chunk)
                )
            if self.on_admission is not None and (now >= self._next_admission or final):
                self._next_admission = now + self.admission_interval
                if not final:
                    self.on_admission(self.store.admission(self.device))
            if self.redis_ok is False:
                log.warning("redis is back: published the buffered records")
            self.redis_ok = True
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            if self.redis_ok is not False:
                log.warning(
                    "redis unavailable, buffering records (%d so far): %s", len(self.buffer), exc
                )
            self.redis_ok = False
