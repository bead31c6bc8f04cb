"""What to do about each alert: one line per rule, appended to every summary with a link to the
rule's section in advisors/ALERTS.md. Where the advisor has an action for the alert (advisors/
recommend), the line names it."""

from __future__ import annotations

from advisors.rules.base import Finding

DOC = "advisors/ALERTS.md"

REMEDIES: dict[str, str] = {
    "runtime_memory_near_ceiling": "advisor: unload the least recently used background model, or raise the "
                                   "ceiling in Settings",
    "runtime_memory_over_ceiling": "advisor: unload the least recently used background model now (auto mode "
                                   "does it for background runtimes)",
    "oom_kill": "lower the runtime's memory (smaller model or context) or its ceiling; dmesg names the victim",
    "memory_pressure_high": "free memory: unload an idle model or stop a background runtime",
    "swap_in_use": "advisor: swapoff when RAM allows it (GPU-shared RAM must not page), else free memory first",
    "reload_degradation": "advisor: restart the runtime; reboot if that does not restore the speed",
    "throughput_degradation": "check this device's thermals, clocks and memory pressure; restart the runtime if "
                              "none explains it",
    "thermal_throttling": "improve cooling (fan to maximum, airflow) or choose a lower power mode (nvpmodel)",
    "gpu_clock_not_locked": "advisor: run jetson_clocks",
    "latency_slo_breach": "advisor: pause or unload the background model competing for the GPU",
    "irq_on_isolated_cpu": "advisor: move the IRQ off the isolated CPUs (/proc/irq/<n>/smp_affinity_list)",
    "runtime_down": "restart the runtime and read its log",
    "device_down": "check the device's power, network and agent service (systemctl status thoxdash-agent)",
    "agent_source_down": "read the agent's log for the source's error (journalctl -u thoxdash-agent)",
}


def with_remedy(finding: Finding) -> Finding:
    """The finding with its summary ending in what to do and the ALERTS.md section."""
    remedy = REMEDIES.get(finding.rule)
    if not remedy:
        return finding
    text = finding.summary.rstrip(". ")
    return Finding(finding.rule, finding.severity, finding.labels,
                   f"{text}. What to do: {remedy}. See {DOC}#{finding.rule}", finding.value)
