"""Breach-to-webhook and device-silent-to-webhook latency with the full stack running.

Processes: Redis (already running), a prefork Celery worker, Celery beat (rules every
RULES_INTERVAL_S, 1 s by default), daphne (started by the bench stack; not on the path), and a
loopback receiver that checks the HMAC signature. A background fleet of simulated devices
(real AGX Orin telemetry replayed at 1 Hz) keeps the rules busy.

Each trial writes a runtime memory sample over its ceiling for one device straight into Redis
(as the agent does) and measures the time until the signed Alertmanager webhook for that breach
arrives; then it writes a normal sample and waits for the resolution.

With --alertmanager, a real Alertmanager (Debian's prometheus-alertmanager) also gets the alerts
through an `alertmanager-api` webhook, and each trial also measures the time until the alert is
listed by its GET /api/v2/alerts (polled every 50 ms), and until it is gone from it on resolve.

Device-silent trials: `--silent` devices send 1 Hz agent status records and stop one after
another (0.37 s apart, so they land at different phases of the beat second); each one's time from
its last sample to its device_down webhook is measured. Its floor is THOXDASH_STALE_AFTER_S (the
silence that defines "down"), printed beside it as the peer; what the pipeline adds is the rest.

    .venv/bin/python bench/alert_latency.py [--trials 30] [--devices 10] [--alertmanager]
                                            [--silent 20] [--stale-after 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sim import Fleet  # noqa: E402
from bench.stack import start  # noqa: E402
from collectors.store import TelemetryStore, connect  # noqa: E402
from tests.receiver import Receiver  # noqa: E402

ALERT = "runtime_memory_over_ceiling"

KEY = 'runtime_memory_bytes{runtime="ollama"}'


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--devices", type=int, default=10, help="background fleet size")
    ap.add_argument("--alertmanager", action="store_true", help="also push to a real Alertmanager and time it")
    ap.add_argument("--silent", type=int, default=20, help="device-silent trials (0: none)")
    ap.add_argument("--stale-after", type=float, default=15.0, help="THOXDASH_STALE_AFTER_S of the stack")
    args = ap.parse_args(argv)
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"thoxbench:{uuid.uuid4().hex[:8]}:"
    store = TelemetryStore(connect(redis_url), prefix=prefix)
    stack = start(redis_url, prefix, extra_env={"THOXDASH_STALE_AFTER_S": f"{args.stale_after:g}"})
    fleet = Fleet(store, args.devices, name="bg")
    stop = threading.Event()

    def background() -> None:
        n = 0
        t0 = time.time()
        while not stop.is_set():
            fleet.tick(time.time())
            n += 1
            stop.wait(max(0.0, t0 + n - time.time()))

    latencies: list[float] = []
    resolve: list[float] = []
    am_fire: list[float] = []
    am_resolve: list[float] = []
    silent: list[float] = []
    am = None
    try:
        if args.alertmanager:
            import tempfile

            from tests.alertmanager import Alertmanager

            am = Alertmanager(Path(tempfile.mkdtemp(prefix="thoxdash-bench-am-"))).__enter__()
            stack.manage("webhook", "add", am.url, "--format", "alertmanager-api")

        def am_wait(present: bool, since: float) -> float:
            assert am is not None
            while time.time() - since < 30:
                if bool(am.alerts(alertname=ALERT, device="lat-probe")) == present:
                    return time.time() - since
                time.sleep(0.05)
            raise TimeoutError(f"alertmanager: alert {'never listed' if present else 'still listed'}")

        with Receiver(secret="bench-secret") as rx:
            stack.manage("webhook", "add", rx.url, "--format", "alertmanager", "--secret", "bench-secret")
            threading.Thread(target=background, daemon=True).start()
            device = "lat-probe"
            store.register_device(device, board="bench")
            store.publish(device, [{"ts": time.time(), "source": "bench", "values": {KEY: 3.0e9}}])
            time.sleep(3)  # worker and beat warm
            for trial in range(args.trials):
                seen = len(rx.received)
                time.sleep(0.37 * (trial % 3))  # land at different phases of the beat second
                t0 = time.time()
                store.publish(device, [{"ts": t0, "source": "bench", "values": {KEY: 5.9e9}}])
                got = rx.wait_for(seen + 1, timeout_s=30)[seen]
                assert got.signature_ok and got.json["status"] == "firing", got.json
                latencies.append(got.at - t0)
                if am is not None:
                    am_fire.append(am_wait(True, t0))
                t1 = time.time()
                store.publish(device, [{"ts": t1, "source": "bench", "values": {KEY: 3.0e9}}])
                got = rx.wait_for(seen + 2, timeout_s=30)[seen + 1]
                assert got.json["status"] == "resolved", [(r.at, r.json["status"], [
                    (a["labels"]["alertname"], a["status"]) for a in r.json["alerts"]]) for r in rx.received[-4:]]
                resolve.append(got.at - t1)
                if am is not None:
                    am_resolve.append(am_wait(False, t1))
            silent = silent_trials(store, rx, args.silent, args.stale_after) if args.silent else []
    finally:
        stop.set()
        if am is not None:
            am.__exit__()
        stack.stop()
        store.delete_prefix()
    ms = [x * 1000 for x in latencies]
    rs = [x * 1000 for x in resolve]
    print(f"breach -> webhook, {len(ms)} trials, {args.devices} background devices at 1 Hz, "
          f"rules every 1 s (beat), prefork worker x2:")
    print(f"  fire:    p50 {statistics.median(ms):.0f} ms  p99 {pct(ms, 0.99):.0f} ms  max {max(ms):.0f} ms")
    print(f"  resolve: p50 {statistics.median(rs):.0f} ms  p99 {pct(rs, 0.99):.0f} ms  max {max(rs):.0f} ms")
    print(f"  within 2 s: {sum(1 for x in ms if x <= 2000)}/{len(ms)}")
    if am_fire:
        af, ar = [x * 1000 for x in am_fire], [x * 1000 for x in am_resolve]
        print("breach -> listed by a real Alertmanager's GET /api/v2/alerts (alertmanager-api), same trials:")
        print(f"  fire:    p50 {statistics.median(af):.0f} ms  p99 {pct(af, 0.99):.0f} ms  max {max(af):.0f} ms")
        print(f"  resolve: p50 {statistics.median(ar):.0f} ms  p99 {pct(ar, 0.99):.0f} ms  max {max(ar):.0f} ms")
    if silent:
        over = [x - args.stale_after for x in silent]
        print(f"device silent -> device_down webhook, {len(silent)} devices stopping 0.37 s apart "
              f"(THOXDASH_STALE_AFTER_S {args.stale_after:g} s: the floor):")
        print(f"  last sample -> webhook: p50 {statistics.median(silent):.2f} s  p99 {pct(silent, 0.99):.2f} s  "
              f"max {max(silent):.2f} s")
        print(f"  beyond the stale limit: p50 {statistics.median(over) * 1000:.0f} ms  "
              f"p99 {pct(over, 0.99) * 1000:.0f} ms")
    return 0


def silent_trials(store: TelemetryStore, rx: Receiver, count: int, stale_after: float) -> list[float]:
    """`count` devices report at 1 Hz, then fall silent one by one; last sample -> webhook (s)."""
    devices = [f"silent-{i}" for i in range(count)]
    for device in devices:
        store.register_device(device, board="bench")
    key = 'agent_source_up{source="host"}'
    last: dict[str, float] = {}
    prev: dict[str, float] = {}
    stop_at = {d: time.time() + 5 + 0.37 * i for i, d in enumerate(devices)}
    while len(last) < count:
        now = time.time()
        for device in devices:
            if device in last:
                continue
            if now >= stop_at[device]:
                last[device] = prev.get(device, now)
            elif now - prev.get(device, 0.0) >= 1.0:
                store.publish(device, [{"ts": now, "source": "agent", "values": {key: 1.0}}])
                prev[device] = now
        time.sleep(0.05)
    arrived: dict[str, float] = {}
    deadline = time.time() + stale_after + 60
    seen = 0
    while len(arrived) < count and time.time() < deadline:
        with rx.arrived:
            rx.arrived.wait(0.5)
            fresh = rx.received[seen:]
            seen = len(rx.received)
        for got in fresh:
            for alert in got.json.get("alerts", []):
                device = alert["labels"].get("device")
                if (alert["labels"].get("alertname") == "device_down" and alert["status"] == "firing"
                        and device in last and device not in arrived):
                    arrived[device] = got.at
    return [arrived[d] - last[d] for d in devices if d in arrived]



if __name__ == "__main__":
    sys.exit(main())
