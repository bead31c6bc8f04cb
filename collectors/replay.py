"""Feed a recording into Redis as a live device, timestamps shifted to now.

At `speed` X the recorded gaps shrink X times and so do the shifted timestamps, so rules and charts
see the device as live. `speed <= 0` sends everything at once, shifted so the last record is now.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from collectors.device_config import recording_config
from collectors.recording import Recording
from collectors.store import TelemetryStore


def replay(recording: Recording, store: TelemetryStore, device: str, speed: float = 1.0,
           loop: bool = False, stop: threading.Event | None = None,
           on_batch: Callable[[list[dict[str, Any]]], None] | None = None) -> int:
    """Publish the records at their recorded pace; returns how many were sent."""
    if not recording.records:
        return 0
    stop = stop or threading.Event()
    header = recording.header
    store.register_device(device, board=header.get("board") or {}, notes=header.get("notes"), replay=True)
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
            if speed > 0:
                new_ts = start + (record["ts"] - first) / speed
            else:
                new_ts = start - (last - record["ts"])
            if batch and new_ts != batch[-1]["ts"]:
                sent += _send(store, device, batch, on_batch)
                batch = []
            if speed > 0:
                delay = new_ts - time.time()
                if delay > 0 and stop.wait(delay):
                    return sent
            batch.append({**record, "ts": round(new_ts, 6)})
        if batch:
            sent += _send(store, device, batch, on_batch)
        if not loop or speed <= 0:
            break
        # leave one recorded step between loops so timestamps keep increasing
        if stop.wait(max(0.5, (last - first) / max(len(recording.records), 1) / speed)):
            break
    return sent


def _send(store: TelemetryStore, device: str, batch: list[dict[str, Any]],
          on_batch: Callable[[list[dict[str, Any]]], None] | None) -> int:
    store.publish(device, batch)
    if on_batch:
        on_batch(batch)
    return len(batch)
