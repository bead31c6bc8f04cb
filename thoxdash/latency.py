"""Request latency per runtime/model over time, computed from the requests stream.

Plain functions, no Django. Output is chart columns keyed like metrics, so the same path carries
them to the browser and into the rollups:
  request_latency_p50_seconds{model,runtime}, request_latency_p99_seconds{...},
  request_ttft_p50_seconds{...}, request_tokens_per_second{...} (decode speed, median),
  request_slo_compliance_ratio{...} (share of requests within the SLO deadline; SLO'd pairs only),
  request_count{...}.
"""

from __future__ import annotations

import math
from typing import Any

from thoxdash.live import Columns, compact, series_key


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def deadlines(slos: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    out = {}
    for slo in slos or []:
        try:
            out[(str(slo.get("runtime", "")), str(slo.get("model", "")))] = float(slo["deadline_s"])
        except (KeyError, TypeError, ValueError):
            continue
    return out


def bucket_stats(requests: list[dict[str, Any]], step: float, slos: list[dict[str, Any]] | None = None
                 ) -> Columns:
    """Group requests into `step`-second buckets per (runtime, model) and summarise each bucket.

    A request's time is its `ts` (when it finished). Requests without a total time are skipped;
    failed ones (status >= 400) count against the SLO but not in the latency percentiles."""
    limits = deadlines(slos or [])
    groups: dict[tuple[str, str, float], list[dict[str, Any]]] = {}
    for req in requests:
        total = req.get("total_s")
        ts = req.get("ts")
        if not isinstance(total, (int, float)) or not isinstance(ts, (int, float)):
            continue
        bucket = math.floor(ts / step) * step
        groups.setdefault((str(req.get("runtime", "?")), str(req.get("model", "?")), bucket), []).append(req)
    out: Columns = {}

    def put(name: str, runtime: str, model: str, ts: float, value: float | None) -> None:
        if value is None:
            return
        cols = out.setdefault(series_key(name, {"runtime": runtime, "model": model}), [[], []])
        cols[0].append(ts)
        cols[1].append(compact(value))  # type: ignore[arg-type]  # None (JSON null) for a non-finite value

    for (runtime, model, bucket), reqs in sorted(groups.items(), key=lambda kv: kv[0][2]):
        ok = [r for r in reqs if int(r.get("status", 200) or 200) < 400]
        totals = [float(r["total_s"]) for r in ok]
        if totals:
            put("request_latency_p50_seconds", runtime, model, bucket, percentile(totals, 50))
            put("request_latency_p99_seconds", runtime, model, bucket, percentile(totals, 99))
        ttfts = [float(r["ttft_s"]) for r in ok if isinstance(r.get("ttft_s"), (int, float))]
        if ttfts:
            put("request_ttft_p50_seconds", runtime, model, bucket, percentile(ttfts, 50))
        speeds = [r["completion_tokens"] / r["completion_s"] for r in ok
                  if isinstance(r.get("completion_tokens"), (int, float))
                  and isinstance(r.get("completion_s"), (int, float)) and r["completion_s"] > 0]
        if speeds:
            put("request_tokens_per_second", runtime, model, bucket, percentile(speeds, 50))
        deadline = limits.get((runtime, model))
        if deadline is not None:
            within = sum(1 for r in ok if float(r["total_s"]) <= deadline)
            put("request_slo_compliance_ratio", runtime, model, bucket, within / len(reqs))
        put("request_count", runtime, model, bucket, float(len(reqs)))
    return out


def merge_columns(target: Columns, extra: Columns) -> Columns:
    """Append `extra`'s points to `target` (both time-ordered, extra after target)."""
    for key, (xs, ys) in extra.items():
        cols = target.setdefault(key, [[], []])
        cols[0].extend(xs)
        cols[1].extend(ys)
    return target
