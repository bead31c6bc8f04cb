"""reload_degradation and throughput_degradation: decode tok/s falls >20% below its baseline.

Per runtime+model, healthy decode speeds form a baseline (median of the last few). A streak of
`degradation_confirm_requests` slow requests fires: `reload_degradation` when a reload (model
loaded/unloaded, runtime restarted, or a request that paid a load) came between the last healthy
request and the streak, else `throughput_degradation`. It resolves after as many requests back
within `degradation_recover_ratio` of the baseline. The baseline outlives the window: it is kept
in the rule memory (`window.memo`), so an hour-long slowdown stays firing.

Slow drift: the rolling baseline follows a decline that is gradual enough. So each runtime+model
also keeps a long-lived reference (the speed reached after warm-up, raised when the model gets
faster, never lowered by the decline), and when the healthy median falls
`drift_drop_ratio` below it, `throughput_degradation` fires with the reference as its baseline.
"""

from __future__ import annotations

from statistics import median
from typing import Any

from advisors.rules.base import Finding, emits
from advisors.rules.window import Window

RELOAD_EVENTS = {"model_loaded", "model_unloaded", "runtime_started", "runtime_stopped"}
MEMO_KEY = "throughput"
FORGET_AFTER_S = 86_400.0


def decode_speed(request: dict[str, Any], min_tokens: int) -> float | None:
    """Decode tokens per second of one finished request, or None when it says too little."""
    if int(request.get("status") or 200) >= 400:
        return None
    tokens = request.get("completion_tokens")
    if not tokens or tokens < min_tokens:
        return None
    seconds = request.get("completion_s")
    if not seconds and request.get("total_s") is not None:
        seconds = float(request["total_s"]) - float(request.get("ttft_s") or 0.0)
    if not seconds or seconds <= 0:
        return None
    return float(tokens) / float(seconds)


def _reload_times(window: Window, threshold_s: float) -> dict[tuple[str, str | None], float]:
    """Newest reload per (runtime, model); model None means the whole runtime."""
    out: dict[tuple[str, str | None], float] = {}
    for event in window.events:
        if event.get("kind") in RELOAD_EVENTS and event.get("runtime"):
            model = event.get("model") if event["kind"].startswith("model_") else None
            key = (str(event["runtime"]), str(model) if model else None)
            out[key] = max(out.get(key, 0.0), event["ts"])
    for request in window.requests:
        if float(request.get("load_s") or 0.0) > threshold_s and request.get("runtime"):
            key = (str(request["runtime"]), str(request.get("model") or "") or None)
            # the load happened before the request finished: count it just before
            out[key] = max(out.get(key, 0.0), request["ts"] - 1e-3)
    return out


def _fresh() -> dict[str, Any]:
    return {"healthy": [], "recent": [], "last_ts": 0.0, "last_reload": 0.0, "reloaded": False,
            "slow": 0, "good": 0, "streak_reload": False, "degraded": None, "baseline": None, "since": None,
            "reference": None, "ref_samples": [], "seen": 0}


def _reference(entry: dict[str, Any], speed: float, t: dict[str, Any]) -> None:
    """The long-lived reference: the median speed of the first healthy requests after warm-up,
    raised (never lowered) to the healthy median once a full history says the model got faster.
    Unlike the rolling baseline it does not follow a slow decline."""
    entry["seen"] = entry.get("seen", 0) + 1
    if entry.get("reference") is None:
        if entry["seen"] > int(t["drift_warmup_requests"]):
            samples = entry.setdefault("ref_samples", [])
            samples.append(speed)
            if len(samples) >= int(t["degradation_baseline_requests"]):
                entry["reference"], entry["ref_samples"] = median(samples), []
    elif len(entry["healthy"]) >= int(t["degradation_history"]):
        entry["reference"] = max(entry["reference"], median(entry["healthy"]))


def _step(entry: dict[str, Any], ts: float, speed: float, t: dict[str, Any]) -> None:
    healthy: list[float] = entry["healthy"]
    entry["recent"] = (entry["recent"] + [speed])[-3:]
    if len(healthy) < int(t["degradation_baseline_requests"]):
        healthy.append(speed)
        entry["reloaded"] = False
        _reference(entry, speed, t)
        return
    baseline = entry["baseline"] if entry["degraded"] else median(healthy)
    confirm = int(t["degradation_confirm_requests"])
    if entry["degraded"]:
        if speed >= baseline * (1 - float(t["degradation_recover_ratio"])):
            entry["good"] += 1
            if entry["good"] >= confirm:
                entry.update(degraded=None, baseline=None, since=None, slow=0, good=0, reloaded=False)
                # the baseline restarts from the recovered speeds, not the slow history before
                healthy[:] = entry["recent"][-confirm:]
        else:
            entry["good"] = 0
    elif speed < baseline * (1 - float(t["degradation_drop_ratio"])):
        if entry["slow"] == 0:
            entry["streak_reload"] = entry["reloaded"]
            entry["since"] = ts
        entry["slow"] += 1
        if entry["slow"] >= confirm:
            entry.update(degraded="reload" if entry["streak_reload"] else "throughput", baseline=baseline, good=0)
    else:
        entry.update(slow=0, reloaded=False)
        healthy.append(speed)
        del healthy[:-int(t["degradation_history"])]
        _reference(entry, speed, t)
        reference = entry.get("reference")
        # slow drift: the rolling baseline followed the decline, the reference did not
        if (reference and len(healthy) >= int(t["degradation_history"])
                and median(healthy) < reference * (1 - float(t["drift_drop_ratio"]))):
            entry.update(degraded="throughput", baseline=reference, since=ts, good=0, slow=0)
    del healthy[:-int(t["degradation_history"])]


@emits("reload_degradation", "throughput_degradation")
def degradation(window: Window, config: dict[str, Any], active: set[str]) -> list[Finding]:
    t = config["thresholds"]
    memo: dict[str, dict[str, Any]] = window.memo.setdefault(MEMO_KEY, {})
    reloads = _reload_times(window, float(t["reload_load_s"]))
    min_tokens = int(t.get("degradation_min_tokens", 16))
    for request in sorted(window.requests, key=lambda r: r["ts"]):
        runtime, model = request.get("runtime"), request.get("model")
        if not runtime or not model:
            continue
        key = f"{runtime}/{model}"
        entry = memo.get(key)
        if entry is None or entry["last_ts"] > window.now:  # new, or the clock went back
            entry = memo[key] = _fresh()
        if request["ts"] <= entry["last_ts"]:
            continue
        reload_ts = max(reloads.get((runtime, model), 0.0), reloads.get((runtime, None), 0.0))
        if entry["last_ts"] < reload_ts <= request["ts"] and reload_ts > entry["last_reload"]:
            entry["reloaded"], entry["last_reload"] = True, reload_ts
        entry["last_ts"] = request["ts"]
        speed = decode_speed(request, min_tokens)
        if speed is not None:
            _step(entry, request["ts"], speed, t)
    out = []
    for key, entry in list(memo.items()):
        if window.now - entry["last_ts"] > FORGET_AFTER_S:
            del memo[key]
            continue
        if not entry["degraded"]:
            continue
        runtime, _, model = key.partition("/")
        now_speed = median(entry["recent"])
        base = entry["baseline"]
        drop = 1 - now_speed / base
        if entry["degraded"] == "reload":
            rule, why = "reload_degradation", "after a model reload"
        else:
            rule, why = "throughput_degradation", "without a reload"
        out.append(Finding(rule, "warning", {"runtime": runtime, "model": model},
                           f"{model} on {runtime} decodes {now_speed:.1f} tok/s, {drop:.0%} below its "
                           f"{base:.1f} tok/s baseline {why}", now_speed))
    return out
