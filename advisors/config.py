"""Rule configuration: one resolution, live and offline.

`resolve(device, override)` is the only way a rule config is made: the device's own config (what
the agent or `collectors replay` publishes into the device's state, or a recording's header
`config` for `manage.py evaluate`) overridden field by field by the Settings page (or
`evaluate --config`), over the defaults below. Thresholds are data: every number a rule compares
against lives here or in the device config.
"""

from __future__ import annotations

import copy
import math
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
    "stale_after_s": 15,                  # device_down after this long without data (THOXDASH_STALE_AFTER_S live)
    "source_down_after_s": 60,            # agent_source_down: a source failing this long
    "thermal_hot_celsius": 85.0,          # evidence without a trip point: this hot ...
    "thermal_busy_ratio": 0.80,           # ... with the GPU this busy (or jetson_clocks pinning it) ...
    "drift_drop_ratio": 0.25,             # throughput_degradation: recent speed this far below the reference
    "drift_warmup_requests": 1,           # requests after a (re)load not used for the reference
}

# Prometheus-style `for`: how long a rule's condition must hold before its alert fires (seconds).
# Overridable per device/recording with config `for_s`. Rules that already confirm over several
# samples or requests (degradation, SLO, forecasts) need none.
DEFAULT_FOR_S: dict[str, float] = {
    "memory_pressure_high": 3.0,
    "swap_in_use": 0.0,
    "thermal_throttling": 3.0,
    "gpu_clock_not_locked": 0.0,
}


# fields merged key by key (a dict), lists merged by an identity, the rest replaced when set
_DICT_FIELDS = ("thresholds", "throttle_celsius", "for_s")
_LIST_FIELDS = {"runtimes": ("name",), "slos": ("runtime", "model")}
_TYPES: dict[str, type | tuple[type, ...]] = {
    "thresholds": dict, "throttle_celsius": dict, "for_s": dict, "runtimes": list, "slos": list,
    "isolated_cpus": str, "want_locked_clocks": bool}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fits(default: Any, value: Any) -> bool:
    """A device-published threshold of the type its default has (a number where a number goes)."""
    if default is None or isinstance(default, (int, float)):
        return _number(value)
    return isinstance(value, type(default))


def clean(config: Any, device: bool = False) -> dict[str, Any]:
    """A config as published: known fields of the wrong type are dropped, list entries that are not
    objects too. With `device` (what a device publishes, unlike Settings, is not validated by a
    form), thresholds, throttle points and `for` values that are not numbers are dropped as well:
    a junk value from a device must not stop its rules."""
    if not isinstance(config, dict):
        return {}
    out = {}
    for key, value in config.items():
        want = _TYPES.get(key)
        if want is not None and not isinstance(value, want):
            continue
        if key in _LIST_FIELDS:
            value = [dict(v) for v in value if isinstance(v, dict)]
        if device and key == "thresholds":
            value = {k: v for k, v in value.items()
                     if k in ("for_s", "throttle_celsius") and isinstance(v, dict)
                     or k not in DEFAULT_THRESHOLDS or _fits(DEFAULT_THRESHOLDS[k], v)}
        if device and key in ("throttle_celsius", "for_s"):
            value = {str(k): v for k, v in value.items() if _number(v)}
        out[key] = copy.deepcopy(value)
    return out


def _is_set(value: Any) -> bool:
    """An override that replaces the device's own value: anything but None and empty (False is a
    choice: Settings' "not required" switches off a device's `want_locked_clocks`)."""
    return value is not None and value != "" and value != [] and value != {}


def _merge_list(base: list[dict[str, Any]], over: list[dict[str, Any]], ident: tuple[str, ...]) -> list[dict[str, Any]]:
    out = [dict(item) for item in base]
    index = {tuple(item.get(k) for k in ident): item for item in out}
    for item in over:
        key = tuple(item.get(k) for k in ident)
        if key in index:
            index[key].update({k: v for k, v in item.items() if v is not None})
        else:
            out.append(dict(item))
            index[key] = out[-1]
    return out


def resolve(device: Any, override: Any = None, *, board: Any = None,
            thresholds: dict[str, Any] | None = None) -> dict[str, Any]:
    """The rule config of one device: `device` (its own, published config) overridden field by
    field by `override` (Settings or `evaluate --config`): dicts (thresholds, throttle points,
    `for_s`) key by key, runtimes by name and SLOs by runtime+model entry by entry, any other field
    when it is set (an empty value, or None for `want_locked_clocks`, leaves the device's own;
    `want_locked_clocks: false` switches it off). `thresholds` are deployment defaults under both
    (e.g. THOXDASH_STALE_AFTER_S); `board` (the registration/recording header's board) picks
    default thermal trip points."""
    out = clean(device, device=True)
    over = clean(override)
    # Settings keep throttle points and `for` inside its thresholds: they override per key too
    for key in ("throttle_celsius", "for_s"):
        nested = (over.get("thresholds") or {}).get(key)
        if isinstance(nested, dict):
            over[key] = {**nested, **(over.get(key) or {})}
    for key, value in over.items():
        if key in _DICT_FIELDS:
            out[key] = {**(out.get(key) or {}), **value}
        elif key in _LIST_FIELDS:
            out[key] = _merge_list(out.get(key) or [], value, _LIST_FIELDS[key])
        elif _is_set(value):
            out[key] = value
    if thresholds:
        out["thresholds"] = {**thresholds, **(out.get("thresholds") or {})}
    if isinstance(board, dict) and "board" not in out:
        out["board"] = {k: v for k, v in board.items() if isinstance(v, str)}
    return merged(out)


def default_priority(kind: Any) -> str:
    """A runtime kind's default priority (the registry's), "background" for kinds it does not know."""
    found = get_kind(kind) if isinstance(kind, str) else None
    return found.default_priority if found is not None else "background"


def merged(config: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with one config. Never mutates its input (prefer `resolve`)."""
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
            # `for_s` per rule: config, or thresholds["for_s"] (what the Settings page can hold)
            "for_s": {**DEFAULT_FOR_S, **(thresholds.get("for_s") or {}), **(config.get("for_s") or {})},
            "board": config.get("board") if isinstance(config.get("board"), dict) else {},
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
