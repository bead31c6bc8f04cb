"""Generic JSON body: ThoxDash's own alert fields, one object per notification."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from advisors.notify.base import AlertView, Context, Notifier


class JsonNotifier(Notifier):
    format = "json"
    label = "Generic JSON"

    def payload(self, alerts: list[AlertView], ctx: Context) -> dict[str, Any]:
        return {
            "source": "thoxdash",
            "version": 1,
            "device": ctx.device,
            "status": "firing" if any(a.status == "firing" for a in alerts) else "resolved",
            "reason": ctx.reason,
            "alerts": [asdict(a) for a in alerts],
            **ctx.extra,
        }
