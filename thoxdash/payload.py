"""What the device page receives for a time range: chart columns (downsampled to the chart's
width), latency per runtime/model, events, the IRQ x CPU matrix and the time-to-ceiling forecast.

No Django: reads go through the TelemetryStore, shaping through thoxdash.live / latency.
Ranges up to 15 min come from the raw streams; longer ones from the Celery rollups (plus the raw
tail the rollups have not reached yet).
"""

from __future__ import annotations

import math
import time
from typing import Any

from advisors.config import parse_cpulist
from collectors.store import TelemetryStore
from collectors.text import is_uint
from thoxdash.latency import bucket_stats, merge_columns
from thoxdash.live import Columns, ceiling_forecast, irq_matrix, memory_points, shrink, to_columns

RANGES = {"15m": 900, "1h": 3600, "24h": 86_400, "7d": 604_800}
ROLLUP_FOR = {900: None, 3600: 10, 86_400: 60, 604_800: 600}
MAX_EVENTS = 300
EVENT_FIELDS = ("ts", "kind", "runtime", "model", "action", "cgroup", "process", "reason", "state", "detail")


def rollup_step(range_s: float) -> int | None:
    """The rollup a range reads (None: raw streams)."""
    for limit in sorted(ROLLUP_FOR):
        if range_s <= limit:
            return ROLLUP_FOR[limit]
    return 600


def latency_step(range_s: float, points: int) -> float:
    """Bucket width for request statistics: at least 10 s, about one bucket per pixel."""
    return max(10.0, math.ceil(range_s / max(points, 1) / 10.0) * 10.0)


def clean_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for event in events[-MAX_EVENTS:]:
        item = {k: event[k] for k in EVENT_FIELDS if k in event}
        for k, v in list(item.items()):
            if isinstance(v, str) and len(v) > 200:
                item[k] = v[:200] + "…"
            elif not isinstance(v, (str, int, float, bool)) and v is not None:
                item[k] = str(v)[:200]
        out.append(item)
    return out


def isolated_cpus(config: dict[str, Any], state: dict[str, Any]) -> set[str]:
    return parse_cpulist(config.get("isolated_cpus") or "") | parse_cpulist(str(state.get("isolated_cpus") or ""))


def assemble(cols: dict[str, Any], latency: Columns, points: int, config: dict[str, Any],
             isolated: set[str], forecast_window_s: float = 300.0) -> dict[str, Any]:
    """Shape columns (from to_columns, with keep_irq) into the wire payload."""
    series: Columns = cols["series"]
    merge_columns(series, latency)
    memory, ceilings = memory_points(series)
    for runtime in config.get("runtimes") or []:
        if runtime.get("ceiling_bytes") and runtime.get("name") not in ceilings:
            ceilings[str(runtime["name"])] = float(runtime["ceiling_bytes"])
    return {
        "series": shrink(series, points),
        "events": clean_events(cols["events"]),
        "irq": irq_matrix(cols.get("irq") or {}, isolated),
        "forecast": ceiling_forecast(memory, ceilings, forecast_window_s),
        "isolated": sorted(isolated, key=lambda c: int(c) if is_uint(c) else 1 << 30),
    }


def range_payload(store: TelemetryStore, device: str, range_s: float, points: int,
                  config: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    since = now - range_s
    step = rollup_step(range_s)
    lat_step = latency_step(range_s, points)
    slos = config.get("slos") or []
    records: list[dict[str, Any]] = []
    source = "raw"
    raw_since = since
    if step is not None:
        rolled = store.read_rollups(device, step, since=since)
        if rolled:
            records.extend(rolled)
            raw_since = rolled[-1]["ts"] + step
            source = f"rollup:{step}"
    if source == "raw" and step is not None:
        # no rollups yet (Celery has not run): bucket the raw stream on the fly
        from thoxdash.rollup import mean_buckets

        buckets = mean_buckets(store.read_chunks(device, "telemetry", since, now + 1), step)
        records.extend({"ts": b, "values": v} for b, v in sorted(buckets.items()))
        raw_since = now + 1
        source = f"raw:{step}"
    if raw_since <= now:
        records.extend(r for r in store.read_chunks(device, "telemetry", raw_since, now + 1) if "values" in r)
    records.extend(store.read(device, "events", since=since))
    requests = [r for r in store.read_chunks(device, "requests", raw_since if source.startswith("rollup") else since,
                                             now + 1)]
    records.sort(key=lambda r: r["ts"])
    cols = to_columns(records, keep_irq=True)
    cols["requests"] = []
    latency = bucket_stats([{"ts": r["ts"], **r["request"]} for r in requests if "request" in r], lat_step, slos)
    state = store.latest(device)["state"]
    payload = assemble(cols, latency, points, config, isolated_cpus(config, state),
                       forecast_window_s=max(300.0, (step or 0) * 10.0))
    payload.update({"range_s": range_s, "source": source, "now": now})
    return payload
