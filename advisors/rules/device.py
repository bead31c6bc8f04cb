"""device_down (the device sends nothing) and agent_source_down (one of its sources keeps failing).

device_down measures silence from `window.last_seen`: the newest record of any kind (live, also the
device's latest-values timestamp, so it survives the points leaving the window). The agent sends a
status record every second, so a healthy device is never silent for long. While device_down fires
the lifecycle freezes the device's other alerts (advisors.engine.transitions): their last state is
shown as stale instead of resolving as their data ages out.

agent_source_down reads the agent's own `agent_source_up{source}` (collectors/agent.py: 0 after a
source raised or hung past its timeout): a source down for `source_down_after_s` fires.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from advisors.rules.base import Finding, emits
from advisors.rules.window import Window


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@emits("device_down")
def device_down(window: Window, config: dict[str, Any], active: set[str]) -> list[Finding]:
    after = float(config["thresholds"]["stale_after_s"])
    seen = window.last_seen
    if seen is None or window.now - seen <= after:
        return []
    return [Finding("device_down", "critical", {},
                    f"No data from the device since {_clock(seen)} (silent > {after:.0f} s); its other "
                    "alerts show their last known state", window.now - seen)]


@emits("agent_source_down")
def agent_source_down(window: Window, config: dict[str, Any], active: set[str]) -> list[Finding]:
    after = float(config["thresholds"]["source_down_after_s"])
    out = []
    for _key, (labels, points) in window.by_metric("agent_source_up").items():
        if not points or points[-1][1] >= 0.5:
            continue
        down_since = points[-1][0]
        for ts, value in reversed(points):
            if value >= 0.5:
                break
            down_since = ts
        if window.now - down_since < after:
            continue
        source = labels.get("source", "")
        out.append(Finding("agent_source_down", "warning", {"source": source},
                           f"The agent's {source} source has failed since {_clock(down_since)} "
                           f"(> {after:.0f} s); its charts and the rules that read it are blind",
                           window.now - down_since))
    return out
