"""runtime_down: a runtime reports runtime_up == 0, or its runtime_up stopped while the device reports."""

from __future__ import annotations

from typing import Any

from advisors.config import runtime_priority
from advisors.rules.base import Finding, emits
from advisors.rules.window import Window


@emits("runtime_down")
def runtime_down(window: Window, config: dict[str, Any], active: set[str]) -> list[Finding]:
    t = config["thresholds"]
    after = float(t["runtime_down_after_s"])
    newest = window.newest_ts()
    device_fresh = newest is not None and window.now - newest <= float(t["stale_after_s"])
    out = []
    seen = set()
    for _key, (labels, points) in window.by_metric("runtime_up").items():
        runtime = labels.get("runtime", "")
        seen.add(runtime)
        if not points:
            continue
        ts, up = points[-1]
        if up < 0.5:
            down_since = ts
            for pts, val in reversed(points):
                if val >= 0.5:
                    break
                down_since = pts
            reason = f"{runtime} is down (runtime_up = 0 for {window.now - down_since:.0f} s)"
        elif device_fresh and window.now - ts > after:
            reason = f"{runtime} stopped reporting {window.now - ts:.0f} s ago while the device still reports"
        else:
            continue
        out.append(_finding(config, runtime, reason))
    # still firing, but its series has left the window: keep it while the device reports
    for runtime in [r["name"] for r in config["runtimes"] if r["name"] not in seen]:
        probe = Finding("runtime_down", "critical", {"runtime": runtime})
        if probe.fingerprint in active and device_fresh:
            out.append(_finding(config, runtime, f"{runtime} has not reported for over {t['window_s']} s"))
    return out


def _finding(config: dict[str, Any], runtime: str, reason: str) -> Finding:
    severity = "critical" if runtime_priority(config, runtime) in ("critical", "essential") else "warning"
    return Finding("runtime_down", severity, {"runtime": runtime}, reason)
