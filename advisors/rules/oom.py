"""oom_kill: the kernel killed a process (cgroup oom_kill counter rose, or an oom_kill event)."""

from __future__ import annotations

from typing import Any

from advisors.rules.base import Finding, emits
from advisors.rules.window import Window


def counter_increase(points: list[tuple[float, float]], since: float) -> float:
    """How much a counter grew over steps that end at or after `since` (resets count from 0)."""
    total = 0.0
    for (_t0, v0), (t1, v1) in zip(points, points[1:], strict=False):
        if t1 < since:
            continue
        total += v1 - v0 if v1 >= v0 else v1
    return total


def _runtime_for_cgroup(config: dict[str, Any], cgroup: str) -> str | None:
    for runtime in config["runtimes"]:
        if runtime.get("cgroup") == cgroup:
            return str(runtime["name"])
    leaf = cgroup.rstrip("/").rsplit("/", 1)[-1]
    for runtime in config["runtimes"]:
        if runtime.get("name") and runtime["name"] in leaf:
            return str(runtime["name"])
    return None


@emits("oom_kill")
def oom_kill(window: Window, config: dict[str, Any], active: set[str]) -> list[Finding]:
    """Critical while a kill happened within `oom_hold_s`; labelled by runtime where known."""
    since = window.now - float(config["thresholds"]["oom_hold_s"])
    kills: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for _key, (labels, points) in window.by_metric("cgroup_oom_kills_total").items():
        cgroup = labels.get("cgroup", "")
        grew = counter_increase(points, since)
        if grew <= 0:
            continue
        runtime = _runtime_for_cgroup(config, cgroup)
        lab = {"runtime": runtime} if runtime else {"cgroup": cgroup}
        kills.setdefault(tuple(sorted(lab.items())), []).append(f"{grew:.0f} in cgroup {cgroup}")
    for event in window.events:
        if event.get("kind") != "oom_kill" or event["ts"] < since:
            continue
        if event.get("runtime"):
            lab = {"runtime": str(event["runtime"])}
        elif event.get("cgroup"):
            runtime = _runtime_for_cgroup(config, str(event["cgroup"]))
            lab = {"runtime": runtime} if runtime else {"cgroup": str(event["cgroup"])}
        else:
            lab = {}
        victim = event.get("process") or event.get("comm") or "a process"
        pid = f" (pid {event['pid']})" if event.get("pid") else ""
        kills.setdefault(tuple(sorted(lab.items())), []).append(f"killed {victim}{pid}")
    if not kills:  # a kill the cgroups we watch did not see: the host-wide /proc/vmstat counter
        host = counter_increase(window.points("host_oom_kills_total"), since)
        if host > 0:
            kills[()] = [f"{host:.0f} on the host (outside the watched cgroups)"]
    out = []
    for lab_items, what in kills.items():
        labels = dict(lab_items)
        subject = labels.get("runtime") or labels.get("cgroup")
        where = f"in {subject}" if subject else "on the host"
        out.append(Finding("oom_kill", "critical", labels, f"OOM kill {where}: {'; '.join(dict.fromkeys(what))}"))
    return out
