"""Alert transitions -> Delivery rows (one per webhook and notification) -> delivery tasks.

Called after every evaluation cycle with what fired and resolved. Silenced alerts and alerts
below a webhook's min_severity are left out. Each delivery is its own task, so a slow or dead
receiver only delays itself.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from datetime import timedelta
from functools import partial

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from advisors.models import Alert, Delivery, Silence, Webhook
from advisors.notify import NOTIFIERS
from advisors.notify.base import AlertView, Context
from advisors.notify.links import external_url
from advisors.notify.sender import older_undelivered
from advisors.notify.tasks import enqueue, start_now

log = logging.getLogger(__name__)


def reason(alerts: list[AlertView]) -> str:
    states = {a.status for a in alerts}
    if states == {"resolved"}:
        return "all alerts resolved"
    if "resolved" in states:
        return "some alerts resolved"
    return "first notification"


def idempotency_key(webhook_id: int, alerts: Iterable[Alert]) -> str:
    body = ",".join(f"{a.pk}:{a.state}:{a.severity}" for a in sorted(alerts, key=lambda a: a.pk))
    return f"wh{webhook_id}:" + hashlib.sha256(body.encode()).hexdigest()[:32]


def plan(alerts: list[Alert]) -> list[Delivery]:
    """Create (idempotently) the Delivery rows for these transitions; returns the new ones."""
    if not alerts:
        return []
    silences = list(Silence.active())
    hooks = list(Webhook.objects.filter(enabled=True))
    ext = external_url()
    created: list[Delivery] = []
    by_device: dict[str, list[Alert]] = {}
    for alert in alerts:
        if alert.silenced_by(silences) is None:
            by_device.setdefault(alert.device, []).append(alert)
    for device, group in by_device.items():
        for hook in hooks:
            chosen = [a for a in group if hook.wants(a.severity)]
            notifier = NOTIFIERS.get(hook.format)
            if not chosen or notifier is None:
                continue
            views = [AlertView.of(a, ext) for a in chosen]
            payload = notifier.payload(views, Context(hook.pk, ext, device, reason(views)))
            delivery, new = Delivery.objects.get_or_create(
                idempotency_key=idempotency_key(hook.pk, chosen),
                defaults={"webhook": hook, "payload": payload, "next_attempt_at": timezone.now()})
            if new:
                created.append(delivery)
    return created


def notify_transitions(result: dict[str, list[Alert]]) -> list[Delivery]:
    """Called by the evaluation task: plan the deliveries and start each one (one per webhook)."""
    alerts = [*result.get("fired", []), *result.get("escalated", []), *result.get("resolved", [])]
    deliveries = plan(alerts)
    for delivery in deliveries:
        transaction.on_commit(partial(start_now, delivery.pk))
    return deliveries


def sweep(grace_s: float = 10.0) -> int:
    """Re-enqueue deliveries whose task was lost (worker died mid-send, broker restarted): per
    webhook only the oldest undelivered row (the others follow it when it is settled)."""
    now = timezone.now()
    late = now - timedelta(seconds=grace_s)
    stuck = Delivery.objects.filter(
        Q(status=Delivery.SENDING, locked_until__lt=now)
        | Q(status__in=[Delivery.PENDING, Delivery.RETRYING], next_attempt_at__lt=late)
    ).filter(Q(kind="test") | ~Q(older_undelivered())).order_by("pk").values_list("pk", flat=True)[:500]
    for pk in stuck:
        enqueue(pk)
    return len(stuck)
