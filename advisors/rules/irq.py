"""irq_on_isolated_cpu: device interrupts keep landing on CPUs isolated for inference."""

from __future__ import annotations

import fnmatch
from typing import Any

from advisors.config import parse_cpulist
from advisors.rules.base import Finding, emits
from advisors.rules.oom import counter_increase
from advisors.rules.window import Window


@emits("irq_on_isolated_cpu")
def irq_on_isolated_cpu(window: Window, config: dict[str, Any], active: set[str]) -> list[Finding]:
    """`irq_interrupts_total{irq,cpu}` rising at `irq_min_rate_per_s` or more on an isolated CPU.

    Isolated CPUs come from the config (`isolated_cpus`), else from the reported tuning state.
    Per-CPU architectural interrupts (timer, IPIs: `irq_ignore`) cannot move and are ignored.
    """
    t = config["thresholds"]
    isolated = parse_cpulist(config.get("isolated_cpus") or window.state.get("isolated_cpus"))
    if not isolated:
        return []
    ignore = list(t["irq_ignore"])
    span = float(t["irq_rate_window_s"])
    since = window.now - span
    out = []
    for _key, (labels, points) in window.by_metric("irq_interrupts_total").items():
        cpu, irq = labels.get("cpu", ""), labels.get("irq", "")
        if cpu not in isolated or any(fnmatch.fnmatchcase(irq, pat) for pat in ignore):
            continue
        recent = [p for p in points if p[0] >= since - span]
        if len(recent) < 2:
            continue
        covered = min(span, recent[-1][0] - max(recent[0][0], since - span))
        if covered <= 0:
            continue
        rate = counter_increase(recent, since) / max(covered, 1.0)
        if rate < float(t["irq_min_rate_per_s"]):
            continue
        name = labels.get("name") or labels.get("device")
        named = f" ({name})" if name else ""
        out.append(Finding("irq_on_isolated_cpu", "warning", {"irq": irq, "cpu": cpu},
                           f"IRQ {irq}{named} fires {rate:.1f}/s on isolated CPU {cpu}", rate))
    return out
