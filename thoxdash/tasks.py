"""Celery tasks of the web layer: rollups that feed the dashboard's long time ranges."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="thoxdash.tasks.rollup_all")
def rollup_all() -> int:
    """Beat entry: roll up every known device's telemetry (idempotent: rollups are incremental)."""
    from advisors.telemetry import store
    from thoxdash.rollup import rollup_device

    devices = list(store().devices())
    for device in devices:
        rollup_device(store(), device)
    return len(devices)
