"""Per-process cache of each device's rule window, topped up incrementally from Redis.

Reading a device's whole 300 s window every second (about 300 telemetry records of ~50 series,
plus requests) costs tens of ms of JSON decoding; reading only the entries added since the last
cycle costs well under a millisecond. Each worker process keeps its own copies (evaluations of one
device may land on any process); an entry is rebuilt from scratch when it is older than the window.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from advisors.rules import Window
from collectors.store import TelemetryStore, decode_entry, decode_state

log = logging.getLogger(__name__)
STREAMS = ("telemetry", "requests", "events")


@dataclass
class _Entry:
    window: Window
    last_ids: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class LiveWindows:
    def __init__(self, max_devices: int = 1000):
        self.max_devices = max_devices
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def _entry(self, key: tuple[str, str]) -> _Entry:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(Window(now=0.0))
                while len(self._entries) > self.max_devices:
                    self._entries.popitem(last=False)
            self._entries.move_to_end(key)
            return entry

    @contextmanager
    def lease(self, store: TelemetryStore, device: str, now: float, window_s: float) -> Iterator[Window]:
        """The device's window as of `now`, held exclusively while the caller evaluates it."""
        entry = self._entry((store.prefix, device))
        with entry.lock:
            window = entry.window
            if now < window.now or now - window.now > window_s:  # cold, or the clock moved back
                entry.window = window = Window(now=now)
                entry.last_ids = {}
            keys = store.keys(device)
            pipe = store.r.pipeline(transaction=False)
            for stream in STREAMS:
                last = entry.last_ids.get(stream)
                pipe.xrange(keys.stream(stream), f"({last}" if last else str(int((now - window_s) * 1000)), "+")
            pipe.hgetall(keys.state)
            pipe.hget(keys.latest, "__ts")
            *results, state_raw, latest_ts = pipe.execute()
            fresh = []
            for stream, entries in zip(STREAMS, results, strict=True):
                # everything read is kept, even a record stamped a moment after `now` (written while
                # this cycle started) or ahead of it (a device clock running fast): skipping it would
                # lose it for good, since the next read starts after it
                for entry_id, fields in entries:
                    entry.last_ids[stream] = entry_id
                    try:
                        record = decode_entry(fields)
                        float(record["ts"])
                    except Exception:  # one malformed entry is skipped, never the device's rules
                        log.warning("%s %s entry %s: not a record, skipped", device, stream, entry_id)
                        continue
                    fresh.append(record)
            fresh.sort(key=lambda r: float(r["ts"]))
            for record in fresh:
                try:
                    window.add(record)
                except (TypeError, ValueError, AttributeError):
                    log.warning("%s: record at %s has a malformed body, skipped", device, record.get("ts"))
            window.now = now
            window.trim(now - window_s)
            window.state = {**decode_state(state_raw), **window.state}
            seen = _float(latest_ts)
            if seen is not None and (window.last_seen is None or seen > window.last_seen):
                window.last_seen = seen
            yield window

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _float(raw: object) -> float | None:
    try:
        return float(raw) if raw is not None else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


WINDOWS = LiveWindows()
