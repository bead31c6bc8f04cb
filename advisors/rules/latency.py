"""latency_slo_breach: fewer requests than the target ratio finish within the deadline."""

from __future__ import annotations

import math
from typing import Any

from advisors.rules.base import Finding, emits
from advisors.rules.window import Window


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@emits("latency_slo_breach")
def latency_slo_breach(window: Window, config: dict[str, Any], active: set[str]) -> list[Finding]:
    """Per SLO `{"runtime", "model", "deadline_s", "target_ratio", "window_s"}` from the config.

    A request misses when its total_s exceeds the deadline or it failed (5xx). Needs at least
    `slo_min_requests` in the SLO window to give a verdict.
    """
    t = config["thresholds"]
    out = []
    for slo in config.get("slos", []):
        runtime, model = str(slo.get("runtime", "")), str(slo.get("model", ""))
        deadline, target = float(slo["deadline_s"]), float(slo.get("target_ratio", 0.99))
        span = min(float(slo.get("window_s", 60)), float(t["window_s"]))
        since = window.now - span
        latencies: list[float] = []
        misses = 0
        for r in window.requests:
            if r["ts"] < since or r.get("runtime") != runtime or (model and r.get("model") != model):
                continue
            total = r.get("total_s")
            if total is None:
                continue
            latencies.append(float(total))
            if float(total) > deadline or int(r.get("status") or 200) >= 500:
                misses += 1
        if len(latencies) < int(t["slo_min_requests"]):
            continue
        ratio = 1 - misses / len(latencies)
        if ratio >= target:
            continue
        p99 = quantile(latencies, 0.99)
        severity = "critical" if ratio < float(t["slo_critical_ratio"]) else "warning"
        out.append(Finding("latency_slo_breach", severity, {"runtime": runtime, "model": model},
                           f"{model} on {runtime}: {ratio:.2%} of {len(latencies)} requests within "
                           f"{deadline * 1000:.1f} ms over {span:.0f} s (target {target:.1%}); "
                           f"p99 {p99 * 1000:.1f} ms, {misses} missed", ratio))
    return out
