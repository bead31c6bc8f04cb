"""Re-send firing alerts to every `alertmanager-api` webhook each resend delay, as Prometheus does
(`--rules.alert.resend-delay`, 1 minute by default; THOXDASH_ALERTMANAGER_RESEND_S here).

Alertmanager forgets a pushed alert once its endsAt passes (we set 4 resend delays ahead), so while
an alert fires it must keep arriving. One Delivery per webhook, device and resend tick (idempotency
key `amresend:...:<tick>`): a beat that runs twice in a tick sends once; retries, HMAC and the
delivery rows are the webhooks' own (advisors.notify.sender). Silenced alerts and alerts below the
webhook's min_severity are left out, as for first notifications. Sent re-sends older than
KEEP_TICKS resend delays are deleted (`prune`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from celery import shared_task

from advisors.models import Alert, Delivery, Silence, Webhook
from advisors.notify import NOTIFIERS
from advisors.notify.alertmanager_api import AlertmanagerApiNotifier, resend_delay_s
from advisors.notify.base import AlertView, Context
from advisors.notify.links import external_url
from advisors.notify.tasks import start_now

log = logging.getLogger(__name__)
KIND = "resend"
KEEP_TICKS = 10  # sent re-sends older than this many resend delays are deleted (they carry nothing new)


def resend_firing(now: datetime | None = None) -> list[int]:
    """Plan this tick's re-sends and start them; returns the new Delivery ids."""
    fmt = AlertmanagerApiNotifier.format
    now = now or datetime.now(timezone.utc)
    resend_s = resend_delay_s()
    prune(now, resend_s)
    hooks = list(Webhook.objects.filter(enabled=True, format=fmt))
    if not hooks:
        return []
    tick = int(now.timestamp() // resend_s)
    silences = list(Silence.active(now))
    by_device: dict[str, list[Alert]] = {}
    for alert in Alert.objects.filter(state=Alert.FIRING).order_by("pk"):
        if alert.silenced_by(silences) is None:
            by_device.setdefault(alert.device, []).append(alert)
    ext = external_url()
    created: list[int] = []
    for hook in hooks:
        for device, group in sorted(by_device.items()):
            chosen = [a for a in group if hook.wants(a.severity)]
            if not chosen:
                continue
            views = [AlertView.of(a, ext) for a in chosen]
            ctx = Context(hook.pk, ext, device, "resend", extra={"now": now, "resend_s": resend_s})
            delivery, new = Delivery.objects.get_or_create(
                idempotency_key=f"amresend:wh{hook.pk}:{device}:{tick}",
                defaults={"webhook": hook, "kind": KIND, "payload": NOTIFIERS[fmt].payload(views, ctx),
                          "next_attempt_at": now})
            if new:
                created.append(delivery.pk)
    for pk in created:
        start_now(pk)
    return created


def prune(now: datetime, resend_s: float) -> int:
    """Delete sent re-sends older than KEEP_TICKS resend delays: one per minute per firing device
    would otherwise pile up for as long as an alert fires. Failed ones stay (they are the record)."""
    cutoff = now - timedelta(seconds=KEEP_TICKS * resend_s)
    deleted, _ = Delivery.objects.filter(kind=KIND, status=Delivery.SENT, created_at__lt=cutoff).delete()
    return deleted


@shared_task(name="advisors.notify.alertmanager_resend", ignore_result=True)
def alertmanager_resend() -> int:
    try:
        return len(resend_firing())
    except Exception:  # never break beat; the next tick tries again
        log.exception("alertmanager re-send failed")
        return 0
