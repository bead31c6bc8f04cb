"""Tuning recommendations: one per checklist item that is not ok, with the action it maps to."""

from __future__ import annotations

from typing import Any

from advisors.recommend.checks import inference_cpus, normalize, parse_cpus, run_checks
from collectors.actions.params import format_cpus
from collectors.text import is_uint

# Static advice per check: why (one sentence), risk, reboot, and whether its action is safe enough
# for "apply recommended tuning" (reversible, no reboot, no user-visible side effect).
ADVICE: dict[str, dict[str, Any]] = {
    "preempt_rt": {"title": "Run a PREEMPT_RT kernel",
                   "why": "A fully preemptible kernel bounds scheduling latency under load, cutting p99 jitter "
                          "from milliseconds to tens of microseconds.",
                   "risk": "medium: kernel rebuild; out-of-tree modules must be rebuilt for it", "needs_reboot": True},
    "cpu_governor": {"title": "CPU governor to performance on inference cores",
                     "why": "schedutil ramps the clock after the load arrives, so each request starts on a slow core.",
                     "risk": "low: more power and heat on those cores", "needs_reboot": False, "safe": True},
    "clocks_locked": {"title": "Lock clocks at maximum (jetson_clocks)",
                      "why": "Dynamic GPU/EMC/CPU clocks add ramp-up time and run-to-run variance to every inference.",
                      "risk": "low: higher idle power and temperature; undo restores the stored clocks",
                      "needs_reboot": False, "safe": True},
    "nvpmodel": {"title": "Power mode MAXN for latency work",
                 "why": "Lower nvpmodel modes cap clocks and online cores, which caps throughput and latency.",
                 "risk": "medium: more power; some mode switches need a reboot", "needs_reboot": False},
    "isolcpus": {"title": "Isolate inference cores (isolcpus, nohz_full, rcu_nocbs)",
                 "why": "Isolated cores run only the threads pinned to them, so housekeeping cannot preempt inference.",
                 "risk": "medium: fewer cores for everything else; boot parameter change",
                 "needs_reboot": True},
    "irq_affinity": {"title": "Move IRQs off the isolated cores",
                     "why": "An interrupt on an inference core preempts the inference thread at a random moment.",
                     "risk": "low: IRQs share the housekeeping cores; undo restores each IRQ's affinity",
                     "needs_reboot": False, "safe": True},
    "thp": {"title": "Transparent hugepages to never",
            "why": "THP compaction and khugepaged stalls show up as multi-millisecond latency spikes.",
            "risk": "low: processes that relied on huge pages get more TLB misses", "needs_reboot": False,
            "safe": True},
    "swap": {"title": "Turn swap off (or keep it unused)",
             "why": "A page fault that reads from swap stalls the inference thread for milliseconds.",
             "risk": "medium: with little free RAM, swapoff pulls pages back in and can wake the OOM killer",
             "needs_reboot": False},
    "desktop": {"title": "Stop the desktop compositor",
                "why": "A compositor shares the GPU and memory bandwidth with inference and adds jitter.",
                "risk": "medium: ends local graphical sessions", "needs_reboot": False},
    "rt_sched": {"title": "Run inference threads SCHED_FIFO (priority 80)",
                 "why": "Real-time scheduling lets the inference thread preempt ordinary tasks at once.",
                 "risk": "medium: a spinning FIFO thread can starve its core; set it in the runtime's unit "
                         "(CPUSchedulingPolicy=fifo)",
                 "needs_reboot": False},
    "mlock": {"title": "Lock the runtime's memory (mlockall)",
              "why": "Locked pages are never reclaimed or swapped, so the hot path takes no page faults.",
              "risk": "medium: locked memory is unavailable to others; needs LimitMEMLOCK=infinity",
              "needs_reboot": False},
    "gpu_runtime_pm": {"title": "GPU runtime power management to on",
                       "why": "With runtime PM on auto the GPU may suspend when idle and the next request pays "
                              "the wake-up.",
                       "risk": "low: slightly higher idle power", "needs_reboot": False, "safe": True},
}


def _action(check: dict[str, Any], state: dict[str, Any], values: dict[str, float],
            config: dict[str, Any]) -> dict[str, Any] | None:
    name = check["check"]
    if name == "cpu_governor":
        governors = state.get("cpu_governor") or {}
        cores = inference_cpus(state, config)
        wrong = sorted(int(c) for c, g in governors.items() if is_uint(c) and int(c) in cores and g != "performance")
        if not wrong:
            return None
        return {"action": "set_governor", "params": {"cpus": format_cpus(wrong), "value": "performance"}}
    if name == "clocks_locked":
        clocks = state.get("clocks_locked") or {}
        jetson = clocks.get("gpu") is not None or clocks.get("emc") is not None
        return {"action": "jetson_clocks", "params": {"on": True}} if jetson else None
    if name == "nvpmodel":  # the agent finds MAXN's id in the device's own nvpmodel.conf
        return {"action": "nvpmodel", "params": {"mode": "MAXN"}}
    if name == "irq_affinity":
        isolated = parse_cpus((state.get("irq_affinity") or {}).get("isolated"))
        every = {int(c) for c in (state.get("cpu_governor") or {}) if is_uint(c)}
        housekeeping = sorted(every - isolated)
        if isolated and housekeeping:
            return {"action": "irq_affinity", "params": {"irq": "all", "cpus": format_cpus(housekeeping)}}
        return None
    if name == "thp":
        return {"action": "thp", "params": {"mode": "never"}}
    if name == "swap":
        return {"action": "swapoff", "params": {}}
    if name == "desktop":
        service = config.get("desktop_service", "gdm3.service")
        return {"action": "service", "params": {"op": "stop", "name": service}}
    if name == "gpu_runtime_pm":
        return {"action": "gpu_runtime_pm", "params": {"value": "on"}}
    return None


def _swap_is_safe(state: dict[str, Any], values: dict[str, float]) -> bool:
    used = float((state.get("swap") or {}).get("used_bytes") or 0)
    available = values.get("ram_available_bytes")
    return available is not None and used * 2 < available


def tuning_recommendations(state: dict[str, Any], values: dict[str, float] | None = None,
                           config: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    values, config = values or {}, config or {}
    state = normalize(state, values)
    out = []
    for check in run_checks(state, config):
        if check["status"] in ("ok", "unknown"):
            continue
        advice = ADVICE[check["check"]]
        action = _action(check, state, values, config)
        safe = bool(advice.get("safe")) and action is not None
        if check["check"] == "swap" and action is not None:
            safe = _swap_is_safe(state, values)
        out.append({"id": check["check"], "kind": "tuning", "title": advice["title"], "status": check["status"],
                    "evidence": {"value": check["value"], "where": check["evidence"]},
                    "recommended": check["recommended"], "why": advice["why"], "risk": advice["risk"],
                    "needs_reboot": advice["needs_reboot"], "action": action, "safe": safe})
    fan = fan_recommendation(values, config)
    if fan:
        out.append(fan)
    return out


def fan_recommendation(values: dict[str, float], config: dict[str, Any],
                       alerts: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
    fans = {k: v for k, v in values.items() if k.startswith("fan_speed_ratio")}
    temps = {k: v for k, v in values.items() if k.startswith("temperature_celsius") and v > -100}
    if not fans or not temps:
        return None
    hottest_key = max(temps, key=lambda k: temps[k])
    hot = temps[hottest_key] >= float(config.get("fan_hot_celsius", 70.0))
    slow = max(fans.values()) < float(config.get("fan_min_ratio_when_hot", 0.6))
    if not (hot and slow):
        return None
    return {"id": "fan", "kind": "tuning", "title": "Run the fan faster", "status": "warn",
            "evidence": {"value": {hottest_key: temps[hottest_key], **fans},
                         "where": "thermal zones and the pwm fan (latest telemetry)"},
            "recommended": "fan at maximum (jetson_clocks --fan) or a 'cool' fan profile",
            "why": "The SoC is hot while the fan idles, so thermal throttling will cut the clocks next.",
            "risk": "low: noise and fan wear", "needs_reboot": False, "action": None, "safe": False}
