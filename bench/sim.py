"""Simulated fleet: N devices at 1 Hz, each replaying a real recording from its own offset.

Every tick publishes, per device, the recorded records of the next recorded second with their
timestamps shifted to now (one store.publish pipeline per device). The runtime series of the demo
recording are simulated, so they are stripped: breaches are injected on purpose by the benches.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collectors.recording import load
from collectors.store import TelemetryStore

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "collectors" / "demo" / "agx-orin-demo.jsonl"


def seconds_of(path: Path = DEMO) -> tuple[dict[str, Any], list[list[dict[str, Any]]]]:
    """The recording's header and its records grouped per recorded second (runtime series dropped)."""
    recording = load(str(path))
    first = recording.records[0]["ts"]
    buckets: dict[int, list[dict[str, Any]]] = {}
    for record in recording.records:
        if "values" in record:
            values = {k: v for k, v in record["values"].items() if not k.startswith("runtime_")}
            record = {**record, "values": values}
        elif "event" in record or "request" in record:
            continue  # simulated runtime activity
        buckets.setdefault(int(record["ts"] - first), []).append(record)
    last = max(buckets)
    return recording.header, [buckets.get(i, []) for i in range(last + 1)]


@dataclass
class Fleet:
    store: TelemetryStore
    devices: int
    name: str = "sim"
    first: int = 0
    path: Path = DEMO
    published: int = 0
    ticks: int = 0
    late_ticks: int = 0
    tick_s: list[float] = field(default_factory=list)
    extra: dict[str, dict[str, float]] = field(default_factory=dict)  # device -> injected values

    def __post_init__(self) -> None:
        self.header, self.seconds = seconds_of(self.path)
        self.ids = [f"{self.name}-{i:04d}" for i in range(self.first, self.first + self.devices)]
        for device in self.ids:
            self.store.register_device(device, board=self.header.get("board") or {},
                                       notes="bench fleet: real AGX Orin tegrastats replayed", replay=True)

    def tick(self, now: float) -> None:
        started = time.perf_counter()
        for i, device in enumerate(self.ids):
            bucket = self.seconds[(self.ticks + i * 7) % len(self.seconds)]
            records = [{**r, "ts": now} for r in bucket]
            if device in self.extra:
                records.append({"ts": now, "source": "bench", "values": dict(self.extra[device])})
            if records:
                self.published += self.store.publish(device, records)
        self.ticks += 1
        self.tick_s.append(time.perf_counter() - started)

    def run(self, seconds: float, on_tick: Callable[[float], None] | None = None) -> None:
        """Tick at 1 Hz on the wall clock for `seconds`; count ticks that overran their second."""
        start = time.time()
        n = 0
        while time.time() - start < seconds:
            due = start + n
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1.0:
                self.late_ticks += 1
            now = time.time()
            self.tick(now)
            if on_tick:
                on_tick(now)
            n += 1


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.sim --devices N [--name P] [--seconds S]`: run a simulated fleet."""
    import argparse
    import os

    from collectors.store import connect

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--name", default="sim")
    parser.add_argument("--seconds", type=float, default=3600.0)
    parser.add_argument("--first", type=int, default=0, help="index of this process's first device")
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args(argv)
    fleet = Fleet(TelemetryStore(connect(args.redis)), args.devices, name=args.name, first=args.first)
    fleet.run(args.seconds)
    ticks = sorted(fleet.tick_s)
    print(json.dumps({"published": fleet.published, "ticks": fleet.ticks, "late_ticks": fleet.late_ticks,
                      "tick_p50_s": ticks[len(ticks) // 2] if ticks else None,
                      "tick_p99_s": ticks[int(len(ticks) * 0.99)] if ticks else None}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
