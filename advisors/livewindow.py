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
from collectors.store import TelemetryStore

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
            # everything read is kept, even a record stamped a moment after `now` (written while
            # this cycle started) or ahead of it (a device clock running fast): skipping it would
            # lose it for good, since the next read starts after it; bad entries are skipped
            fresh, state = store.read_after(device, STREAMS, entry.last_ids, now - window_s)
            for record in fresh:
                try:
                    window.add(record)
                except (TypeError, ValueError, AttributeError):
                    log.warning("%s: record at %s has a malformed body, skipped", device, record.get("ts"))
            window.now = now
            window.trim(now - window_s)
            window.state = {**state, **window.state}
            if window.last_seen is None:  # cold: when did the device last send anything?
                window.last_seen = store.last_seen(device)
            yield window

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


WINDOWS = LiveWindows()
