"""Rules evaluation cost per device per cycle (target: 100 devices in < 1 s of one core).

Each simulated device has the demo recording's last 300 s in its window: the real AGX Orin
tegrastats telemetry (about 50 series at 1 Hz), runtime memory, Ollama requests and a Triton loop
summarised at 2 requests/s, i.e. what the live rules see. Two figures, in CPU time of this process:

  rules  -- run_rules over a prepared window (the rule code alone)
  cycle  -- the live path minus the database: read the window from Redis (3 XRANGEs + latest),
            load/save the rule memory, run the rules

    .venv/bin/python bench/rules_cost.py [--devices 100] [--cycles 5]
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

from advisors.config import merged  # noqa: E402
from advisors.rules import Window, run_rules  # noqa: E402
from collectors.recording import load  # noqa: E402
from collectors.store import TelemetryStore, connect  # noqa: E402

DEMO = ROOT / "collectors/demo/agx-orin-demo.jsonl"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--cycles", type=int, default=5)
    args = ap.parse_args(argv)
    recording = load(str(DEMO))
    cfg = merged(recording.config)
    end = recording.records[-1]["ts"]
    span = [r for r in recording.records if r["ts"] >= end - 300]
    now = time.time()
    shift = now - end
    records = [{**r, "ts": r["ts"] + shift} for r in span]
    windows = []
    for _ in range(args.devices):
        w = Window.from_records(now, records)
        windows.append(w)
    series = len(windows[0].series)
    points = sum(len(p) for p in windows[0].series.values())
    print(f"window per device: {series} series, {points} points, {len(windows[0].requests)} requests, "
          f"{len(windows[0].events)} events, {len(cfg['slos'])} SLOs")

    run_rules(windows[0], cfg, set())  # warm caches
    cpu = time.process_time()
    for _ in range(args.cycles):
        for w in windows:
            run_rules(w, cfg, set())
    rules_s = (time.process_time() - cpu) / args.cycles
    print(f"rules only: {rules_s * 1000 / args.devices:.2f} ms CPU per device per cycle; "
          f"{args.devices} devices: {rules_s:.3f} s CPU per cycle")

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "thoxdash.settings")
    import django

    django.setup()
    from advisors.alerting import load_memo, load_window, save_memo
    from advisors.livewindow import WINDOWS

    store = TelemetryStore(connect(os.environ.get("REDIS_URL")), prefix=f"thoxbench:{uuid.uuid4().hex[:8]}:")
    try:
        ids = [f"cost-{i:03d}" for i in range(args.devices)]
        for device in ids:
            store.register_device(device, board="bench")
            store.publish(device, records)
        def cycle(t: float, incremental: bool) -> None:
            for device in ids:
                if incremental:
                    with WINDOWS.lease(store, device, t, window_s) as w:
                        w.memo = load_memo(store, device)
                        run_rules(w, cfg, set())
                        save_memo(store, device, w.memo)
                else:
                    w = load_window(store, device, t, window_s)
                    w.memo = load_memo(store, device)
                    run_rules(w, cfg, set())
                    save_memo(store, device, w.memo)

        window_s = float(cfg["thresholds"]["window_s"])
        figures = {}
        for name, incremental in (("full re-read", False), ("incremental", True)):
            if incremental:
                cycle(now, True)  # first fill of the per-process cache
            cpu, wall = time.process_time(), time.perf_counter()
            for k in range(args.cycles):
                t = now + (k + 1 if incremental else 0)
                if incremental:  # one new second of telemetry per device, as at 1 Hz
                    for device in ids:
                        store.publish(device, [{**r, "ts": r["ts"] + k + 1} for r in records[-3:]])
                cycle(t, incremental)
            figures[name] = ((time.process_time() - cpu) / args.cycles, (time.perf_counter() - wall) / args.cycles)
    finally:
        store.delete_prefix()
    for name, (c, w) in figures.items():
        print(f"live cycle, {name} window (Redis + rule memory + rules, no DB): {c * 1000 / args.devices:.2f} ms "
              f"CPU per device; {args.devices} devices: {c:.3f} s CPU, {w:.3f} s wall per cycle")
    verdict = "meets" if rules_s < 1.0 else "misses"
    print(f"target 100 devices < 1 s of one core (rules): {verdict} "
          f"({rules_s * 100 / args.devices:.3f} s for 100)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
