"""Detection rules: pure functions of (window, config, active fingerprints) -> findings.

Names are a contract (docs/ARCHITECTURE.md, advisors/ALERTS.md). The same functions run live in Celery and offline in
`manage.py evaluate`. A rule may keep small notes for its next cycle in `window.memo`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from advisors.rules.base import Finding
from advisors.rules.device import agent_source_down, device_down
from advisors.rules.irq import irq_on_isolated_cpu
from advisors.rules.latency import latency_slo_breach
from advisors.rules.memory import runtime_memory
from advisors.rules.oom import oom_kill
from advisors.rules.pressure import memory_pressure_high, swap_in_use
from advisors.rules.remedies import with_remedy
from advisors.rules.runtime import runtime_down
from advisors.rules.thermal import gpu_clock_not_locked, thermal_throttling
from advisors.rules.throughput import degradation
from advisors.rules.window import Window

log = logging.getLogger(__name__)

Rule = Callable[[Window, dict[str, Any], set[str]], list[Finding]]

RULES: list[Rule] = [runtime_memory, oom_kill, memory_pressure_high, swap_in_use, degradation,
                     thermal_throttling, gpu_clock_not_locked, latency_slo_breach, irq_on_isolated_cpu,
                     runtime_down, device_down, agent_source_down]

# every alert name, derived from what each rule declares (`@emits`); the stable names are listed in
# advisors/ALERTS.md
RULE_NAMES: tuple[str, ...] = tuple(name for rule in RULES for name in getattr(rule, "names", ()))


def run_rules(window: Window, config: dict[str, Any], active: set[str] | None = None) -> list[Finding]:
    """Every rule over one window; a rule that raises is logged and skipped, the others still run."""
    findings: list[Finding] = []
    for rule in RULES:
        try:
            findings.extend(with_remedy(f) for f in rule(window, config, active or set()))
        except Exception:  # one broken rule must not silence the others
            log.exception("rule %s failed", rule.__name__)
    return findings


__all__ = ["RULES", "RULE_NAMES", "Finding", "Window", "run_rules"]
