"""Costs of the fleet-trust bounds, each beside the code it replaced, measured in the same run.

  python -m bench.fleet_trust [--repeat 5]

1. cpulist parsing: the unbounded expansion the IRQ rule used before (a copy of
   advisors/config.parse_cpulist at 5272b10, the peer) against collectors.text.cpus_in, on lists a
   device can report. The peer is not run on `0-99999999999` (it would not finish); its cost there is
   extrapolated from the measured 10^6 and 10^7 cases.
2. The rules' window: Window.from_records with the bounds (clean_values/clean_state per record)
   against the same records added without them (the peer), 300 records x 50 series.
3. The registry readers: store.devices() / latest_all() on 1,000 devices with the validation
   against a raw HGETALL + json.loads loop (the peer), on this Redis under a bench prefix.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from advisors.rules.window import Window
from collectors.store import TelemetryStore, connect
from collectors.text import cpus_in, is_uint


def unbounded_cpulist(text: str | None) -> set[str]:
    """advisors/config.parse_cpulist as of 5272b10 (the peer)."""
    out: set[str] = set()
    for part in str(text or "").replace(" ", "").split(","):
        lo, _, hi = part.partition("-")
        if not is_uint(lo) or (hi and not is_uint(hi)):
            continue
        out.update(str(n) for n in range(int(lo), int(hi or lo) + 1))
    return out


def timed(fn: Callable[[], Any], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def cpulists(repeat: int) -> None:
    print("1. cpulist parsing (median seconds)")
    print(f"{'input':>20} {'before (unbounded)':>20} {'after (cpus_in)':>18} {'CPUs after':>11}")
    for text in ("0-7", "0-4095", "0-999999", "0-9999999"):
        before = timed(lambda t=text: unbounded_cpulist(t), max(1, repeat if len(text) < 8 else 1))
        after = timed(lambda t=text: cpus_in(t), repeat)
        print(f"{text:>20} {before:>20.6f} {after:>18.6f} {len(cpus_in(text)):>11}")
    after = timed(lambda: cpus_in("0-99999999999"), repeat)
    per_cpu = timed(lambda: unbounded_cpulist("0-999999"), 1) / 1_000_000
    print(f"{'0-99999999999':>20} {'~%.0f (extrapolated)' % (per_cpu * 1e11):>20} {after:>18.6f} "
          f"{len(cpus_in('0-99999999999')):>11}")


class PlainWindow(Window):
    """Window.add as it was before the bounds (the peer)."""

    def add(self, record: dict[str, Any]) -> None:
        ts = record["ts"]
        if "values" in record:
            for key, value in record["values"].items():
                self.series.setdefault(key, []).append((ts, float(value)))
        elif "state" in record:
            self.state.update(record["state"])


def windows(repeat: int) -> None:
    now = time.time()
    records = [{"ts": now - 300 + i, "source": "s",
                "values": {f'm_{k}{{gpu="0"}}': float(i + k) for k in range(50)}} for i in range(300)]
    records += [{"ts": now, "source": "tuning", "state": {"isolated_cpus": "4-7", "thp": "madvise",
                                                         "cpu_governor": {str(c): "schedutil" for c in range(8)}}}]
    before = timed(lambda: PlainWindow.from_records(now, records), repeat)
    after = timed(lambda: Window.from_records(now, records), repeat)
    print("\n2. rule window, 300 records x 50 series + 1 state record (median ms)")
    print(f"before (no bounds) {before * 1000:.2f}   after (bounded) {after * 1000:.2f}   "
          f"ratio {after / before:.2f}")


def readers(repeat: int, url: str | None) -> None:
    store = TelemetryStore(connect(url), prefix=f"benchtrust:{uuid.uuid4().hex[:6]}:")
    try:
        pipe = store.r.pipeline(transaction=False)
        for i in range(1000):
            pipe.hset(f"{store.prefix}devices", f"dev-{i}", json.dumps({"board": {"model": "Orin"}, "notes": ""}))
            pipe.hset(f"{store.prefix}dev:dev-{i}:latest", mapping={"__ts": repr(time.time()),
                                                                      **{f"m_{k}": "1.0" for k in range(30)}})
        pipe.execute()

        def raw_devices() -> dict[str, Any]:
            raw = store.r.hgetall(f"{store.prefix}devices")
            names = sorted(raw)
            p = store.r.pipeline(transaction=False)
            for device in names:
                p.hget(f"{store.prefix}dev:{device}:latest", "__ts")
            return {d: {**json.loads(raw[d]), "last_seen": t} for d, t in zip(names, p.execute(), strict=True)}

        def raw_latest_all() -> dict[str, Any]:
            names = sorted(store.r.hkeys(f"{store.prefix}devices"))
            p = store.r.pipeline(transaction=False)
            for device in names:
                p.hgetall(f"{store.prefix}dev:{device}:latest")
            return dict(zip(names, p.execute(), strict=True))

        print("\n3. registry readers, 1,000 devices x 30 series (median ms)")
        for name, peer, ours in (("devices()", raw_devices, store.devices),
                                 ("latest_all()", raw_latest_all, store.latest_all)):
            before, after = timed(peer, repeat), timed(ours, repeat)
            print(f"{name:>14}: before (raw) {before * 1000:7.1f}   after (validated, bounded) {after * 1000:7.1f}")
    finally:
        store.delete_prefix()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--redis", default=None)
    args = parser.parse_args()
    cpulists(args.repeat)
    windows(args.repeat)
    readers(args.repeat, args.redis)


if __name__ == "__main__":
    main()
