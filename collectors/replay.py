"""Feed a recording into Redis as a live device, timestamps shifted to now.

At `speed` X the recorded gaps shrink X times and so do the shifted timestamps, so rules and charts
see the device as live. `speed <= 0` sends everything at once, shifted so the last record is now.

A Redis outage is ridden out: the batch in hand is retried with a backoff (0.5 s doubling to RECONNECT_MAX_S)
until Redis answers, the device is registered again (a restarted Redis may have lost it), and the
replay goes on, catching up on what it held back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from collectors.device_config import recording_config
from collectors.recording import Recording
from collectors.store import OUTAGE_ERRORS, RECONNECT_MAX_S, TelemetryStore

log = logging.getLogger(__name__)


def replay(recording: Recording, store: TelemetryStore, device: str, speed: float = 1.0,
           loop: bool = False, stop: threading.Event | None = None,
           on_batch: Callable[[list[dict[str, Any]]], None] | None = None) -> int:
    """Publish the records at their recorded pace; returns how many were sent."""
    if not recording.records:
        return 0
    stop = stop or threading.Event()
    header = recording.header
    feed = _Feed(store, device, header, stop, on_batch)
    feed.register()
    first = recording.records[0]["ts"]
    last = recording.records[-1]["ts"]
    # the device's own config travels with its telemetry, into its state (as the agent does)
    own = {"config": recording_config(header)}
    sent = 0
    while not stop.is_set():
        start = time.time()
        lead = start if speed > 0 else start - (last - first)
        batch: list[dict[str, Any]] = [{"ts": round(lead, 6), "source": "replay", "state": own}]
        sent -= 1  # goes out with the first batch; `sent` counts the recording's records
        for record in recording.records:
            new_ts = start + (record["ts"] - first) / speed if speed > 0 else start - (last - record["ts"])
            if batch and new_ts != batch[-1]["ts"]:
                sent += feed.send(batch)
                batch = []
            if speed > 0:
                delay = new_ts - time.time()
                if delay > 0 and stop.wait(delay):
                    return sent
            batch.append({**record, "ts": round(new_ts, 6)})
        if batch:
            sent += feed.send(batch)
        if not loop or speed <= 0:
            break
        # leave one recorded step between loops so timestamps keep increasing
        if stop.wait(max(0.5, (last - first) / max(len(recording.records), 1) / speed)):
            break
    return sent


class _Feed:
    """Publishes batches for one replayed device, waiting out Redis outages."""

    def __init__(self, store: TelemetryStore, device: str, header: dict[str, Any], stop: threading.Event,
                 on_batch: Callable[[list[dict[str, Any]]], None] | None):
        self.store, self.device, self.header, self.stop, self.on_batch = store, device, header, stop, on_batch
        self.outages = 0

    def register(self) -> None:
        self.store.register_device(self.device, board=self.header.get("board") or {},
                                   notes=self.header.get("notes"), replay=True)

    def send(self, batch: list[dict[str, Any]]) -> int:
        backoff = 0.0
        while True:
            try:
                if backoff:
                    self.register()
                self.store.publish(self.device, batch)
                break
            except OUTAGE_ERRORS as exc:
                if not backoff:
                    self.outages += 1
                backoff = min(RECONNECT_MAX_S, max(0.5, backoff * 2))
                log.warning("redis unavailable (%s); replay of %s retries in %.1f s", exc, self.device, backoff)
                if self.stop.wait(backoff):
                    return 0
        if backoff:
            log.info("redis is back; replay of %s goes on", self.device)
        if self.on_batch:
            self.on_batch(batch)
        return len(batch)
