"""memory_pressure_high (PSI) and swap_in_use."""

from __future__ import annotations

from typing import Any

from advisors.rules.base import Finding, emits, fmt_bytes
from advisors.rules.window import Window

MIB = 1024 * 1024


@emits("memory_pressure_high")
def memory_pressure_high(window: Window, config: dict[str, Any], active: set[str]) -> list[Finding]:
    """PSI avg10: `full` over its threshold is thrashing (critical), `some` is a warning.

    Hysteresis: once firing, it resolves only below threshold x memory_pressure_clear_factor.
    """
    t = config["thresholds"]
    full = window.last("memory_pressure_full_ratio")
    some = window.last("memory_pressure_some_ratio")
    if full is None and some is None:
        return []
    probe = Finding("memory_pressure_high", "warning")
    factor = float(t["memory_pressure_clear_factor"]) if probe.fingerprint in active else 1.0
    full_hit = full is not None and full >= float(t["memory_pressure_full_ratio"]) * factor
    some_hit = some is not None and some >= float(t["memory_pressure_some_ratio"]) * factor
    if not (full_hit or some_hit):
        return []
    severity = "critical" if full_hit else "warning"
    parts = []
    if some is not None:
        parts.append(f"some {some:.0%}")
    if full is not None:
        parts.append(f"full {full:.0%}")
    what = "all tasks stalled on memory (thrashing)" if full_hit else "tasks stalled on memory"
    return [Finding("memory_pressure_high", severity, {},
                    f"Memory pressure high: {what}; PSI avg10 {', '.join(parts)}", full if full_hit else some)]


@emits("swap_in_use")
def swap_in_use(window: Window, config: dict[str, Any], active: set[str]) -> list[Finding]:
    """Swap holds more than `swap_in_use_bytes` (GPU-shared RAM on a Jetson must not page)."""
    t = config["thresholds"]
    used = window.last("swap_used_bytes")
    if used is None:
        return []
    probe = Finding("swap_in_use", "warning")
    limit = float(t["swap_in_use_bytes"])
    if probe.fingerprint in active:
        limit *= float(t["swap_clear_factor"])
    if used < limit:
        return []
    points = window.points("swap_used_bytes", since=window.now - 60)
    trend = ""
    if len(points) >= 2 and points[-1][1] - points[0][1] > 16 * MIB:
        trend = f", growing {(points[-1][1] - points[0][1]) / MIB:.0f} MiB in the last minute"
    total = window.last("swap_total_bytes")
    of = f" of {fmt_bytes(total)}" if total else ""
    return [Finding("swap_in_use", "warning", {}, f"Swap in use: {fmt_bytes(used)}{of}{trend}", used)]
