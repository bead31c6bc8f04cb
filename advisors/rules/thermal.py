"""thermal_throttling (hot zone with clocks falling) and gpu_clock_not_locked (policy wants locked)."""

from __future__ import annotations

from statistics import median
from typing import Any

from advisors.rules.base import Finding, emits
from advisors.rules.boards import board_points, lookup
from advisors.rules.window import Window


def _clock_points(window: Window, which: str, since: float) -> list[tuple[float, float]]:
    """The GPU clock, or the mean CPU clock per sample time, in Hz."""
    if which == "gpu":
        return window.points("gpu_freq_hz", since)
    per_ts: dict[float, list[float]] = {}
    for _key, (_labels, pts) in window.by_metric("cpu_freq_hz").items():
        for ts, v in pts:
            if ts >= since:
                per_ts.setdefault(ts, []).append(v)
    return [(ts, sum(v) / len(v)) for ts, v in sorted(per_ts.items())]


def _falling(window: Window, zone: str, since: float, drop: float, recent_s: float) -> tuple[str, float, float] | None:
    """A sustained fall: the median clock of the last `recent_s` is `drop` below the window's
    90th percentile (single DVFS dips do not count)."""
    kinds = ["gpu"] if "gpu" in zone.lower() else ["cpu"] if "cpu" in zone.lower() else ["gpu", "cpu"]
    for kind in kinds:
        points = _clock_points(window, kind, since)
        recent = [v for ts, v in points if ts >= window.now - recent_s]
        if len(points) < 3 or not recent:
            continue
        ordered = sorted(v for _, v in points)
        peak = ordered[int(0.9 * (len(ordered) - 1))]
        now = median(recent)
        if peak > 0 and now < peak * (1 - drop):
            return kind.upper(), now, peak
    return None


def trip_point(window: Window, config: dict[str, Any], zone: str) -> tuple[float | None, str]:
    """A zone's throttle point and where it came from: the device config, the board's own trip
    points (published by the agent), the board's documented default, the threshold default."""
    reported = window.state.get("throttle_celsius")
    for where, points in (("configured", config.get("throttle_celsius") or {}),
                          ("board-reported", reported if isinstance(reported, dict) else {}),
                          ("board default", board_points(config.get("board")))):
        limit = lookup(points, zone)
        if limit is not None:
            return limit, where
    default = config["thresholds"].get("default_throttle_celsius")
    return (float(default), "default") if default is not None else (None, "")


def _busy(window: Window, t: dict[str, Any]) -> str:
    """Why the clock should be high: the GPU busy, or jetson_clocks pinning it."""
    load = window.points("gpu_load_ratio", window.now - float(t["thermal_recent_s"]))
    if load and median(v for _, v in load) >= float(t["thermal_busy_ratio"]):
        return f"at {median(v for _, v in load):.0%} GPU load"
    locked = window.last("jetson_clocks_active")
    if locked is not None and locked >= 0.5 or window.state.get("jetson_clocks") is True:
        return "with jetson_clocks on"
    return ""


def _nvml_thermal(window: Window) -> list[str]:
    """A discrete GPU's own verdict: NVML's thermal clock-event reasons while it throttles."""
    if (window.last("gpu_throttle_active") or 0.0) < 0.5:
        return []
    reasons = window.state.get("throttle_reasons")
    return [r for r in reasons if "thermal" in str(r)] if isinstance(reasons, list) else []


@emits("thermal_throttling")
def thermal_throttling(window: Window, config: dict[str, Any], active: set[str]) -> list[Finding]:
    """Warning when a zone is within `thermal_margin_celsius` of its throttle point while clocks
    fall from their recent peak; critical at or above the point. Once firing it stays so until the
    zone cools `thermal_clear_celsius` below the margin. Without any throttle point, the evidence
    itself: a zone at `thermal_hot_celsius` or more whose clock falls while the GPU is busy or
    jetson_clocks pins it. On a discrete GPU, NVML's thermal slowdown reasons."""
    t = config["thresholds"]
    margin, clear = float(t["thermal_margin_celsius"]), float(t["thermal_clear_celsius"])
    out = []
    for _key, (labels, points) in window.by_metric("temperature_celsius").items():
        zone = labels.get("zone", "")
        if not points:
            continue
        temp = points[-1][1]
        lab = {"zone": zone}
        firing = Finding("thermal_throttling", "warning", lab).fingerprint in active
        limit, origin = trip_point(window, config, zone)
        edge = limit - margin if limit is not None else float(t["thermal_hot_celsius"])
        if temp < edge - (clear if firing else 0.0):
            continue
        fall = _falling(window, zone, window.now - float(t["window_s"]), float(t["thermal_clock_drop_ratio"]),
                        float(t["thermal_recent_s"]))
        clocks = ""
        if fall:
            kind, now_hz, peak_hz = fall
            clocks = (f"; {kind} clock {now_hz / 1e6:.0f} MHz, down {1 - now_hz / peak_hz:.0%} "
                      f"from {peak_hz / 1e6:.0f} MHz")
        if limit is None:
            if window.last("gpu_throttle_active") is not None:
                continue  # a discrete GPU: NVML's own throttle reasons decide (below), not the evidence
            why = _busy(window, t) if fall else ""
            if not why and not firing:
                continue
            out.append(Finding("thermal_throttling", "warning", lab,
                               f"{zone} at {temp:.1f} °C with clocks falling {why}{clocks} (no throttle point "
                               "known: the clock falls under load, so it throttles)".replace("  ", " "), temp))
            continue
        if temp < limit and fall is None and not firing:
            continue
        where = (f"at or above its {limit:.0f} °C {origin} throttle point" if temp >= limit
                 else f"{limit - temp:.1f} °C below its {limit:.0f} °C {origin} throttle point")
        out.append(Finding("thermal_throttling", "critical" if temp >= limit else "warning", lab,
                           f"{zone} at {temp:.1f} °C, {where}{clocks}", temp))
    reasons = _nvml_thermal(window)
    if reasons and not any(f.labels["zone"].lower().startswith("gpu") for f in out):
        gpu_temp = window.last('temperature_celsius{zone="gpu"}')
        at = f" at {gpu_temp:.0f} °C" if gpu_temp is not None else ""
        out.append(Finding("thermal_throttling", "warning", {"zone": "gpu"},
                           f"GPU{at} slows its clocks for heat (NVML: {', '.join(reasons)})", gpu_temp))
    return out


@emits("gpu_clock_not_locked")
def gpu_clock_not_locked(window: Window, config: dict[str, Any], active: set[str]) -> list[Finding]:
    """Where the device policy wants locked clocks (jetson_clocks): they are not."""
    if not config.get("want_locked_clocks"):
        return []
    t = config["thresholds"]
    flag = window.last("jetson_clocks_active")
    state = window.state.get("jetson_clocks", window.state.get("clocks_locked"))
    if isinstance(state, dict):  # the tuning source's per-domain reading, as the checklist reads it
        state = state.get("gpu")
    reason = ""
    if flag is not None:
        if flag < 0.5:
            reason = "jetson_clocks is not active"
    elif isinstance(state, bool):
        if not state:
            reason = "jetson_clocks is not active"
    else:
        since = window.now - float(t["unlocked_for_s"])
        freq = window.points("gpu_freq_hz", since)
        top = window.last("gpu_freq_max_hz")
        ratio = float(t["unlocked_clock_ratio"])
        if top and len(freq) >= 2 and freq[-1][0] - freq[0][0] >= float(t["unlocked_for_s"]) / 2 \
                and all(v < top * ratio for _, v in freq):
            reason = f"GPU clock {freq[-1][1] / 1e6:.0f} MHz, below its {top / 1e6:.0f} MHz maximum"
    if not reason:
        return []
    return [Finding("gpu_clock_not_locked", "warning", {},
                    f"GPU clocks are not locked ({reason}); the device policy wants them locked "
                    "for steady latency")]
