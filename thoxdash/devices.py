"""Device list and status, as the web side sees them."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings

from advisors.telemetry import store


def status_of(last_seen: float | None, now: float | None = None) -> str:
    if last_seen is None:
        return "unknown"
    now = time.time() if now is None else now
    return "up" if now - last_seen <= settings.STALE_AFTER_S else "stale"


def device_list() -> list[dict[str, Any]]:
    now = time.time()
    out = []
    for device, info in store().devices().items():
        out.append({"id": device, "board": info.get("board") or {}, "last_seen": info.get("last_seen"),
                    "status": status_of(info.get("last_seen"), now), "notes": info.get("notes") or "",
                    "replay": bool(info.get("replay"))})
    return out
