"""Checks, recommendations and actions in words and units, for pages and command lines.

Plain functions, no Django: every value a page or `doctor`/`evaluate` shows goes through here, so no
screen shows JSON, Python literals or snake_case ids ("schedutil on 12 of 12 CPUs", "1.9 GiB of
26.8 GiB used", "set the CPU governor to performance on CPUs 0-11").
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from collectors.text import cpus_in, is_uint

CHECK_TITLES = {
    "preempt_rt": "Real-time kernel (PREEMPT_RT)",
    "cpu_governor": "CPU frequency governor",
    "clocks_locked": "Clocks locked at maximum",
    "nvpmodel": "Power mode (nvpmodel)",
    "isolcpus": "Isolated inference cores",
    "irq_affinity": "IRQs kept off isolated cores",
    "thp": "Transparent hugepages",
    "swap": "Swap",
    "desktop": "Desktop compositor",
    "rt_sched": "Real-time scheduling of runtimes",
    "mlock": "Runtime memory locked",
    "gpu_runtime_pm": "GPU runtime power management",
}
STATUS_WORDS = {"ok": "ok", "warn": "warning", "fail": "failing", "unknown": "unknown"}


def check_title(check: str) -> str:
    return CHECK_TITLES.get(check, check.replace("_", " ").capitalize())


def size(num: Any) -> str:
    """Bytes as B / KiB / MiB / GiB with one decimal (binary units, as free(1) and /proc show)."""
    try:
        value = float(num)
    except (TypeError, ValueError):
        return "—"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(value) >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} B"


def parse_cpus(text: Any) -> set[int]:
    """The CPUs a list like "0-2,5" names: {0, 1, 2, 5}; parts that do not parse, and CPUs at or
    above 4096, are left out (bounded: collectors.text.cpus_in, a device reports these lists)."""
    return cpus_in(text) if isinstance(text, str) else set()


def cpu_list(cpus: Any) -> str:
    """[0, 1, 2, 5] -> "0-2,5"."""
    nums = sorted({int(c) for c in cpus if is_uint(str(c))})
    parts: list[str] = []
    for n in nums:
        if parts and n == int(parts[-1].rpartition("-")[2]) + 1:
            parts[-1] = f"{parts[-1].partition('-')[0]}-{n}"
        else:
            parts.append(str(n))
    return ",".join(parts)


def _yes(value: Any) -> str:
    return "yes" if value is True else "no" if value is False else "not known"


def governors(value: dict[str, Any]) -> str:
    counts = Counter(str(v) for v in value.values())
    total = len(value)
    return "; ".join(f"{gov} on {n} of {total} CPUs" for gov, n in counts.most_common())


def describe(check: str, value: Any) -> str:
    """A check's current value in words ("—" when unknown)."""
    if value is None or value == "" or value == {} or value == []:
        return "—"
    if check == "preempt_rt" and isinstance(value, bool):
        return "PREEMPT_RT kernel" if value else "stock kernel (not real-time)"
    if check == "cpu_governor" and isinstance(value, dict):
        return governors(value)
    if check == "clocks_locked" and isinstance(value, dict):
        locked = [k.upper() for k, v in sorted(value.items()) if v is True]
        free = [k.upper() for k, v in sorted(value.items()) if v is False]
        parts = [f"locked: {', '.join(locked)}"] if locked else []
        parts += [f"not locked: {', '.join(free)}"] if free else []
        return "; ".join(parts) or "not known"
    if check == "isolcpus" and isinstance(value, dict):
        return f"isolated CPUs {value.get('isolated') or 'none'}; nohz_full on {value.get('nohz_full') or 'none'}"
    if check == "irq_affinity" and isinstance(value, dict):
        on = value.get("irqs_on_isolated") or []
        if not on:
            return f"no IRQ on isolated CPUs {value.get('isolated')}"
        shown = ", ".join(str(i) for i in on[:6]) + (f" and {len(on) - 6} more" if len(on) > 6 else "")
        return f"{len(on)} IRQ{'s' if len(on) != 1 else ''} ({shown}) may run on isolated CPUs {value.get('isolated')}"
    if check == "swap" and isinstance(value, dict):
        used, total = value.get("used_bytes"), value.get("total_bytes")
        if total:
            return f"on: {size(used or 0)} of {size(total)} used"
        return f"on: {size(used or 0)} used"
    if check == "rt_sched" and isinstance(value, dict):
        return "; ".join(f"{rt}: " + (f"real-time priority {p}" if p else "no real-time threads")
                         for rt, p in sorted(value.items()))
    if check == "mlock" and isinstance(value, dict):
        return "; ".join(f"{rt}: " + (f"{size(v * 1024)} locked" if isinstance(v, (int, float)) and v else
                                      "locked" if v is True else "nothing locked")
                         for rt, v in sorted(value.items()))
    if check == "gpu_runtime_pm" and isinstance(value, dict):
        return "; ".join(f"{dev}: {mode}" for dev, mode in sorted(value.items()))
    if check == "desktop" and isinstance(value, list):
        return "running: " + ", ".join(str(v) for v in value[:6])
    return plain(value)


def plain(value: Any) -> str:
    """Any value without JSON or Python syntax: booleans as yes/no, dicts as "key: value; ..."."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return _yes(value)
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return "; ".join(f"{_key(k)}: {plain(v)}" for k, v in value.items()) or "—"
    if isinstance(value, (list, tuple, set)):
        return ", ".join(plain(v) for v in value) or "none"
    return str(value)


def _key(key: Any) -> str:
    text = str(key)
    if text.endswith("_bytes"):
        text = text[:-6]
    return text.replace("_", " ")


def describe_recommended(check: str, value: Any) -> str:
    if check == "preempt_rt" and value is True:
        return "PREEMPT_RT kernel"
    if check == "clocks_locked" and value is True:
        return "CPU, GPU and EMC clocks locked at maximum"
    return plain(value)


# -- actions -------------------------------------------------------------------------------------
def describe_action(action: dict[str, Any] | None) -> str:
    """{"action": "set_governor", "params": {...}} -> "set the CPU governor to performance on CPUs 0-11"."""
    if not action:
        return "advice only"
    name, params = action.get("action"), action.get("params") or {}
    if name == "set_governor":
        return f"set the CPU governor to {params.get('value')} on CPUs {params.get('cpus')}"
    if name == "jetson_clocks":
        return "lock CPU, GPU and EMC clocks at maximum (jetson_clocks)" if params.get("on", True) else \
            "restore the stored clocks (jetson_clocks --restore)"
    if name == "thp":
        return f"set transparent hugepages to {params.get('mode')}"
    if name == "swapoff":
        return "turn every swap device off (swapoff -a)"
    if name == "irq_affinity":
        which = "every movable IRQ" if params.get("irq") == "all" else f"IRQ {params.get('irq')}"
        return f"move {which} to CPUs {params.get('cpus')}"
    if name == "gpu_runtime_pm":
        return f"set GPU runtime power management to {params.get('value')}"
    if name == "nvpmodel":
        return f"switch the power mode to {params.get('mode')}"
    if name == "service":
        return f"{params.get('op')} the service {params.get('name')}"
    if name == "restart_container":
        return f"restart the container {params.get('name')}"
    if name == "evict":
        return f"unload {params.get('model')} from {params.get('runtime')}"
    if name == "throttle":
        return f"throttle {params.get('runtime')} to {params.get('max_concurrency')} request(s) at a time"
    if name == "cgroup_memory":
        return f"set the memory limit of {params.get('cgroup')} to {plain(params.get('max'))}"
    if name == "batch":
        steps = params.get("steps") or []
        head = f"{len(steps)} tuning step{'s' if len(steps) != 1 else ''}: "
        return head + "; ".join(describe_action(s) for s in steps)
    if name == "undo":
        return f"undo request {params.get('request_id')}"
    return f"{str(name).replace('_', ' ')} ({plain(params)})" if params else str(name).replace("_", " ")


def change(action: dict[str, Any], state: dict[str, Any]) -> dict[str, str]:
    """What one step changes, old -> new, from the latest telemetry (before the agent is asked)."""
    name, params = action.get("action"), action.get("params") or {}
    old, new, target = "—", plain(params) if params else "done", describe_action(action)
    if name == "set_governor":
        govs = state.get("cpu_governor") or {}
        chosen = {str(c) for c in parse_cpus(params.get("cpus"))}
        picked = {c: g for c, g in govs.items() if c in chosen}
        old = governors(picked) if picked else "not known"
        new = f"{params.get('value')} on {len(chosen)} of {len(chosen)} CPUs"
        target = f"CPU governor, CPUs {params.get('cpus')}"
    elif name == "jetson_clocks":
        old = describe("clocks_locked", state.get("clocks_locked"))
        new = "locked: CPU, EMC, GPU" if params.get("on", True) else "restored"
        target = "Clocks (jetson_clocks)"
    elif name == "thp":
        old, new, target = str(state.get("thp") or "not known"), str(params.get("mode")), "Transparent hugepages"
    elif name == "swapoff":
        old = describe("swap", state.get("swap")) if isinstance(state.get("swap"), dict) and \
            state["swap"].get("enabled") else "not known"
        new, target = "off", "Swap"
    elif name == "gpu_runtime_pm":
        old = describe("gpu_runtime_pm", state.get("gpu_runtime_pm"))
        new, target = str(params.get("value")), "GPU runtime power management"
    elif name == "irq_affinity":
        old = describe("irq_affinity", state.get("irq_affinity"))
        new, target = f"IRQs on CPUs {params.get('cpus')}", "IRQ affinity"
    elif name == "nvpmodel":
        mode = state.get("nvpmodel")
        old = plain(mode.get("name") or mode.get("id")) if isinstance(mode, dict) else plain(mode)
        new, target = str(params.get("mode")), "Power mode"
    return {"target": target, "old": old, "new": new}


def risk_level(risk: str) -> str:
    """"medium: kernel rebuild ..." -> "medium" (low when not stated)."""
    head = str(risk or "").split(":", 1)[0].strip().lower()
    return head if head in ("low", "medium", "high") else "low"
