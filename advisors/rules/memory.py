"""Memory rules: runtime ceilings (with hysteresis and a time-to-ceiling forecast)."""

from __future__ import annotations

from typing import Any

from advisors.config import ceilings
from advisors.rules.base import Finding, emits, fmt_bytes
from advisors.rules.window import Window


def _gb(value: float) -> str:
    return fmt_bytes(value)


def slope_per_s(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (ts, value) points; None with fewer than 3 points."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(p[0] for p in points) / n
    mean_v = sum(p[1] for p in points) / n
    var = sum((p[0] - mean_t) ** 2 for p in points)
    if var == 0:
        return None
    return sum((p[0] - mean_t) * (p[1] - mean_v) for p in points) / var


def forecast_text(runtime: str, used: float, ceiling: float, slope: float | None) -> str:
    if slope is None or slope <= 0 or used >= ceiling:
        return ""
    seconds = (ceiling - used) / slope
    if seconds < 90:
        return f"; {runtime} reaches its ceiling in ~{seconds:.0f} s"
    return f"; {runtime} reaches its ceiling in ~{seconds / 60:.0f} min"


@emits("runtime_memory_near_ceiling", "runtime_memory_over_ceiling")
def runtime_memory(window: Window, config: dict[str, Any], active: set[str]) -> list[Finding]:
    """runtime_memory_near_ceiling (warning) and runtime_memory_over_ceiling (critical).

    `active` holds fingerprints already firing: near-ceiling stays firing until usage drops
    below the clear ratio (hysteresis, like Netdata's warn/clear pair).
    """
    t = config["thresholds"]
    out: list[Finding] = []
    limits = ceilings(config)
    for _key, (labels, points) in window.by_metric("runtime_memory_bytes").items():
        runtime = labels.get("runtime", "")
        ceiling = limits.get(runtime)
        ceiling_series = window.last(f'runtime_ceiling_bytes{{runtime="{runtime}"}}')
        if ceiling is None and ceiling_series:
            ceiling = ceiling_series
        if not ceiling or not points:
            continue
        used = points[-1][1]
        ratio = used / ceiling
        rl = {"runtime": runtime}
        if ratio >= 1.0:
            out.append(Finding("runtime_memory_over_ceiling", "critical", rl,
                               f"{runtime} uses {_gb(used)}, over its {_gb(ceiling)} ceiling", ratio))
            continue
        near = Finding("runtime_memory_near_ceiling", "warning", rl, "", ratio)
        threshold = t["near_ceiling_clear_ratio"] if near.fingerprint in active else t["near_ceiling_ratio"]
        if ratio >= threshold:
            slope = slope_per_s([p for p in points if p[0] >= window.now - t["forecast_window_s"]])
            summary = (f"{runtime} uses {_gb(used)} of its {_gb(ceiling)} ceiling ({ratio:.0%})"
                       + forecast_text(runtime, used, ceiling, slope))
            out.append(Finding("runtime_memory_near_ceiling", "warning", rl, summary, ratio))
    return out
