"""Runtime advice (the memory broker's policy): evict the least-recently-used background model near
a ceiling, throttle a background runtime when a critical one misses its SLO, restart a runtime on
reload degradation, and free memory for models that spilled to the CPU.

Policy: priorities are critical / essential / background. Only background runtimes are ever the
target of an eviction or a throttle that the advisor proposes; `auto_ok` marks the one thing auto
mode may do on its own (evict the LRU background model on a ceiling breach).
"""

from __future__ import annotations

from typing import Any

from collectors.series import SeriesKeyError, parse_series_key

MEMORY_RULES = ("runtime_memory_over_ceiling", "runtime_memory_near_ceiling", "memory_pressure_high", "oom_kill")
SPILL_RATIO = 0.95  # vram / size below this: part of the model is on the CPU
THROTTLE = {"max_concurrency": 1, "max_queue": 4}


def priorities(config: dict[str, Any]) -> dict[str, str]:
    return {r["name"]: r.get("priority", "background") for r in config.get("runtimes") or [] if r.get("name")}


def loaded_models(values: dict[str, float]) -> dict[tuple[str, str], dict[str, float]]:
    """{(runtime, model): {"bytes", "vram_bytes"}} from runtime_model_(vram_)bytes series."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for key, value in values.items():
        if not key.startswith("runtime_model_"):
            continue
        try:
            name, labels = parse_series_key(key)
        except SeriesKeyError:
            continue
        if "runtime" not in labels or "model" not in labels:
            continue
        field = {"runtime_model_bytes": "bytes", "runtime_model_vram_bytes": "vram_bytes"}.get(name)
        if field:
            out.setdefault((labels["runtime"], labels["model"]), {})[field] = value
    return out


def lru_model(values: dict[str, float], last_used: dict[str, float], runtimes: list[str],
              exclude: tuple[str, str] | None = None) -> tuple[str, str, float] | None:
    """The least recently used loaded model of `runtimes` (never used counts as oldest)."""
    candidates = [(last_used.get(f"{rt}/{model}", 0.0), -info.get("bytes", 0.0), rt, model)
                  for (rt, model), info in loaded_models(values).items()
                  if rt in runtimes and (rt, model) != exclude]
    if not candidates:
        return None
    used, neg_bytes, rt, model = min(candidates)
    return rt, model, -neg_bytes


def _gib(value: float) -> str:
    return f"{value / 2**30:.1f} GiB"


def _evict_rec(rt: str, model: str, size: float, used: float, reason: str, evidence: dict[str, Any],
               auto_ok: bool) -> dict[str, Any]:
    return {"id": f"evict:{rt}:{model}", "kind": "runtime", "title": f"Evict {model} from {rt}",
            "status": "warn", "evidence": evidence,
            "recommended": f"unload {model} ({_gib(size)}, last used {'never' if not used else f'at {used:.0f}'})",
            "why": reason, "risk": "low: the model reloads on its next request, which then waits for the load",
            "needs_reboot": False, "action": {"action": "evict", "params": {"runtime": rt, "model": model}},
            "safe": False, "auto_ok": auto_ok}


def memory_recommendations(alerts: list[dict[str, Any]], values: dict[str, float], last_used: dict[str, float],
                           config: dict[str, Any]) -> list[dict[str, Any]]:
    prio = priorities(config)
    background = [rt for rt, p in prio.items() if p == "background"]
    out, seen = [], set()
    for alert in alerts:
        if alert.get("rule") not in MEMORY_RULES:
            continue
        rt = (alert.get("labels") or {}).get("runtime")
        groups = ([rt] if rt in background else []) + [background]
        choice = None
        for group in groups:
            choice = lru_model(values, last_used, group if isinstance(group, list) else [group])
            if choice:
                break
        evidence = {"value": alert.get("summary") or alert.get("rule"), "where": f"alert {alert.get('rule')}"
                    + (f" on {rt}" if rt else "")}
        if choice is None:
            key = f"nothing-to-evict:{rt}"
            if key not in seen:
                seen.add(key)
                out.append({"id": key, "kind": "runtime", "title": f"Memory is short{f' in {rt}' if rt else ''}",
                            "status": "warn", "evidence": evidence,
                            "recommended": "lower a background runtime's ceiling or unload a model by hand",
                            "why": "No background runtime holds a model the advisor may evict.",
                            "risk": "none (advice only)", "needs_reboot": False, "action": None, "safe": False,
                            "auto_ok": False})
            continue
        target_rt, model, size = choice
        if f"evict:{target_rt}:{model}" in seen:
            continue
        seen.add(f"evict:{target_rt}:{model}")
        whose = "its" if target_rt == rt else f"background runtime {target_rt}'s"
        reason = (f"{rt or 'The device'} is near its memory ceiling; unloading {whose} least-recently-used "
                  f"model frees unified memory before the OOM killer picks a victim.")
        auto_ok = alert.get("rule") == "runtime_memory_over_ceiling" and prio.get(target_rt) == "background"
        out.append(_evict_rec(target_rt, model, size, last_used.get(f"{target_rt}/{model}", 0.0), reason,
                              evidence, auto_ok))
    return out


def slo_recommendations(alerts: list[dict[str, Any]], last_used: dict[str, float],
                        config: dict[str, Any]) -> list[dict[str, Any]]:
    prio = priorities(config)
    out = []
    for alert in alerts:
        if alert.get("rule") != "latency_slo_breach":
            continue
        labels = alert.get("labels") or {}
        rt = str(labels.get("runtime") or "")
        if prio.get(rt) not in ("critical", "essential"):
            continue
        busiest = sorted((rt_b for rt_b, p in prio.items() if p == "background" and rt_b != rt),
                         key=lambda b: -max([t for k, t in last_used.items() if k.startswith(f"{b}/")] or [0.0]))
        if not busiest:
            continue
        target = busiest[0]
        out.append({"id": f"throttle:{target}", "kind": "runtime", "title": f"Throttle {target}",
                    "status": "warn",
                    "evidence": {"value": alert.get("summary") or "SLO breach",
                                 "where": f"alert latency_slo_breach on {rt}/{labels.get('model', '')}"},
                    "recommended": f"admission limit {THROTTLE['max_concurrency']} concurrent, "
                                   f"queue {THROTTLE['max_queue']} on {target}",
                    "why": f"{rt} is {prio.get(rt)} and misses its deadline while background runtime {target} "
                           "competes for the GPU and memory bandwidth.",
                    "risk": f"low: {target}'s clients get 429/503 with Retry-After beyond the limit; undo removes it",
                    "needs_reboot": False,
                    "action": {"action": "throttle", "params": {"runtime": target, **THROTTLE}},
                    "safe": False, "auto_ok": False})
    return out


def restart_recommendations(alerts: list[dict[str, Any]], config: dict[str, Any]) -> list[dict[str, Any]]:
    by_name = {r["name"]: r for r in config.get("runtimes") or [] if r.get("name")}
    out, seen = [], set()
    for alert in alerts:
        if alert.get("rule") != "reload_degradation":
            continue
        labels = alert.get("labels") or {}
        rt = labels.get("runtime")
        if rt in seen:
            continue
        seen.add(rt)
        runtime = by_name.get(rt) or {}
        if runtime.get("container"):
            action = {"action": "restart_container", "params": {"name": runtime["container"]}}
        elif runtime.get("service"):
            action = {"action": "service", "params": {"op": "restart", "name": runtime["service"]}}
        else:
            action = None
        out.append({"id": f"restart:{rt}", "kind": "runtime", "title": f"Restart {rt}",
                    "status": "warn",
                    "evidence": {"value": alert.get("summary") or "slower after a reload",
                                 "where": f"alert reload_degradation on {rt}/{labels.get('model', '')}"},
                    "recommended": "restart the runtime's service or container" + ("" if action else
                                   " (set its service or container in the device settings to do it from here)"),
                    "why": "Decode speed stays low after a model reload until the runtime process restarts "
                           "(the known workaround).",
                    "risk": "medium: in-flight requests fail and every model reloads",
                    "needs_reboot": False, "action": action, "safe": False, "auto_ok": False})
    return out


def spill_recommendations(values: dict[str, float], last_used: dict[str, float],
                          config: dict[str, Any]) -> list[dict[str, Any]]:
    prio = priorities(config)
    background = [rt for rt, p in prio.items() if p == "background"]
    out = []
    for (rt, model), info in sorted(loaded_models(values).items()):
        size, vram = info.get("bytes"), info.get("vram_bytes")
        if not size or vram is None or vram >= size * SPILL_RATIO:
            continue
        victim = lru_model(values, last_used, background, exclude=(rt, model))
        action = {"action": "evict", "params": {"runtime": victim[0], "model": victim[1]}} if victim else None
        out.append({"id": f"spill:{rt}:{model}", "kind": "runtime", "title": f"{model} spilled to the CPU",
                    "status": "warn",
                    "evidence": {"value": f"{vram / size:.0%} on GPU ({_gib(vram)} of {_gib(size)})",
                                 "where": f"runtime_model_vram_bytes / runtime_model_bytes of {rt}"},
                    "recommended": "load it fully on the GPU: free memory"
                                   + (f" (evict {victim[1]} from {victim[0]})" if victim else "")
                                   + ", lower num_ctx, or use a smaller quantization",
                    "why": "Layers left on the CPU run many times slower than on the GPU, so every token "
                           "waits for them.",
                    "risk": "low: the evicted model reloads on its next request", "needs_reboot": False,
                    "action": action, "safe": False, "auto_ok": False})
    return out


def runtime_recommendations(alerts: list[dict[str, Any]], values: dict[str, float], last_used: dict[str, float],
                            config: dict[str, Any]) -> list[dict[str, Any]]:
    return (memory_recommendations(alerts, values, last_used, config) + slo_recommendations(alerts, last_used, config)
            + restart_recommendations(alerts, config) + spill_recommendations(values, last_used, config))
