"""Celery tasks: thin, idempotent shells around plain functions."""

from __future__ import annotations

import logging

from celery import shared_task

from advisors.notify import tasks as _notify_tasks  # noqa: F401  (registers advisors.notify.deliver)

log = logging.getLogger(__name__)
SWEEP_EVERY_S = 5


@shared_task(name="advisors.tasks.evaluate_device", acks_late=True)
def evaluate_device(device: str, now: float | None = None) -> dict[str, int]:
    from advisors.alerting import evaluate_device as run
    from advisors.telemetry import store

    result = run(store(), device, now)
    try:
        from advisors.notify.dispatch import notify_transitions
    except ImportError:
        pass
    else:
        notify_transitions(result)
    from advisors.actions import after_evaluation

    try:  # action answers + auto mode; never let it break the alert cycle
        after_evaluation(store(), device)
    except Exception:
        log.exception("actions after evaluating %s", device)
    return {k: len(v) for k, v in result.items()}


@shared_task(name="advisors.tasks.collect_action_results")
def collect_action_results(device: str | None = None) -> int:
    """Copy the agents' answers into the pending ActionRequest rows (audit)."""
    from advisors.actions import collect_results
    from advisors.telemetry import store

    return collect_results(store(), device)


@shared_task(name="advisors.tasks.evaluate_all")
def evaluate_all() -> int:
    """Beat entry: one evaluate_device per known device."""
    from advisors.telemetry import store

    devices = list(store().devices())
    for device in devices:
        evaluate_device.apply_async((device,), expires=5)
    if store().r.set(f"{store().prefix}notify:sweep", "1", nx=True, ex=SWEEP_EVERY_S):
        from advisors.notify.dispatch import sweep

        sweep()
    return len(devices)


from advisors import tasks_canary  # noqa: E402,F401  (registers the canary speed-check tasks)
