"""Soak: N simulated devices for a duration; RSS of every process sampled; growth printed.

    python -m bench.soak [--devices 20] [--duration 3600] [--sample 30]

Processes: daphne (web), one prefork Celery worker (children included), beat, two real agents
(this machine's /proc and /sys), one `collectors replay --loop` of the demo recording, and the
simulated rest of the fleet (bench.sim, real AGX Orin tegrastats at 1 Hz). Meanwhile a client
scrapes /metrics and /api/devices every 5 s so the web process does work. Growth is reported as
last-minus-first after a warm-up, and as a least-squares slope in MiB/hour.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid

import httpx

from bench.stack import BIN, start, tree_rss
from collectors.store import TelemetryStore, connect

PY = sys.executable


def slope_per_hour(samples: list[tuple[float, int]]) -> float:
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mx = sum(t for t, _ in samples) / n
    my = sum(v for _, v in samples) / n
    den = sum((t - mx) ** 2 for t, _ in samples) or 1.0
    return sum((t - mx) * (v - my) for t, v in samples) / den * 3600


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between RSS samples")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds ignored before the first sample")
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args(argv)

    prefix = f"thoxsoak:{uuid.uuid4().hex[:6]}:"
    token = uuid.uuid4().hex
    stack = start(args.redis, prefix, extra_env={"THOXDASH_METRICS_TOKEN": token})
    procs = {"web": stack.procs[0], "worker": stack.procs[1], "beat": stack.procs[2]}
    agents = min(2, args.devices)
    for i in range(agents):
        procs[f"agent{i}"] = stack.spawn(f"agent{i}", PY, "-m", "collectors", "agent", "--device", f"soak-agent-{i}",
                                         "--spill", str(stack.tmp / "spill"))
    rest = args.devices - agents
    if rest > 0:
        procs["replay"] = stack.spawn("replay", PY, "-m", "collectors", "replay",
                                      "collectors/demo/agx-orin-demo.jsonl", "--device", "soak-replay", "--loop")
        rest -= 1
    if rest > 0:
        procs["sim"] = stack.spawn("sim", PY, "-m", "bench.sim", "--devices", str(rest), "--name", "soak",
                                   "--seconds", str(args.duration + args.warmup + 60))
    print(f"soak: {args.devices} devices ({agents} agents, replay, {max(rest, 0)} simulated) for "
          f"{args.duration:.0f} s, sampling every {args.sample:.0f} s; web {stack.url}; daphne via {BIN}", flush=True)
    samples: dict[str, list[tuple[float, int]]] = {name: [] for name in procs}
    client = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=10)
    started = time.time()
    next_sample = started + args.warmup
    scrapes = errors = 0
    try:
        while time.time() - started < args.duration + args.warmup:
            try:
                r = client.get(stack.url + "/metrics")
                scrapes += 1
                errors += r.status_code != 200
            except httpx.HTTPError:
                errors += 1
            if time.time() >= next_sample:
                now = time.time() - started
                line = []
                for name, proc in procs.items():
                    rss = tree_rss(proc.pid)
                    samples[name].append((now, rss))
                    line.append(f"{name}={rss / 2**20:.1f}")
                print(f"t={now:6.0f}s  RSS MiB  " + "  ".join(line), flush=True)
                next_sample += args.sample
            time.sleep(5)
    finally:
        stack.stop()
        TelemetryStore(connect(args.redis), prefix).delete_prefix()
    print(f"\n/metrics scrapes: {scrapes}, errors: {errors}")
    print(f"{'process':10} {'first MiB':>10} {'last MiB':>10} {'growth MiB':>11} {'slope MiB/h':>12}")
    for name, points in samples.items():
        if not points:
            continue
        first, last = points[0][1] / 2**20, points[-1][1] / 2**20
        print(f"{name:10} {first:10.1f} {last:10.1f} {last - first:+11.1f} {slope_per_hour(points) / 2**20:+12.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
