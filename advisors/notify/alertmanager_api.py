"""Push into an existing Alertmanager, as Prometheus does: `POST <URL>/api/v2/alerts`.

The `alertmanager` format is the body Alertmanager *sends* to webhook receivers; Alertmanager itself
accepts a list of postable alerts (its OpenAPI `postableAlerts`):
  [{"labels": {...}, "annotations": {...}, "startsAt": ..., "endsAt": ..., "generatorURL": ...}]
- labels: alertname = the rule, device, the rule's labels, severity (names made Prometheus-valid,
  empty values left out: Alertmanager treats an empty label as absent);
- annotations: summary, description (what to do), thoxdash_url (the alert in ThoxDash),
  runbook_url (the device's advisor page);
- firing: endsAt = now + 4 x the resend delay, like Prometheus (if ThoxDash stops re-sending, the
  alert resolves itself in Alertmanager after that); re-sent every resend delay while firing
  (`alertmanager_resend`); resolved: endsAt = when it ended.
Plain functions (no Django); the sender posts to `endpoint(url)`.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from django.conf import settings

from advisors.notify.base import AlertView, Context, Notifier, rfc3339
from advisors.notify.guidance import what_to_do

PATH = "/api/v2/alerts"
DEFAULT_RESEND_S = 60.0  # Prometheus --rules.alert.resend-delay
_LABEL_NAME = re.compile(r"[^a-zA-Z0-9_]")


def label_name(name: str) -> str:
    """A Prometheus-valid label name ([a-zA-Z_][a-zA-Z0-9_]*)."""
    clean = _LABEL_NAME.sub("_", str(name)) or "_"
    return clean if not clean[0].isdigit() else f"_{clean}"


def labels_of(alert: AlertView) -> dict[str, str]:
    labels = {label_name(k): str(v) for k, v in sorted(alert.labels.items()) if str(v) != ""}
    labels.update({"alertname": alert.rule, "device": alert.device, "severity": alert.severity})
    return {k: v for k, v in labels.items() if v != ""}


def advisor_url(alert: AlertView) -> str:
    base = alert.url.split("/alerts/", 1)[0]
    return f"{base}/advisor/?device={alert.device}"


def postable(alert: AlertView, now: datetime, resend_s: float) -> dict[str, Any]:
    """One postable alert; a firing one stays valid for 4 resend delays."""
    if alert.status == "firing":
        ends_at = rfc3339(now + timedelta(seconds=4 * resend_s))
    else:
        ends_at = alert.ends_at or rfc3339(now)
    annotations = {"summary": alert.summary or alert.rule, "thoxdash_url": alert.url,
                   "runbook_url": advisor_url(alert)}
    description = what_to_do(alert.rule, alert.labels)
    if description:
        annotations["description"] = description
    out: dict[str, Any] = {"labels": labels_of(alert), "annotations": annotations, "endsAt": ends_at,
                           "generatorURL": alert.url}
    if alert.starts_at:
        out["startsAt"] = alert.starts_at
    return out


class AlertmanagerApiNotifier(Notifier):
    format = "alertmanager-api"
    label = "Alertmanager API (push to URL/api/v2/alerts)"

    def endpoint(self, url: str) -> str:
        url = url.rstrip("/")
        return url if url.endswith(PATH) else url + PATH

    def payload(self, alerts: list[AlertView], ctx: Context) -> Any:
        now = ctx.extra.get("now") or datetime.now(timezone.utc)
        resend_s = float(ctx.extra.get("resend_s") or resend_delay_s())
        return [postable(a, now, resend_s) for a in alerts]


def resend_delay_s() -> float:
    """THOXDASH_ALERTMANAGER_RESEND_S (settings), else Prometheus' default of one minute."""
    if not settings.configured:  # plain use, no Django settings: the default
        return DEFAULT_RESEND_S
    return float(getattr(settings, "ALERTMANAGER_RESEND_S", DEFAULT_RESEND_S))
