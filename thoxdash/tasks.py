"""Celery tasks of the web layer: rollups that feed the dashboard's long time ranges."""

from __future__ import annotations

import logging

from celery import shared_task

log = logging.getLogger(__name__)


@shared_task(name="thoxdash.tasks.rollup_all")
def rollup_all() -> int:
    """Beat entry: roll up every known device's telemetry, then trim its raw streams and rollups by
    age (idempotent: rollups are incremental, trimming is by time)."""
    from django.conf import settings

    from advisors.telemetry import store
    from thoxdash.rollup import rollup_device, trim_device

    devices = store().device_ids()
    for device in devices:
        try:
            rollup_device(store(), device)
        except Exception:  # one device's bad data must not stop the others; its raw data is kept
            log.exception("rolling up %s", device)
            continue
        trim_device(
            store(),
            device,
            raw_retention_s=settings.RAW_RETENTION_S,
            rollup_retention_s=settings.ROLLUP_RETENTION_S,
        )
    return len(devices)
