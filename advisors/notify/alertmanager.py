"""Alertmanager v4-compatible webhook body (what `webhook_configs` receivers expect)."""

from __future__ import annotations

from typing import Any

from advisors.notify.base import ZERO_TIME, AlertView, Context, Notifier


def _common(dicts: list[dict[str, str]]) -> dict[str, str]:
    if not dicts:
        return {}
    first = dicts[0]
    return {k: v for k, v in first.items() if all(d.get(k) == v for d in dicts[1:])}


class AlertmanagerNotifier(Notifier):
    format = "alertmanager"
    label = "Alertmanager v4 (webhook body)"

    def payload(self, alerts: list[AlertView], ctx: Context) -> dict[str, Any]:
        items: list[dict[str, Any]] = []
        for a in alerts:
            labels = {"alertname": a.rule, "device": a.device, "severity": a.severity, **a.labels}
            items.append({"status": a.status, "labels": labels, "annotations": {"summary": a.summary},
                          "startsAt": a.starts_at, "endsAt": a.ends_at or ZERO_TIME,
                          "generatorURL": a.url, "fingerprint": a.fingerprint})
        group = {"device": ctx.device}
        return {
            "version": "4",
            "groupKey": f'{{}}:{{device="{ctx.device}"}}',
            "truncatedAlerts": 0,
            "status": "firing" if any(a.status == "firing" for a in alerts) else "resolved",
            "receiver": f"thoxdash-webhook-{ctx.webhook_id}",
            "groupLabels": group,
            "commonLabels": _common([i["labels"] for i in items]),
            "commonAnnotations": _common([i["annotations"] for i in items]),
            "externalURL": ctx.external_url,
            "notification_reason": ctx.reason,
            "alerts": items,
        }
