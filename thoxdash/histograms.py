"""Request histograms for /metrics, kept incrementally in Redis from each device's request stream.

Where the data lives: every finished request is one entry of `{p}dev:{id}:requests` (written by the
latency proxy, replay, or a runtime scraper). Percentiles cannot be averaged, so Prometheus needs
cumulative buckets: per device a hash `{p}dev:{id}:reqhist` holds, per (metric, runtime, model), a
count per bucket (not cumulative; the exposition adds them up), the sum and the count, plus the
requests counter per (runtime, model, status) and `__cursor`, the last stream ID counted.

`catch_up` reads each device's new entries (XRANGE after the cursor, at most MAX_PER_PASS per device
per pass: one pipelined round trip for every device), and writes the increments and the new cursor
in one MULTI per device, so an interrupted pass never counts an entry twice. One updater at a time
(a Redis lock; a scrape that finds it held serves what is there). Cost: O(new requests), not
O(stream): for 200 devices at 10 requests/s and a 15 s scrape, 30,000 small JSON entries a pass.
The first pass for a device starts BACKFILL_S back, not at the stream's beginning.
Plain functions over a redis client; no Django.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Seconds: 10 ms .. 60 s (TTFT, queue, total); tokens/s: 1 .. 1000 (decode speed)
SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
TPS_BUCKETS = (1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 60.0, 80.0, 100.0, 150.0, 250.0, 500.0, 1000.0)


@dataclass(frozen=True)
class HistogramSpec:
    name: str          # exported family, without the thoxdash_ prefix
    help: str
    buckets: tuple[float, ...]


HISTOGRAMS: dict[str, HistogramSpec] = {
    "ttft": HistogramSpec("request_time_to_first_token_seconds",
                          "Time to first token of finished requests (seconds).", SECONDS_BUCKETS),
    "total": HistogramSpec("request_duration_seconds",
                           "Total time of finished requests, queue included (seconds).", SECONDS_BUCKETS),
    "queue": HistogramSpec("request_queue_time_seconds",
                           "Time finished requests waited before the runtime took them (seconds).",
                           SECONDS_BUCKETS),
    "decode": HistogramSpec("request_decode_speed_tokens_per_second",
                            "Decode speed of finished requests: completion tokens / completion seconds.",
                            TPS_BUCKETS),
}
REQUESTS_FAMILY = "recorded_requests"  # exported as thoxdash_recorded_requests_total
REQUESTS_HELP = "Finished requests recorded by ThoxDash, by HTTP status (or rejected / disconnected)."
SEP = "\x1f"
CURSOR = "__cursor"
MAX_PER_PASS = 20_000
BACKFILL_S = 3600.0
LOCK_TTL_S = 30


def observations(req: dict[str, Any]) -> dict[str, float]:
    """The histogram values one request record gives ({"ttft": s, ...}; missing fields left out)."""
    out: dict[str, float] = {}
    for key, field in (("ttft", "ttft_s"), ("total", "total_s"), ("queue", "queue_s")):
        value = _number(req.get(field))
        if value is not None and value >= 0:
            out[key] = value
    tokens, seconds = _number(req.get("completion_tokens")), _number(req.get("completion_s"))
    if tokens is not None and seconds is not None and seconds > 0 and tokens > 0:
        out["decode"] = tokens / seconds
    return out


def status_of(req: dict[str, Any]) -> str:
    if req.get("rejected"):
        return "rejected"
    if req.get("client_disconnected"):
        return "disconnected"
    status = req.get("status")
    if isinstance(status, int) and not isinstance(status, bool):
        return str(status)
    return "unknown"


def _number(value: Any) -> float | None:
    """A finite int or float as float; None for anything else (bools, text, NaN, inf)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def bucket_index(buckets: tuple[float, ...], value: float) -> int:
    """Index of the first bucket whose upper bound holds value; len(buckets) for +Inf."""
    for i, bound in enumerate(buckets):
        if value <= bound:
            return i
    return len(buckets)


def increments(requests: Iterable[dict[str, Any]]) -> tuple[dict[str, int], dict[str, float]]:
    """Hash field increments for these request records: (integer counts, float sums)."""
    counts: dict[str, int] = defaultdict(int)
    sums: dict[str, float] = defaultdict(float)
    for req in requests:
        runtime, model = str(req.get("runtime") or ""), str(req.get("model") or "")
        counts[SEP.join(("req", runtime, model, status_of(req)))] += 1
        if req.get("rejected") or req.get("client_disconnected"):
            continue
        for key, value in observations(req).items():
            spec = HISTOGRAMS[key]
            base = SEP.join((key, runtime, model))
            counts[f"{base}{SEP}{bucket_index(spec.buckets, value)}"] += 1
            counts[f"{base}{SEP}count"] += 1
            sums[f"{base}{SEP}sum"] += value
    return dict(counts), dict(sums)


def hist_key(prefix: str, device: str) -> str:
    return f"{prefix}dev:{device}:reqhist"


def requests_key(prefix: str, device: str) -> str:
    return f"{prefix}dev:{device}:requests"


def catch_up(client: Any, prefix: str, devices: list[str], now: float | None = None,
             max_per_pass: int = MAX_PER_PASS) -> int | None:
    """Count the requests recorded since the last pass into every device's histogram hash.
    Returns how many entries were counted, or None when another process holds the lock."""
    lock = f"{prefix}reqhist:lock"
    if not devices or not client.set(lock, "1", nx=True, ex=LOCK_TTL_S):
        return None if devices else 0
    try:
        now = time.time() if now is None else now
        pipe = client.pipeline(transaction=False)
        for device in devices:
            pipe.hget(hist_key(prefix, device), CURSOR)
        cursors = pipe.execute()
        pipe = client.pipeline(transaction=False)
        for device, cursor in zip(devices, cursors, strict=True):
            start = f"({cursor}" if cursor else f"{int((now - BACKFILL_S) * 1000)}"
            pipe.xrange(requests_key(prefix, device), start, "+", count=max_per_pass)
        batches = pipe.execute()
        counted = 0
        for device, entries in zip(devices, batches, strict=True):
            if not entries:
                continue
            records = []
            for _id, fields in entries:
                try:
                    record = json.loads(fields["j"])
                except (KeyError, ValueError):
                    continue
                req = record.get("request") if isinstance(record, dict) else None
                if isinstance(req, dict):
                    records.append(req)
            counts, sums = increments(records)
            key = hist_key(prefix, device)
            tx = client.pipeline(transaction=True)
            for field, n in counts.items():
                tx.hincrby(key, field, n)
            for field, s in sums.items():
                tx.hincrbyfloat(key, field, s)
            tx.hset(key, CURSOR, entries[-1][0])
            tx.execute()
            counted += len(entries)
        return counted
    finally:
        client.delete(lock)


def read_all(client: Any, prefix: str, devices: list[str]) -> dict[str, dict[str, str]]:
    """Every device's histogram hash, one pipelined round trip."""
    pipe = client.pipeline(transaction=False)
    for device in devices:
        pipe.hgetall(hist_key(prefix, device))
    return dict(zip(devices, pipe.execute() if devices else [], strict=True))


def samples(raw: dict[str, dict[str, str]]) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """{family: [(sample name, labels, value)]} for the exposition: cumulative `_bucket` samples with
    `le`, `_sum`, `_count` per device/runtime/model, and the requests counter."""
    out: dict[str, list[tuple[str, dict[str, str], float]]] = defaultdict(list)
    for device in sorted(raw):
        fields = raw[device]
        groups: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
        for field, text in fields.items():
            parts = field.split(SEP)
            if len(parts) != 4:
                continue
            try:
                value = float(text)
            except ValueError:
                continue
            kind, runtime, model, tail = parts
            if kind == "req":
                out[REQUESTS_FAMILY].append((f"{REQUESTS_FAMILY}_total", {
                    "device": device, "runtime": runtime, "model": model, "status": tail}, value))
            elif kind in HISTOGRAMS:
                groups[(kind, runtime, model)][tail] = value
        for (kind, runtime, model), cells in sorted(groups.items()):
            spec = HISTOGRAMS[kind]
            labels = {"device": device, "runtime": runtime, "model": model}
            running = 0.0
            for i, bound in enumerate((*spec.buckets, math.inf)):
                running += cells.get(str(i), 0.0)
                le = "+Inf" if math.isinf(bound) else repr(bound)
                out[spec.name].append((f"{spec.name}_bucket", {**labels, "le": le}, running))
            out[spec.name].append((f"{spec.name}_sum", labels, cells.get("sum", 0.0)))
            out[spec.name].append((f"{spec.name}_count", labels, cells.get("count", running)))
    return dict(out)


def own_families() -> set[str]:
    """Family names (without the thoxdash_ prefix) this module exports, and their sample names."""
    names = {REQUESTS_FAMILY, f"{REQUESTS_FAMILY}_total"}
    for spec in HISTOGRAMS.values():
        names |= {spec.name, f"{spec.name}_bucket", f"{spec.name}_sum", f"{spec.name}_count"}
    return names
