"""Celery tasks: thin, idempotent shells around plain functions."""

from __future__ import annotations

import logging

from celery import shared_task

from advisors.notify import tasks as _notify_tasks  # noqa: F401  (registers advisors.notify.deliver)

log = logging.getLogger(__name__)
SWEEP_EVERY_S = 5


@shared_task(name="advisors.tasks.evaluate_device", acks_late=True)
def evaluate_device(device: str, now: float | None = None) -> dict[str, int]:
    """One device, on demand: the same path as beat's (`evaluate_batch` of one)."""
    return evaluate_batch.run([device], now)


@shared_task(name="advisors.tasks.collect_action_results")
def collect_action_results(device: str | None = None) -> int:
    """Copy the agents' answers into the pending ActionRequest rows (audit)."""
    from advisors.actions import collect_results
    from advisors.telemetry import store

    return collect_results(store(), device)


@shared_task(name="advisors.tasks.evaluate_batch", acks_late=True)
def evaluate_batch(devices: list[str], now: float | None = None) -> dict[str, int]:
    """Evaluate many devices in one task (the beat path); idempotent (acks_late redelivery)."""
    import time

    from advisors.alerting import evaluate_batch as run
    from advisors.notify.dispatch import notify_transitions
    from advisors.selfmetrics import record_cycle
    from advisors.telemetry import store

    started = time.time()
    batch = run(store(), devices, now, on_transitions=notify_transitions)
    record_cycle(store(), started, time.time(), len(devices), len(batch.failed))
    actions_after_batch(devices, batch.rows)
    return {
        "devices": len(devices),
        "failed": len(batch.failed),
        **{
            k: sum(len(r[k]) for r in batch.results.values())
            for k in ("fired", "resolved", "escalated")
        },
    }


def actions_after_batch(devices: list[str], rows: dict) -> None:
    """Action answers and auto mode after a batch: collect answers only for devices with pending
    requests (one query finds them) and run auto mode only where it is on."""
    from django.conf import settings

    from advisors.actions import auto_actions, collect_results
    from advisors.models import ActionRequest
    from advisors.telemetry import store

    pending = set(
        ActionRequest.objects.filter(state="pending", device__in=devices)
        .values_list("device", flat=True)
        .distinct()
    )
    auto = {d for d, row in rows.items() if row.auto_mode} if settings.AGENT_KEY else set()
    for device in devices:
        if device not in pending and device not in auto:
            continue
        try:  # never let actions break the alert cycle
            if device in pending:
                collect_results(store(), device)
            if device in auto:
                auto_actions(store(), device)
        except Exception:
            log.exception("actions after evaluating %s", device)


def chunks(items: list[str], size: int) -> list[list[str]]:
    size = max(1, size)
    return [items[i : i + size] for i in range(0, len(items), size)]


@shared_task(name="advisors.tasks.evaluate_all")
def evaluate_all() -> int:
    """Beat entry: the known devices in batches of RULES_BATCH, one evaluate_batch task each.

    Each task expires after RULES_EXPIRES_S, so a backlog is dropped (next cycle re-evaluates)
    rather than grown."""
    from django.conf import settings

    from advisors.telemetry import store

    devices = store().device_ids()
    size = int(getattr(settings, "RULES_BATCH", 25))
    expires = float(getattr(settings, "RULES_EXPIRES_S", 5.0))
    for batch in chunks(devices, size):
        evaluate_batch.apply_async((batch,), expires=expires)
    if store().lock("notify-sweep", SWEEP_EVERY_S):
        from advisors.notify.dispatch import sweep

        sweep()
    return len(devices)


from advisors import tasks_canary  # noqa: E402,F401  (registers the canary speed-check tasks)
