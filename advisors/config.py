"""Rule configuration: defaults merged with a device's settings or a recording's `config`.

Thresholds are data. Every number a rule compares against lives here or in the device config.
"""

from __future__ import annotations

import copy
from typing import Any

from collectors.runtimes import default_ceilings, get_kind
from collectors.text import cpus_in

DEFAULT_CEILINGS_BYTES = {kind: int(ceiling) for kind, ceiling in default_ceilings().items()}  # the registry

DEFAULT_THRESHOLDS: dict[str, Any] = {
    "window_s": 300,                      # how much telemetry a rule may look at
    "near_ceiling_ratio": 0.90,           # runtime_memory_near_ceiling fires above this
    "near_ceiling_clear_ratio": 0.85,     # ... and resolves below this (hysteresis)
    "forecast_window_s": 120,             # slope fitted over this much history
    "oom_hold_s": 300,                    # oom_kill stays firing this long after the last kill
    "memory_pressure_some_ratio": 0.40,   # PSI some avg10 / 100 -> warning
    "memory_pressure_full_ratio": 0.10,   # PSI full avg10 / 100 -> critical (thrashing)
    "memory_pressure_clear_factor": 0.75, # resolves below threshold x this (hysteresis)
    "swap_in_use_bytes": 64 * 1024 * 1024,
    "swap_clear_factor": 0.5,
    "degradation_drop_ratio": 0.20,       # decode tok/s >20% below baseline
    "degradation_recover_ratio": 0.10,    # resolves when back within 10% of baseline
    "degradation_baseline_requests": 3,   # healthy requests needed for a baseline
    "degradation_confirm_requests": 2,    # consecutive slow requests before firing
    "degradation_history": 10,            # healthy speeds kept for the baseline median
    "reload_load_s": 1.0,                 # a request whose load_s exceeds this marks a reload
    "thermal_margin_celsius": 10.0,       # "near" a throttle point
    "thermal_clear_celsius": 3.0,         # extra margin before it resolves
    "thermal_clock_drop_ratio": 0.15,     # median clock of the last thermal_recent_s this far below
    "thermal_recent_s": 10,               # ... the window's 90th percentile = falling
    "default_throttle_celsius": None,     # per-zone points come from config["throttle_celsius"]
    "unlocked_clock_ratio": 0.98,         # gpu_freq_hz below max x this = not locked
    "unlocked_for_s": 10,                 # ... for this long
    "slo_min_requests": 20,               # fewer requests in the SLO window: no verdict
    "slo_critical_ratio": 0.90,           # within-deadline ratio below this -> critical
    "runtime_down_after_s": 15,           # runtime_up silent this long while the device reports
    "irq_min_rate_per_s": 1.0,            # interrupts/s on an isolated CPU that count
    "irq_rate_window_s": 30,
    "irq_ignore": ["LOC", "RES", "CAL", "TLB", "IPI*", "NMI", "SPU", "PMI", "IWI", "arch_timer"],
    "stale_after_s": 15,
}


def default_priority(kind: Any) -> str:
    """A runtime kind's default priority (the registry's), "background" for kinds it does not know."""
    found = get_kind(kind) if isinstance(kind, str) else None
    return found.default_priority if found is not None else "background"


def merged(config: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with a device/recording config. Never mutates its input."""
    config = copy.deepcopy(config or {})
    thresholds = {**DEFAULT_THRESHOLDS, **(config.get("thresholds") or {})}
    runtimes = config.get("runtimes")
    if not runtimes:
        runtimes = [{"name": name, "kind": name, "ceiling_bytes": ceiling, "priority": default_priority(name)}
                    for name, ceiling in DEFAULT_CEILINGS_BYTES.items()]
    for runtime in runtimes:
        runtime.setdefault("kind", runtime.get("name"))
        runtime.setdefault("priority", default_priority(runtime.get("kind")))
        if runtime.get("ceiling_bytes") is None and runtime.get("kind") in DEFAULT_CEILINGS_BYTES:
            runtime["ceiling_bytes"] = DEFAULT_CEILINGS_BYTES[runtime["kind"]]
    return {**config, "thresholds": thresholds, "runtimes": runtimes, "slos": config.get("slos") or [],
            # per-zone SW throttling points: the recording/device config, else thresholds (DeviceSettings)
            "throttle_celsius": config.get("throttle_celsius") or thresholds.get("throttle_celsius") or {},
            "want_locked_clocks": bool(config.get("want_locked_clocks", False)),
            "isolated_cpus": config.get("isolated_cpus") or ""}


def ceilings(config: dict[str, Any]) -> dict[str, float]:
    return {r["name"]: float(r["ceiling_bytes"]) for r in config["runtimes"] if r.get("ceiling_bytes")}


def runtime_priority(config: dict[str, Any], runtime: str) -> str:
    for r in config["runtimes"]:
        if r.get("name") == runtime:
            return str(r.get("priority") or "background")
    return "background"


def parse_cpulist(text: str | None) -> set[str]:
    """`"4-7,9"` -> {"4", "5", "6", "7", "9"}; malformed parts and CPUs >= 4096 are ignored
    (bounded: collectors.text.cpus_in)."""
    return {str(n) for n in cpus_in(str(text or ""))}
