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


def swap_reading(values: dict[str, Any], state: dict[str, Any] | None) -> dict[str, Any] | None:
    """Swap as one fact for the alert, the checklist and the advisor: the sizes from the numeric
    series (`swap_used_bytes`, `swap_total_bytes`: what every source measures each second), the
    tuning state only for what the series cannot say (devices, and enabled when no size is known).
    None when neither says anything."""
    info = (state or {}).get("swap")
    info = dict(info) if isinstance(info, dict) else {}
    if "enabled" not in info and isinstance((state or {}).get("swap_enabled"), bool):
        info["enabled"] = state["swap_enabled"]  # type: ignore[index]
    used, total = values.get("swap_used_bytes"), values.get("swap_total_bytes")  # None when absent
    if used is None and total is None and not info:
        return None
    if used is not None:
        info["used_bytes"] = int(used)
    if total is not None:
        info["total_bytes"] = int(total)
        info["enabled"] = bool(total > 0) or bool(info.get("enabled"))
    info.setdefault("used_bytes", 0)
    return info


@emits("swap_in_use")
def swap_in_use(window: Window, config: dict[str, Any], active: set[str]) -> list[Finding]:
    """Swap holds more than `swap_in_use_bytes` (GPU-shared RAM on a Jetson must not page)."""
    t = config["thresholds"]
    if window.last("swap_used_bytes") is None:
        return []
    reading = swap_reading({"swap_used_bytes": window.last("swap_used_bytes"),
                            "swap_total_bytes": window.last("swap_total_bytes")}, window.state) or {}
    used = float(reading["used_bytes"])
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
    total = reading.get("total_bytes")
    of = f" of {fmt_bytes(total)}" if total else ""
    return [Finding("swap_in_use", "warning", {}, f"Swap in use: {fmt_bytes(used)}{of}{trend}", used)]
