"""What GET /metrics costs for a fleet: request histograms counted from the request streams, plus the
exposition of every device's latest values (thoxdash.histograms, thoxdash.metrics.render).

200 devices (default), each with ~50 latest series and N new requests per scrape interval (default
150: 10 requests/s and a 15 s scrape). Prints, per pass, the wall time of `catch_up` (counting the
new requests of every device), of reading the histogram hashes, and of rendering the exposition,
and the body size. Uses a private Redis prefix, deleted afterwards.

Usage: .venv/bin/python -m bench.metrics_cost [--devices 200] [--requests 150] [--passes 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "thoxdash.settings")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--requests", type=int, default=150)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()

    import django

    django.setup()
    from collectors.store import TelemetryStore, connect
    from thoxdash import histograms
    from thoxdash.metrics import render

    store = TelemetryStore(connect(args.redis), prefix=f"thoxbench:{uuid.uuid4().hex[:8]}:")
    devices = [f"bench-{i:03d}" for i in range(args.devices)]
    values = {"gpu_load_ratio": 0.5, "gpu_freq_hz": 9e8, "ram_used_bytes": 5e9, "ram_total_bytes": 8e9,
              **{f'cpu_load_ratio{{cpu="{c}"}}': 0.2 for c in range(8)},
              **{f'cpu_freq_hz{{cpu="{c}"}}': 1.5e9 for c in range(8)},
              **{f'temperature_celsius{{zone="z{z}"}}': 50.0 for z in range(8)},
              **{f'power_watts{{rail="r{r}"}}': 3.0 for r in range(4)},
              **{f'runtime_memory_bytes{{runtime="rt{r}"}}': 1e9 for r in range(2)}}
    try:
        for device in devices:
            store.register_device(device)
        print(f"{args.devices} devices, {len(values)} series each, {args.requests} new requests per device per pass")
        print(f"{'pass':>4} {'counted':>8} {'catch_up ms':>12} {'read ms':>8} {'render ms':>10} {'body KB':>8}")
        for n in range(args.passes):
            now = time.time()
            for device in devices:
                records = [{"ts": now - 1 + i / args.requests, "source": "request", "request": {
                    "runtime": "ollama", "model": f"m{i % 3}", "status": 200 if i % 20 else 500,
                    "ttft_s": 0.05 + (i % 10) * 0.05, "total_s": 1.0 + (i % 7), "queue_s": 0.01,
                    "completion_tokens": 100, "completion_s": 1.0 + (i % 7) * 0.5}} for i in range(args.requests)]
                store.publish(device, [{"ts": now, "source": "jtop", "values": values}, *records])
            t0 = time.perf_counter()
            counted = histograms.catch_up(store.r, store.prefix, devices)
            t1 = time.perf_counter()
            hist = histograms.read_all(store.r, store.prefix, devices)
            latest = store.latest_all()
            t2 = time.perf_counter()
            body = render(latest, now=time.time(), stale_after_s=60, histograms=hist)
            t3 = time.perf_counter()
            print(f"{n + 1:>4} {counted:>8} {1000 * (t1 - t0):>12.0f} {1000 * (t2 - t1):>8.0f} "
                  f"{1000 * (t3 - t2):>10.0f} {len(body) / 1000:>8.0f}")
    finally:
        store.delete_prefix()
    return 0


if __name__ == "__main__":
    sys.exit(main())
