"""Fleet bench: N simulated devices at 1 Hz into one Redis, rules by beat + Celery workers.

    python -m bench.fleet [--devices 200] [--duration 120] [--workers 2] [--concurrency 2]

Each device replays the real AGX Orin tegrastats recording (bench.sim) from its own offset. Beat
runs evaluate_all every THOXDASH_RULES_INTERVAL_S (1 s), which sends the devices in batches of
THOXDASH_RULES_BATCH (--batch) as evaluate_batch tasks; the workers evaluate them. After a
warm-up, ceiling breaches are injected into some devices, one per second, and the time from
injection to the alert row is measured. Printed:
  - ingest: records/s published vs the target, ticks that overran their second;
  - rules: device evaluations completed per second vs devices (1.0 = every device every cycle),
    expired (dropped) batches, task run time p50/p99 (per batch task and per device);
  - Redis: bytes per device now, bytes per raw record and per rollup entry, bytes per device-day
    raw and rolled up, and the bound per device implied by the age limits (raw retention,
    rollup retention per step) and by the count caps alone;
  - alert latency p50/p99 (injection -> alert row).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from typing import Any


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def devices_done(name: str, result: Any) -> int:
    """Devices one finished rules task evaluated (evaluate_batch returns {"devices": n, ...})."""
    if name == "advisors.tasks.evaluate_device":
        return 1
    if name != "advisors.tasks.evaluate_batch":
        return 0
    try:
        value = ast.literal_eval(result) if isinstance(result, str) else result
        return int(value.get("devices", 0)) - int(value.get("failed", 0))
    except (ValueError, SyntaxError, AttributeError, TypeError):
        return 0


class TaskEvents:
    """Counts rules task outcomes from the workers' Celery events (-E)."""

    def __init__(self, app: Any):
        self.app = app
        self.names: dict[str, str] = {}
        self.done: list[tuple[float, str, float, int]] = []  # (time, name, runtime, devices)
        self.outcomes: Counter[str] = Counter()
        self._stop = threading.Event()

    def run(self) -> None:
        def received(event: dict[str, Any]) -> None:
            self.names[event["uuid"]] = event.get("name", "?")

        def succeeded(event: dict[str, Any]) -> None:
            name = self.names.pop(event["uuid"], "?")
            self.done.append(
                (
                    time.time(),
                    name,
                    float(event.get("runtime") or 0.0),
                    devices_done(name, event.get("result")),
                )
            )
            self.outcomes[f"{name}:succeeded"] += 1

        def other(kind: str):
            def handler(event: dict[str, Any]) -> None:
                self.outcomes[f"{self.names.get(event['uuid'], '?')}:{kind}"] += 1

            return handler

        with self.app.connection() as conn:
            recv = self.app.events.Receiver(
                conn,
                handlers={
                    "task-received": received,
                    "task-succeeded": succeeded,
                    "task-failed": other("failed"),
                    "task-revoked": other("revoked"),
                    "task-rejected": other("rejected"),
                    "task-retried": other("retried"),
                },
            )
            while not self._stop.is_set():
                try:
                    recv.capture(limit=None, timeout=1.0, wakeup=False)
                except TimeoutError:
                    continue
                except Exception:  # socket.timeout and kombu's own
                    continue

    def stop(self) -> None:
        self._stop.set()


def memory_report(store: Any, devices: list[str], calibrate_s: int = 7200) -> dict[str, float]:
    """Redis bytes per device now, plus per-record costs measured on a calibration device that gets
    `calibrate_s` seconds of the real recording (1 Hz) and its rollups, so stream overheads are
    amortised as they are over a day; then the bound per device that the age limits imply, checked
    by trimming the calibration device with them."""
    from django.conf import settings

    from bench.sim import seconds_of
    from collectors.store import MAXLEN, ROLLUP_MAXLEN
    from thoxdash.rollup import STEPS, rollup_device, trim_device

    r = store.r
    total = 0
    for key in r.scan_iter(match=f"{store.prefix}dev:*", count=1000):
        total += r.memory_usage(key, samples=0) or 0
    _header, seconds = seconds_of()
    calib = "fleet-calibration"
    now = time.time()
    start = now - calibrate_s
    batch = []
    for i in range(calibrate_s):
        batch.extend({**rec, "ts": start + i} for rec in seconds[i % len(seconds)])
        if len(batch) >= 2000:
            store.publish(calib, batch)
            batch = []
    store.publish(calib, batch)
    tele = store.keys(calib).telemetry
    raw_records = r.xlen(tele)
    raw_bytes = (r.memory_usage(tele, samples=0) or 0) / max(1, raw_records)
    raw_per_s = raw_records / calibrate_s
    rollup_device(store, calib, now=now + 1, config={})
    per_entry = {}
    for step in STEPS:
        key = store.keys(calib).rollup(step)
        n = r.xlen(key)
        per_entry[step] = (r.memory_usage(key, samples=0) or 0) / n if n else 0.0
    day_raw = raw_bytes * raw_per_s * 86400
    day_rollup = {s: per_entry[s] * 86400 / s for s in STEPS}
    raw_keep = settings.RAW_RETENTION_S
    rollup_keep = settings.ROLLUP_RETENTION_S
    raw_kept = raw_bytes * min(MAXLEN["telemetry"], raw_per_s * raw_keep)
    rollup_kept = {
        s: per_entry[s] * min(ROLLUP_MAXLEN, rollup_keep.get(s, 1e18) / s) for s in STEPS
    }
    caps_only = raw_bytes * MAXLEN["telemetry"] + sum(per_entry[s] * ROLLUP_MAXLEN for s in STEPS)
    # the age limit at work: trim the calibration device as if half its data were past retention
    before = r.xlen(tele)
    trim_device(
        store,
        calib,
        now=now + 1 + raw_keep - calibrate_s / 2,
        raw_retention_s=raw_keep,
        rollup_retention_s=rollup_keep,
    )
    return {
        "bytes_per_device_now": total / len(devices),
        "raw_record_bytes": raw_bytes,
        "raw_records_per_s": raw_per_s,
        **{f"rollup_{s}s_entry_bytes": per_entry[s] for s in STEPS},
        "raw_bytes_per_device_day": day_raw,
        "rollup_bytes_per_device_day": sum(day_rollup.values()),
        **{f"rollup_{s}s_bytes_per_device_day": day_rollup[s] for s in STEPS},
        "raw_retention_s": raw_keep,
        **{f"rollup_{s}s_retention_s": rollup_keep.get(s, 0.0) for s in STEPS},
        "raw_bytes_kept_per_device": raw_kept,
        "rollup_bytes_kept_per_device": sum(rollup_kept.values()),
        "bound_bytes_per_device": raw_kept + sum(rollup_kept.values()),
        "bound_bytes_per_device_caps_only": caps_only,
        "calibration_trim_check_kept_ratio": r.xlen(tele) / max(1, before),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of steady load")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--breaches", type=int, default=20, help="devices that get a ceiling breach"
    )
    parser.add_argument(
        "--sim-procs", type=int, default=4, help="simulator processes sharing the devices"
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        help="devices per evaluate_batch task (THOXDASH_RULES_BATCH; default: the setting's)",
    )
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args(argv)

    from bench.sim import seconds_of
    from bench.stack import start

    prefix = f"thoxfleet:{uuid.uuid4().hex[:6]}:"
    extra = {"THOXDASH_RULES_BATCH": str(args.batch)} if args.batch else {}
    stack = start(
        args.redis, prefix, workers=args.workers, concurrency=args.concurrency, extra_env=extra
    )
    for key in (
        "REDIS_URL",
        "THOXDASH_REDIS_PREFIX",
        "DATABASE_URL",
        "THOXDASH_RUN_DIR",
        "THOXDASH_SECRET_KEY",
        *extra,
    ):
        os.environ[key] = stack.env[key]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "thoxdash.settings")
    import django

    django.setup()
    from advisors.models import Alert
    from collectors.store import TelemetryStore, connect
    from thoxdash.celery import app

    store = TelemetryStore(connect(args.redis), prefix)
    ids = [f"fleet-{i:04d}" for i in range(args.devices)]
    events = TaskEvents(app)
    threading.Thread(target=events.run, daemon=True).start()
    from django.conf import settings

    print(
        f"fleet: {args.devices} devices at 1 Hz in {args.sim_procs} simulator processes, "
        f"{args.workers} workers x {args.concurrency}, batches of {settings.RULES_BATCH}, {args.duration:.0f} s; "
        f"Redis {args.redis} prefix {prefix}",
        flush=True,
    )
    per = -(-args.devices // args.sim_procs)
    sims = []
    for k, first in enumerate(range(0, args.devices, per)):
        sims.append(
            stack.spawn(
                f"sim{k}",
                sys.executable,
                "-m",
                "bench.sim",
                "--devices",
                str(min(per, args.devices - first)),
                "--first",
                str(first),
                "--name",
                "fleet",
                "--seconds",
                str(args.duration),
                "--redis",
                args.redis,
            )
        )

    warmup = min(30.0, args.duration / 3)
    targets = ids[:: max(1, len(ids) // max(1, args.breaches))][: args.breaches]
    injected: dict[str, float] = {}
    seen: dict[str, float] = {}

    def poll_alerts(stop: threading.Event) -> None:
        while not stop.is_set():
            for device in Alert.objects.filter(
                device__in=list(injected), rule="runtime_memory_over_ceiling"
            ).values_list("device", flat=True):
                seen.setdefault(device, time.time())
            stop.wait(0.2)

    stop_poll = threading.Event()
    poller = threading.Thread(target=poll_alerts, args=(stop_poll,), daemon=True)
    started = time.time()
    poller.start()
    tick = 0
    while time.time() - started < args.duration:
        time.sleep(max(0.0, started + tick - time.time()))
        tick += 1
        now = time.time()
        if now - started >= warmup:
            for device in targets[: int(now - started - warmup) + 1]:
                injected.setdefault(device, now)
        for device in injected:  # the breach keeps going, as a real runtime's memory would
            store.publish(
                device,
                [
                    {
                        "ts": now,
                        "source": "bench",
                        "values": {'runtime_memory_bytes{runtime="ollama"}': 6.5e9},
                    }
                ],
            )
    for proc in sims:
        proc.wait(60)
    ingest_end = time.time()
    deadline = time.time() + 30
    while len(seen) < len(injected) and time.time() < deadline:
        time.sleep(0.5)
    stop_poll.set()
    events.stop()
    time.sleep(1.0)

    starts = dict(
        Alert.objects.filter(
            device__in=list(injected), rule="runtime_memory_over_ceiling"
        ).values_list("device", "starts_at")
    )
    lat_seen = [seen[d] - injected[d] for d in injected if d in seen]
    lat_start = [starts[d].timestamp() - injected[d] for d in injected if d in starts]
    rules = ("advisors.tasks.evaluate_device", "advisors.tasks.evaluate_batch")
    window = [
        (t, rt, n)
        for t, name, rt, n in events.done
        if name in rules and started + warmup <= t <= ingest_end
    ]
    span = max(1.0, ingest_end - (started + warmup))
    mem = memory_report(store, [d for d in ids if d not in injected])

    sim_stats = []
    for k in range(len(sims)):
        lines = [ln for ln in stack.log(f"sim{k}").splitlines() if ln.startswith("{")]
        sim_stats.append(json.loads(lines[-1]) if lines else {})
    published = sum(s.get("published", 0) for s in sim_stats)
    seconds = seconds_of()[1]
    expected = sum(len(b) for b in seconds) / len(seconds) * args.devices
    print("\n== ingest")
    print(
        f"records published: {published} over {args.duration:.0f} s = {published / args.duration:.0f} records/s "
        f"(target {expected:.0f}/s from the recording; plus {len(injected)} breach records/s)"
    )
    print(
        "per simulator process: "
        + "; ".join(
            f"ticks {s.get('ticks')}, late {s.get('late_ticks')}, tick p50 {1000 * (s.get('tick_p50_s') or 0):.0f} ms "
            f"p99 {1000 * (s.get('tick_p99_s') or 0):.0f} ms"
            for s in sim_stats
        )
    )
    print(
        "load average (1/5/15 min) at the end: " + " / ".join(f"{x:.1f}" for x in os.getloadavg())
    )
    print("\n== rules")
    evaluated = sum(n for _, _, n in window)
    print(
        f"device evaluations completed: {evaluated / span:.1f}/s for {args.devices} devices "
        f"= {evaluated / span / args.devices:.2f} evaluations per device per 1 s cycle "
        f"({len(window) / span:.1f} tasks/s)"
    )
    if window:
        runtimes = [rt for _, rt, _ in window]
        per_device = [rt / n for _, rt, n in window if n]
        print(
            f"task run time p50 {statistics.median(runtimes) * 1000:.0f} ms, p99 {pct(runtimes, 99) * 1000:.0f} ms; "
            f"per device p50 {statistics.median(per_device) * 1000:.1f} ms, p99 {pct(per_device, 99) * 1000:.1f} ms"
        )
    print(f"task outcomes: {dict(events.outcomes)}")
    print("\n== Redis memory")
    for key, value in mem.items():
        print(f"{key}: {value:,.3f}" if value < 10 else f"{key}: {value:,.0f}")
    print("\n== alert latency (ceiling breach injected -> alert row)")
    print(f"alerts: {len(lat_seen)}/{len(injected)} fired")
    if lat_seen:
        print(
            f"observed in DB: p50 {pct(lat_seen, 50):.2f} s, p99 {pct(lat_seen, 99):.2f} s, max {max(lat_seen):.2f} s"
        )
    if lat_start:
        print(
            f"starts_at (evaluation time): p50 {pct(lat_start, 50):.2f} s, p99 {pct(lat_start, 99):.2f} s"
        )
    stack.stop()
    store.delete_prefix()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
