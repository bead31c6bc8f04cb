"""The on-device agent: schedules sources, publishes their records, survives Redis outages.

Each source runs on its own interval in a worker thread; a source that hangs past its timeout is
reported (`agent_source_up{source}` = 0, state `source_status`) and not waited on. Records go
through an OutboxBuffer, so a Redis outage loses nothing within the buffer's bound.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from collectors import bounds
from collectors.buffer import OutboxBuffer
from collectors.series import series_key
from collectors.sources.base import Source, SourceStatus
from collectors.store import OUTAGE_ERRORS, RECONNECT_MAX_S, TelemetryStore

log = logging.getLogger(__name__)

Hook = Callable[["Agent", float], None]
STATE_EVERY_S = 60.0


class Agent:
    def __init__(self, device: str, sources: list[Source], store: TelemetryStore | None,
                 buffer: OutboxBuffer | None = None, source_timeout: float = 10.0,
                 board: dict[str, Any] | None = None):
        self.device = device
        self.sources = sources
        self.store = store
        self.buffer = buffer if buffer is not None else OutboxBuffer()
        self.source_timeout = source_timeout
        self.board = board or {}
        self.status: dict[str, SourceStatus] = {s.name: SourceStatus() for s in sources}
        self.rejected: dict[str, int] = {}  # fields dropped over the bounds, per source (cumulative)
        self._next_due: dict[str, float] = {s.name: 0.0 for s in sources}
        self._running: dict[str, tuple[Future[list[dict[str, Any]]], float]] = {}
        self._pool = ThreadPoolExecutor(max_workers=max(2, min(8, len(sources))), thread_name_prefix="source")
        self.hooks: list[Hook] = []  # e.g. the action executor, run every tick
        self.registered = False
        self.published = 0
        self.wait_s = 0.9  # how long one tick waits for the sources it started
        self._last_status = 0.0
        self._backoff = 0.0
        self._retry_at = 0.0
        self._failed_store: TelemetryStore | None = None
        self.device_state: dict[str, Any] = {}  # the device's own config etc. (collectors.device_config)
        self._state_at = float("-inf")

    # -- one source ------------------------------------------------------------------------
    def _collect_one(self, source: Source, now: float) -> list[dict[str, Any]]:
        return source.collect(now)

    def collect_due(self, now: float, wait: bool = True) -> list[dict[str, Any]]:
        """Start every due source; return the records of those that finished in time.

        Only sources started in this call are waited for (at most `wait_s`); one still running
        from an earlier call is polled without waiting, so a hung source costs nothing per tick."""
        records: list[dict[str, Any]] = []
        fresh = set()
        for source in self.sources:
            if source.name in self._running or now < self._next_due[source.name]:
                continue
            # fixed rate (due + interval), so 0.25 s ticks do not let samples drift a second in ~70;
            # after a stall longer than one interval the schedule restarts from now (no burst)
            due = self._next_due[source.name]
            late = now - due >= source.interval
            self._next_due[source.name] = (now if late else due) + source.interval
            self._running[source.name] = (self._pool.submit(self._collect_one, source, now), time.monotonic())
            fresh.add(source.name)
        deadline = time.monotonic() + (min(self.source_timeout, self.wait_s) if wait else 0)
        for name, (future, started) in list(self._running.items()):
            remaining = max(0.0, deadline - time.monotonic()) if name in fresh else 0.0
            try:
                out = future.result(timeout=remaining) if wait else (future.result() if future.done() else None)
            except FutureTimeout:
                out = None
            except Exception as exc:  # a source failure is data, never a crash
                self._mark(name, False, f"{exc.__class__.__name__}: {exc}"[:300], now)
                del self._running[name]
                continue
            if out is None and not future.done():
                if time.monotonic() - started > self.source_timeout:
                    self._mark(name, False, f"hung: no answer in {self.source_timeout:g} s", now)
                continue
            del self._running[name]
            self._mark(name, True, "", now)
            records.extend(self._bounded(name, out or []))
        if fresh or self._status_due(now):  # the status record: with each sampling round, not per tick
            records.append(self._status_record(now))
        if self.device_state and now - self._state_at >= STATE_EVERY_S:  # its config, once a minute
            self._state_at = now
            records.append({"ts": now, "source": "device_config", "state": self.device_state})
        return records

    def _bounded(self, name: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A source's records within what a device may claim (collectors/bounds.py): fields over a
        bound are dropped, counted per source (`agent_source_rejected_total{source}`) and logged."""
        out = []
        for record in records:
            if not isinstance(record, dict):
                self.rejected[name] = self.rejected.get(name, 0) + 1
                continue
            if isinstance(record.get("values"), dict):
                clean, why = bounds.clean_values(record["values"])
                record = {**record, "values": clean}
            elif isinstance(record.get("state"), dict):
                clean, why = bounds.clean_state(record["state"])
                record = {**record, "state": clean}
            else:
                why = []
            if why:
                self.rejected[name] = self.rejected.get(name, 0) + len(why)
                log.warning("source %s: dropped %d field(s) over the bounds: %s", name, len(why), "; ".join(why[:3]))
            out.append(record)
        return out

    def _status_due(self, now: float) -> bool:
        return now - self._last_status >= 1.0

    def _mark(self, name: str, ok: bool, message: str, now: float) -> None:
        status = self.status[name]
        status.ok = ok
        status.message = message
        if ok:
            status.last_ok = now
        else:
            status.errors += 1
            log.warning("source %s: %s", name, message)

    def _status_record(self, now: float) -> dict[str, Any]:
        self._last_status = now
        values = {series_key("agent_source_up", source=n): 1.0 if s.ok else 0.0 for n, s in self.status.items()}
        values.update({series_key("agent_source_rejected_total", source=n): float(self.rejected.get(n, 0))
                       for n in self.status})
        values["agent_buffered_records"] = float(len(self.buffer))
        values["agent_dropped_records_total"] = float(self.buffer.dropped)
        return {"ts": now, "source": "agent", "values": values}

    # -- publishing --------------------------------------------------------------------------
    def publish(self, records: list[dict[str, Any]]) -> bool:
        """Buffer then flush; returns False (keeping everything buffered) while Redis is down.

        After a failure, reconnects are tried with a backoff (1 s doubling to RECONNECT_MAX_S), so an outage
        does not cost a connect attempt every tick."""
        self.buffer.add(records)
        store = self.store
        if store is None:
            return False
        if self.store is self._failed_store and time.monotonic() < self._retry_at:
            return False  # backing off; a new store is tried at once
        try:
            if not self.registered:
                store.report_device(self.device, board=self.board)
                self.registered = True
            self.published += self.buffer.flush(lambda chunk: store.publish(self.device, chunk))
            self._backoff, self._failed_store = 0.0, None
            return True
        except OUTAGE_ERRORS as exc:
            self._backoff = min(RECONNECT_MAX_S, max(1.0, self._backoff * 2))
            self._retry_at = time.monotonic() + self._backoff
            self._failed_store = self.store
            self.registered = False  # a restarted Redis has lost the device entry
            log.warning("redis unavailable, %d records buffered, retry in %.0f s: %s",
                        len(self.buffer), self._backoff, exc)
            return False

    def tick(self, now: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        records = self.collect_due(now)
        self.publish(records)
        for hook in self.hooks:
            try:
                hook(self, now)
            except Exception:
                log.exception("agent hook failed")
        return records

    def run(self, stop: threading.Event, tick_s: float = 0.25) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.tick()
            except Exception:  # a failure is data, never the end of the agent: next tick goes on
                log.exception("agent tick failed")
            stop.wait(max(0.0, tick_s - (time.monotonic() - started)))
        self.close()

    def close(self) -> None:
        for source in self.sources:
            try:
                source.close()
            except Exception:
                log.exception("closing source %s", source.name)
        self._pool.shutdown(wait=False, cancel_futures=True)


def default_sources(root: Path, interval: float | None = None) -> list[Source]:
    """Every source that applies to this machine, at its default interval."""
    from collectors.sources.registry import agent_sources

    return agent_sources(root, interval)
