"""Rollups for long time ranges: per-step means of every series, plus request latency per bucket.

`rollup_device` runs from Celery every ROLLUP_INTERVAL_S (thoxdash.tasks.rollup_all). It is
idempotent and incremental: each step continues after its last written bucket and writes complete
buckets only. Steps cascade (10 s from the raw stream, 60 s from the 10 s rollup, 600 s from the
60 s rollup), so a pass reads each raw record once. Latency statistics are computed from the raw
requests stream for every step (percentiles do not average).

`trim_device` (run by the same pass, after the rollup) trims the raw telemetry and request streams
and each rollup step by age. It never drops what the pass has not rolled up yet: raw data is kept
from the oldest step's last complete bucket on, and a step's rollups from where the next step will
read them, so a stalled rollup leaves the raw stream to its count cap instead of losing data.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

from collectors.store import RAW_RETENTION_S, ROLLUP_RETENTION_S, TIME_TRIMMED, TelemetryStore
from thoxdash.latency import bucket_stats

STEPS = (10, 60, 600)
LATE_S = 5.0  # raw records may arrive this late; newer buckets wait for the next pass


def mean_buckets(records: Iterable[dict[str, Any]], step: int) -> dict[float, dict[str, float]]:
    """Values records -> {bucket_start: {key: mean}} (plain function)."""
    sums: dict[float, dict[str, list[float]]] = {}
    for record in records:
        values = record.get("values")
        if not values:
            continue
        bucket = math.floor(record["ts"] / step) * step
        acc = sums.setdefault(bucket, {})
        for key, value in values.items():
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not math.isfinite(value)
            ):
                continue
            cell = acc.get(key)
            if cell is None:
                acc[key] = [float(value), 1.0]
            else:
                cell[0] += value
                cell[1] += 1.0
    return {b: {k: s / n for k, (s, n) in acc.items()} for b, acc in sums.items()}


def _config(device: str) -> dict[str, Any]:
    try:
        from advisors.alerting import device_config

        return device_config(device)
    except Exception:  # no database (plain use): defaults only
        return {"slos": []}


def rollup_device(
    store: TelemetryStore,
    device: str,
    now: float | None = None,
    config: dict[str, Any] | None = None,
) -> dict[int, int]:
    """Write every complete, not yet written bucket of every step; returns buckets written per step."""
    now = time.time() if now is None else now
    slos = (config if config is not None else _config(device)).get("slos") or []
    written: dict[int, int] = {}
    source_end = now - LATE_S  # raw data is complete up to here
    lower: int | None = None
    for step in STEPS:
        last = store.last_rollup_ts(device, step)
        if last is not None:
            start = last + step
        else:
            first = _first_ts(store, device, lower)
            if first is None:
                written[step] = 0
                lower = step
                continue
            start = math.floor(first / step) * step
        end = math.floor(source_end / step) * step  # buckets [start, end) are complete
        if end <= start:
            written[step] = 0
            source_end = start  # this step is complete up to its next bucket
            lower = step
            continue
        if lower is None:
            source: Iterable[dict[str, Any]] = store.read_chunks(device, "telemetry", start, end)
        else:
            source = store.read_rollups(device, lower, since=start, until=end - 0.001)
        buckets = mean_buckets(source, step)
        requests = [
            {"ts": r["ts"], **r["request"]}
            for r in store.read_chunks(device, "requests", start, end)
            if isinstance(r.get("request"), dict)
        ]
        latency = bucket_stats(requests, step, slos)
        for key, (xs, ys) in latency.items():
            for x, y in zip(xs, ys, strict=True):
                if y is not None:
                    buckets.setdefault(x, {})[key] = y
        records = [
            {"ts": b, "step": step, "values": buckets[b]} for b in sorted(buckets) if buckets[b]
        ]
        written[step] = store.write_rollups(device, step, records)
        # the next step may only use what this one has completed
        source_end = end
        lower = step
    return written


def _first_ts(store: TelemetryStore, device: str, lower: int | None) -> float | None:
    head = store.read(device, "telemetry", count=1) if lower is None else store.read_rollups(device, lower, count=1)
    return head[0]["ts"] if head else None


def trim_device(
    store: TelemetryStore,
    device: str,
    now: float | None = None,
    raw_retention_s: float = RAW_RETENTION_S,
    rollup_retention_s: dict[int, float] | None = None,
) -> dict[str, int]:
    """Trim one device's raw streams and rollups by age; returns entries removed per stream."""
    now = time.time() if now is None else now
    keep = {**ROLLUP_RETENTION_S, **(rollup_retention_s or {})}
    done = {step: _done_until(store, device, step) for step in STEPS}
    removed: dict[str, int] = {}
    rolled = [end for end in done.values() if end is not None]
    raw_cut = min([now - raw_retention_s, *rolled])
    for stream in TIME_TRIMMED:
        removed[stream] = store.trim_before(device, stream, raw_cut)
    for i, step in enumerate(STEPS):
        if step not in keep:
            continue
        cut = now - keep[step]
        later = STEPS[i + 1 :]
        finer_done = done[later[0]] if later else None
        if finer_done is not None:
            cut = min(cut, finer_done)
        removed[f"rollup:{step}"] = store.trim_rollups_before(device, step, cut)
    return removed


def _done_until(store: TelemetryStore, device: str, step: int) -> float | None:
    """End of the last complete bucket written for a step (None: none yet)."""
    last = store.last_rollup_ts(device, step)
    return None if last is None else last + step
