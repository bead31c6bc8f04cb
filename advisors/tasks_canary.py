"""Celery shells for the canary speed check (advisors.canary): off unless a runtime enables it.

Beat runs `speed_checks_due` every CANARY_TICK_S; it queues one `speed_check` per enabled runtime
whose last check (a `canary` record in the device's request stream) is older than its interval.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import shared_task
from django.conf import settings

from advisors.canary import canary_settings, is_due
from advisors.canary import speed_check as run_speed_check
from advisors.config import merged
from collectors.store import TelemetryStore

log = logging.getLogger(__name__)


def _store() -> TelemetryStore:
    from advisors.telemetry import store

    return store()


def device_checks(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The enabled canary checks of one device config."""
    enabled = getattr(settings, "CANARY_RUNTIMES", [])
    out = []
    for runtime in merged(config)["runtimes"]:
        check = canary_settings(runtime, enabled)
        if check is not None:
            check["interval_s"] = float(check.get("interval_s") or settings.CANARY_INTERVAL_S)
            out.append(check)
    return out


def due_checks(store: TelemetryStore, now: float | None = None) -> list[tuple[str, dict[str, Any]]]:
    from advisors.models import DeviceSettings

    now = time.time() if now is None else now
    due = []
    for row in DeviceSettings.objects.all():
        for check in device_checks(row.config()):
            recent = store.read(row.device, "requests", since=now - check["interval_s"])
            if is_due(recent, check["runtime"]):
                due.append((row.device, check))
    return due


def run_check(store: TelemetryStore, device: str, check: dict[str, Any]) -> dict[str, Any]:
    records = run_speed_check(
        check["url"], check["kind"], check["model"], runtime=check["runtime"],
        prompt=check.get("prompt") or settings.CANARY_PROMPT,
        max_tokens=int(check.get("max_tokens") or settings.CANARY_MAX_TOKENS),
        timeout_s=settings.CANARY_TIMEOUT_S, allowed_hosts=settings.CANARY_ALLOWED_HOSTS)
    store.publish(device, records)
    return records[0]["request"]


@shared_task(name="advisors.tasks_canary.speed_check", acks_late=True)
def speed_check(device: str, check: dict[str, Any]) -> dict[str, Any]:
    req = run_check(_store(), device, check)
    if "error" in req:
        log.warning("speed check %s/%s on %s failed: %s", check["runtime"], check["model"], device, req["error"])
    return req


@shared_task(name="advisors.tasks_canary.speed_checks_due")
def speed_checks_due(now: float | None = None) -> int:
    due = due_checks(_store(), now)
    for device, check in due:
        speed_check.delay(device, check)
    return len(due)
