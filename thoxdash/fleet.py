"""Fleet rows: every device's status and headline numbers from one pipeline of latest hashes.

`rows` is a plain function over the store's raw data, so it scales to hundreds of devices with two
Redis round trips and no per-device queries.
"""

from __future__ import annotations

import time
from typing import Any

from thoxdash.live import compact, parse_key


def _num(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def headline(latest: dict[str, str]) -> dict[str, Any]:
    """Raw latest hash -> GPU load, RAM used/total, hottest zone, the runtime closest to its ceiling."""
    hottest: tuple[float, str] | None = None
    memory: dict[str, float] = {}
    ceilings: dict[str, float] = {}
    for key, text in latest.items():
        if key.startswith(("temperature_celsius", "runtime_memory_bytes", "runtime_ceiling_bytes")):
            value = _num(text)
            if value is None:
                continue
            name, labels = parse_key(key)
            if name == "temperature_celsius" and (hottest is None or value > hottest[0]):
                hottest = (value, labels.get("zone", "?"))
            elif name == "runtime_memory_bytes":
                memory[labels.get("runtime", "?")] = value
            elif name == "runtime_ceiling_bytes":
                ceilings[labels.get("runtime", "?")] = value
    worst: dict[str, Any] | None = None
    for runtime, used in memory.items():
        ceiling = ceilings.get(runtime)
        ratio = used / ceiling if ceiling else None
        if worst is None or (ratio or 0) > (worst["ratio"] or 0):
            worst = {"runtime": runtime, "bytes": compact(used), "ceiling": compact(ceiling) if ceiling else None,
                     "ratio": compact(ratio) if ratio is not None else None}
    return {
        "gpu_load": compact(_num(latest.get("gpu_load_ratio"))),
        "ram_used": compact(_num(latest.get("ram_used_bytes"))),
        "ram_total": compact(_num(latest.get("ram_total_bytes"))),
        "hottest": {"celsius": compact(hottest[0]), "zone": hottest[1]} if hottest else None,
        "runtime": worst,
    }


def rows(fleet: dict[str, dict[str, Any]], firing: dict[str, int], stale_after_s: float,
         now: float | None = None) -> list[dict[str, Any]]:
    now = time.time() if now is None else now
    out = []
    for device, data in fleet.items():
        info, latest = data["info"], data["latest"]
        last_seen = _num(latest.get("__ts"))
        board = info.get("board") if isinstance(info.get("board"), dict) else {}
        status = "unknown" if last_seen is None else ("up" if now - last_seen <= stale_after_s else "stale")
        out.append({
            "id": device, "status": status, "last_seen": last_seen,
            "board": str(board.get("model") or board.get("name") or ""),
            "jetpack": str(board.get("jetpack") or ""), "l4t": str(board.get("l4t") or ""),
            "alerts": int(firing.get(device, 0)), **headline(latest),
        })
    return out
