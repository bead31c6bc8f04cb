"""The device's own config, as the agent publishes it into the device's state (key `config`).

The server's rules resolve it with the Settings page's overrides (advisors.config.resolve), and
`manage.py evaluate` does the same with a recording's header `config`, so one device is judged by
one config live and offline. What the agent knows:
- runtimes: the specs it watches (name, kind, url, ceiling), from $THOXDASH_AGENT_RUNTIMES or the
  defaults;
- isolated_cpus: /sys/devices/system/cpu/isolated;
- board: the board description (model), which picks default thermal trip points;
- anything in the JSON object at $THOXDASH_DEVICE_CONFIG (slos, want_locked_clocks, priorities,
  thresholds, for_s, throttle_celsius), which wins over the above.
Besides `config`, the board's own trip points go to state `throttle_celsius`: per thermal zone
(sysfs `type`), the lowest `passive` trip point (the kernel's software throttling), else `hot`,
from /sys/class/thermal/thermal_zone*/trip_point_<n>_{type,temp} (millidegrees C).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
CONFIG_ENV = "THOXDASH_DEVICE_CONFIG"
MAX_ZONES = 64
MAX_TRIPS = 16


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def trip_points(root: Path) -> dict[str, float]:
    """{zone type: software throttling point in °C} of the zones that declare one."""
    out: dict[str, float] = {}
    try:
        zones = sorted((root / "sys/class/thermal").glob("thermal_zone*"))[:MAX_ZONES]
    except OSError:
        return out
    for zone in zones:
        name = _read(zone / "type")
        if not name:
            continue
        found: dict[str, list[float]] = {}
        for n in range(MAX_TRIPS):
            kind, temp = _read(zone / f"trip_point_{n}_type"), _read(zone / f"trip_point_{n}_temp")
            if kind is None or temp is None:
                break
            try:
                celsius = int(temp) / 1000.0
            except ValueError:
                continue
            if 0.0 < celsius < 200.0:
                found.setdefault(kind, []).append(celsius)
        for kind in ("passive", "hot"):
            if found.get(kind):
                out[name] = min(found[kind])
                break
    return out


def device_config(root: Path, sources: list[Any], board: dict[str, Any] | None) -> dict[str, Any]:
    config: dict[str, Any] = {}
    runtimes = []
    for source in sources:
        for spec in getattr(source, "specs", None) or []:
            entry = {"name": spec.name, "kind": spec.kind or spec.name}
            if spec.url:
                entry["url"] = spec.url
            if spec.ceiling_bytes:
                entry["ceiling_bytes"] = spec.ceiling_bytes
            runtimes.append(entry)
    if runtimes:
        config["runtimes"] = runtimes
    isolated = _read(root / "sys/devices/system/cpu/isolated")
    if isolated:
        config["isolated_cpus"] = isolated
    if board:
        config["board"] = {k: v for k, v in board.items() if isinstance(v, str)}
    path = os.environ.get(CONFIG_ENV)
    if path:
        try:
            extra = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("%s=%s: not used: %s", CONFIG_ENV, path, exc)
        else:
            if isinstance(extra, dict):
                config.update(extra)
            else:
                log.warning("%s=%s: not used: expected a JSON object", CONFIG_ENV, path)
    return config


def agent_state(root: Path, sources: list[Any], board: dict[str, Any] | None) -> dict[str, Any]:
    """The state the agent publishes beside its telemetry: `config` and `throttle_celsius`."""
    state: dict[str, Any] = {"config": device_config(root, sources, board)}
    trips = trip_points(root)
    if trips:
        state["throttle_celsius"] = trips
    return state


def recording_config(header: dict[str, Any]) -> dict[str, Any]:
    """What `collectors replay` publishes: the recording's header `config`, with its board."""
    config = dict(header.get("config") or {}) if isinstance(header.get("config"), dict) else {}
    board = header.get("board")
    if isinstance(board, dict) and "board" not in config:
        config["board"] = {k: v for k, v in board.items() if isinstance(v, str)}
    return config
