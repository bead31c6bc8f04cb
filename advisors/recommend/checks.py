"""The tuning checklist (Orin guide 17.6 and Appendix A) as plain functions of the tuning state.

Input: the `state` the tuning source publishes (collectors/sources/tuning.py; keys named after the
check ids) plus the device config. Output per check, the `manage.py doctor --json` shape:
`{"check", "status": ok|warn|fail|unknown, "value", "recommended", "evidence"}`.
The thresholds that grade a check live in CHECKLIST below: they are data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from advisors.recommend.words import cpu_list, parse_cpus
from advisors.rules.pressure import swap_reading
from collectors.text import is_uint

CHECK_IDS = ("preempt_rt", "cpu_governor", "clocks_locked", "nvpmodel", "isolcpus", "irq_affinity", "thp",
             "swap", "desktop", "rt_sched", "mlock", "gpu_runtime_pm")

# where each value is read on the device (the evidence shown next to it)
WHERE = {
    "preempt_rt": "/sys/kernel/realtime, /proc/version",
    "cpu_governor": "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor",
    "clocks_locked": "cpufreq scaling_min/max_freq, /sys/class/devfreq/<gpu>/min/max_freq, bpmp emc",
    "nvpmodel": "/var/lib/nvpmodel/status, /etc/nvpmodel.conf (nvpmodel -q)",
    "isolcpus": "/proc/cmdline, /sys/devices/system/cpu/isolated, nohz_full",
    "irq_affinity": "/proc/irq/*/smp_affinity_list against the isolated CPUs",
    "thp": "/sys/kernel/mm/transparent_hugepage/enabled",
    "swap": "/proc/swaps",
    "desktop": "/proc/*/stat (gdm, Xorg, gnome-shell, weston, ...)",
    "rt_sched": "/proc/<runtime pid>/task/*/stat (policy, rt_priority)",
    "mlock": "/proc/<runtime pid>/status VmLck",
    "gpu_runtime_pm": "/sys/class/devfreq/<gpu>/device/power/control, NVIDIA PCI power/control",
}

SCHED_RT = ("SCHED_FIFO", "SCHED_RR", "fifo", "rr")


def _result(check: str, status: str, value: Any, recommended: Any, note: str = "") -> dict[str, Any]:
    evidence = WHERE[check] + (f" -- {note}" if note else "")
    return {"check": check, "status": status, "value": value, "recommended": recommended, "evidence": evidence}


def inference_cpus(state: dict[str, Any], config: dict[str, Any]) -> set[int]:
    """The cores inference runs on: the configured isolated CPUs, else the isolated ones, else all."""
    for text in (config.get("isolated_cpus"), state.get("isolated_cpus")):
        cpus = parse_cpus(text)
        if cpus:
            return cpus
    governors = state.get("cpu_governor") or {}
    return {int(c) for c in governors if is_uint(c)}


def _cpu_ranges(cpus: Any) -> str:
    return cpu_list(cpus)


def host_cpus(state: dict[str, Any], config: dict[str, Any]) -> set[int]:
    """The host's CPUs: from the governors, else from the per-core load series (config "online_cpus")."""
    cpus = {int(c) for c in (state.get("cpu_governor") or {}) if is_uint(str(c))}
    return cpus or parse_cpus(config.get("online_cpus"))


def suggest_isolated(state: dict[str, Any], config: dict[str, Any]) -> str:
    """A sixth of the real CPUs (at least one), taken from the top; none on hosts under 4 CPUs."""
    cpus = sorted(host_cpus(state, config))
    if len(cpus) < 4:
        return ""
    picked = cpus[-max(1, len(cpus) // 6):]
    return ",".join(str(c) for c in picked) if len(picked) < 3 else f"{picked[0]}-{picked[-1]}"


def is_jetson(state: dict[str, Any], config: dict[str, Any]) -> bool:
    if "jetson" in config:
        return bool(config["jetson"])
    clocks = state.get("clocks_locked")
    return (isinstance(state.get("nvpmodel"), dict) and state["nvpmodel"].get("id") is not None) or (
        isinstance(clocks, dict) and (clocks.get("gpu") is not None or clocks.get("emc") is not None))


def boot_file(state: dict[str, Any], config: dict[str, Any]) -> str:
    """Where boot parameters go on this platform: extlinux on Jetson, GRUB elsewhere."""
    if is_jetson(state, config):
        return "APPEND line of /boot/extlinux/extlinux.conf"
    return "GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub"


def check_preempt_rt(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    value = state.get("preempt_rt")
    if value is None:
        return _result("preempt_rt", "unknown", None, True)
    return _result("preempt_rt", "ok" if value else "warn", bool(value), True,
                   "" if value else "stock kernel: scheduling latency is unbounded under load")


def check_cpu_governor(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    governors = state.get("cpu_governor")
    if not governors:
        return _result("cpu_governor", "unknown", None, "performance")
    cores = inference_cpus(state, config)
    wrong = {c: g for c, g in governors.items() if is_uint(c) and int(c) in cores and g != "performance"}
    value = {c: governors[c] for c in sorted(governors, key=lambda c: int(c) if is_uint(c) else -1)}
    note = f"not performance on CPUs {_cpu_ranges(wrong)}" if wrong else ""
    return _result("cpu_governor", "warn" if wrong else "ok", value, "performance", note)


def check_clocks_locked(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    clocks = state.get("clocks_locked")
    if not isinstance(clocks, dict) or all(v is None for v in clocks.values()):
        return _result("clocks_locked", "unknown", clocks, True)
    unlocked = [k for k, v in clocks.items() if v is False]
    if not unlocked:
        return _result("clocks_locked", "ok", clocks, True)
    status = "fail" if config.get("want_locked_clocks") else "warn"
    return _result("clocks_locked", status, clocks, True, f"min != max for {', '.join(unlocked)}")


def check_nvpmodel(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    mode = state.get("nvpmodel")
    if not isinstance(mode, dict) or mode.get("id") is None:
        return _result("nvpmodel", "unknown", None, "MAXN")
    name = str(mode.get("name") or "")
    ok = name.upper().startswith("MAXN")
    label = f"{mode['id']} ({name})" if name and name != mode["id"] else str(mode["id"])
    return _result("nvpmodel", "ok" if ok else "warn", label, "MAXN",
                   "" if ok or name else "mode name unknown (no /etc/nvpmodel.conf)")


def check_isolcpus(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    if "isolated_cpus" not in state:
        return _result("isolcpus", "unknown", None, "isolcpus nohz_full rcu_nocbs for inference cores")
    isolated = state.get("isolated_cpus") or ""
    nohz = state.get("nohz_full_cpus") or ""
    cores = config.get("isolated_cpus") or isolated or suggest_isolated(state, config)
    where = boot_file(state, config)
    if cores:
        recommended = f"isolcpus={cores} nohz_full={cores} rcu_nocbs={cores} ({where})"
    else:
        count = len(host_cpus(state, config))
        recommended = (f"too few CPUs to isolate one for inference (this host has {count})" if count
                       else f"isolcpus, nohz_full and rcu_nocbs for the inference cores ({where})")
    if not isolated:
        return _result("isolcpus", "warn", "none", recommended, "no CPU is isolated")
    if parse_cpus(nohz) != parse_cpus(isolated):
        return _result("isolcpus", "warn", {"isolated": isolated, "nohz_full": nohz or "none"}, recommended,
                       "nohz_full does not cover the isolated CPUs")
    return _result("isolcpus", "ok", {"isolated": isolated, "nohz_full": nohz}, recommended)


def check_irq_affinity(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    info = state.get("irq_affinity")
    if not isinstance(info, dict) or not info.get("isolated"):
        return _result("irq_affinity", "unknown", None, "no IRQ on isolated CPUs", "no isolated CPUs to protect")
    on = info.get("irqs_on_isolated") or []
    if on:
        return _result("irq_affinity", "warn", {"isolated": info["isolated"], "irqs_on_isolated": on},
                       "no IRQ on isolated CPUs", f"{len(on)} IRQ(s) may run on {info['isolated']}")
    return _result("irq_affinity", "ok", {"isolated": info["isolated"], "irqs_on_isolated": []},
                   "no IRQ on isolated CPUs")


def check_thp(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    mode = state.get("thp")
    if mode is None:
        return _result("thp", "unknown", None, "never")
    return _result("thp", {"never": "ok", "madvise": "warn"}.get(mode, "fail"), mode, "never")


def check_swap(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    info = state.get("swap")
    if not isinstance(info, dict):
        return _result("swap", "unknown", None, "off")
    if not info.get("enabled"):
        return _result("swap", "ok", "off", "off")
    used = int(info.get("used_bytes") or 0)
    value = {"total_bytes": info.get("total_bytes"), "used_bytes": used}
    return _result("swap", "fail" if used > 0 else "warn", value, "off",
                   f"{used / 2**20:.0f} MiB swapped out" if used else "enabled but unused")


def check_desktop(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    info = state.get("desktop")
    if not isinstance(info, dict):
        return _result("desktop", "unknown", None, "stopped")
    if info.get("running"):
        return _result("desktop", "warn", info.get("processes") or ["desktop"], "stopped",
                       "a compositor shares the GPU with inference")
    return _result("desktop", "ok", "stopped", "stopped")


def check_rt_sched(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    info = state.get("rt_sched")
    if not isinstance(info, dict) or not info:
        return _result("rt_sched", "unknown", None, "SCHED_FIFO 80", "no runtime process found")
    value = {rt: (v or {}).get("max_rt_priority", 0) for rt, v in info.items()}
    rt = [name for name, v in info.items()
          if any(p in SCHED_RT for p in ((v or {}).get("policies") or {}))]
    missing = sorted(set(info) - set(rt))
    return _result("rt_sched", "warn" if missing else "ok", value, "SCHED_FIFO 80",
                   f"no real-time threads in {', '.join(missing)}" if missing else "")


def check_mlock(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    info = state.get("mlock")
    if not isinstance(info, dict) or not info:
        return _result("mlock", "unknown", None, "mlockall(MCL_CURRENT)", "no runtime process found")
    missing = sorted(rt for rt, locked in info.items() if not locked)
    return _result("mlock", "warn" if missing else "ok", info, "mlockall(MCL_CURRENT)",
                   f"nothing locked in {', '.join(missing)}" if missing else "")


def check_gpu_runtime_pm(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    info = state.get("gpu_runtime_pm")
    if not isinstance(info, dict) or not info:
        return _result("gpu_runtime_pm", "unknown", None, "on")
    auto = sorted(dev for dev, v in info.items() if v != "on")
    return _result("gpu_runtime_pm", "warn" if auto else "ok", info, "on",
                   f"runtime suspend allowed on {', '.join(auto)}: wake-up adds latency" if auto else "")


CHECKLIST: dict[str, Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]] = {
    "preempt_rt": check_preempt_rt, "cpu_governor": check_cpu_governor, "clocks_locked": check_clocks_locked,
    "nvpmodel": check_nvpmodel, "isolcpus": check_isolcpus, "irq_affinity": check_irq_affinity,
    "thp": check_thp, "swap": check_swap, "desktop": check_desktop, "rt_sched": check_rt_sched,
    "mlock": check_mlock, "gpu_runtime_pm": check_gpu_runtime_pm,
}


def normalize(state: dict[str, Any] | None, values: dict[str, float] | None = None) -> dict[str, Any]:
    """Accept the older/simpler shapes too (recordings made before the tuning source settled):
    governors keyed by CPU ranges ("0-11"), nvpmodel as a bare name, `jetson_clocks` and
    `swap_enabled` booleans."""
    state = dict(state or {})
    governors = state.get("cpu_governor")
    if isinstance(governors, dict) and any(not is_uint(k) for k in governors):
        expanded = {}
        for key, value in governors.items():
            for cpu in sorted(parse_cpus(str(key))):
                expanded[str(cpu)] = value
        state["cpu_governor"] = expanded
    if isinstance(state.get("nvpmodel"), str):
        name = state["nvpmodel"]
        state["nvpmodel"] = {"id": int(name) if is_uint(name) else name, "name": None if is_uint(name) else name}
    if "clocks_locked" not in state and isinstance(state.get("jetson_clocks"), bool):
        locked = state["jetson_clocks"]
        state["clocks_locked"] = {"cpu": locked, "gpu": locked, "emc": locked}
    if "swap" not in state and isinstance(state.get("swap_enabled"), bool):
        state["swap"] = {"enabled": state["swap_enabled"], "used_bytes": 0}
    # one reading of swap for the checklist, the advisor and the swap_in_use alert
    if values and (reading := swap_reading(values, state)) is not None:
        state["swap"] = reading
    return state


def run_checks(state: dict[str, Any], config: dict[str, Any] | None = None,
               values: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Every check, in the checklist's order; a check that breaks on odd data reads 'unknown'.
    `values` (the latest numeric series) give the readings that are series (swap sizes)."""
    config = config or {}
    state = normalize(state, values)
    out = []
    for check in CHECK_IDS:
        try:
            out.append(CHECKLIST[check](state, config))
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            out.append(_result(check, "unknown", None, None, f"unreadable state: {exc.__class__.__name__}"))
    return out
