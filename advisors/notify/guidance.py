"""What to do about each alert rule, in one sentence (the `description` annotation of pushed
alerts; any notifier may use it). Rule names: `RULE_NAMES` in advisors/rules, advisors/ALERTS.md."""

from __future__ import annotations

WHAT_TO_DO: dict[str, str] = {
    "runtime_memory_near_ceiling": "Unload an idle model or lower the context size of {runtime} before it "
                                   "reaches its memory ceiling (Advisor page: evict the LRU background model).",
    "runtime_memory_over_ceiling": "{runtime} is over its memory ceiling: unload a model now or raise the "
                                   "ceiling if the device has the RAM; the OOM killer is next.",
    "oom_kill": "A process was OOM-killed: check which runtime restarted, lower its model size or context, "
                "and keep swap and other services' memory in check.",
    "memory_pressure_high": "Tasks are stalling on memory: unload idle models, stop the desktop, or move work "
                            "off this device.",
    "swap_in_use": "Swap is in use (zram or disk): inference latency suffers; free memory or disable swap "
                   "for the runtime.",
    "reload_degradation": "Decode speed of {model} on {runtime} fell after a reload: check the GPU offload "
                          "layers, quantisation and clocks it was reloaded with.",
    "throughput_degradation": "Decode speed of {model} on {runtime} fell below its baseline: check thermals, "
                              "clocks (jetson_clocks) and competing GPU work.",
    "thermal_throttling": "Zone {zone} is near its throttle point: improve cooling or fan profile, or lower "
                          "the power mode (nvpmodel).",
    "gpu_clock_not_locked": "Clocks are not locked: run jetson_clocks (one click on the Advisor page) for "
                            "steady latency.",
    "latency_slo_breach": "{model} on {runtime} misses its latency SLO: reduce concurrency or batch size, "
                          "lock clocks, or move background models off the GPU.",
    "irq_on_isolated_cpu": "IRQ {irq} lands on isolated CPU {cpu}: move its affinity off the isolated CPUs "
                           "(Advisor page).",
    "runtime_down": "{runtime} does not answer: check its service (systemctl status, journal) and restart it.",
    "device_down": "The device stopped reporting: check that it is powered, on the network, and that the "
                   "thoxdash-agent service runs.",
    "agent_source_down": "The agent's {source} source fails: see the agent's journal for the error.",
}


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def what_to_do(rule: str, labels: dict[str, str] | None = None) -> str:
    """The rule's advice with its labels filled in ("" for a rule without advice)."""
    text = WHAT_TO_DO.get(rule, "")
    return text.format_map(_Blank({k: str(v) for k, v in (labels or {}).items()})) if text else ""
