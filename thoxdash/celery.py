"""The Celery app: broker is Redis; beat runs the rules every RULES_INTERVAL_S."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "thoxdash.settings")

app = Celery("thoxdash")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["advisors", "thoxdash"])
app.autodiscover_tasks(["advisors.notify"], related_name="alertmanager_resend")


@app.on_after_finalize.connect
def _schedule(sender: Celery, **_: object) -> None:
    from django.conf import settings

    sender.add_periodic_task(settings.RULES_INTERVAL_S, sender.signature("advisors.tasks.evaluate_all"),
                             name="evaluate rules", expires=settings.RULES_INTERVAL_S * 5)
    sender.add_periodic_task(settings.ROLLUP_INTERVAL_S, sender.signature("thoxdash.tasks.rollup_all"),
                             name="roll up telemetry", expires=settings.ROLLUP_INTERVAL_S)
    # alertmanager-api webhooks: firing alerts are pushed again every resend delay (as Prometheus)
    resend_s = min(settings.ALERTMANAGER_RESEND_S, 15.0)  # ticks are per resend delay; beat checks often
    sender.add_periodic_task(resend_s, sender.signature("advisors.notify.alertmanager_resend"),
                             name="re-send firing alerts to Alertmanager", expires=resend_s)


@worker_init.connect
def _require_redis(**_: object) -> None:
    """Refuse a Redis older than ThoxDash needs, with one line (collectors.redis_version)."""
    from advisors.telemetry import store
    from collectors.redis_version import require_at_start

    require_at_start(store().r, "REDIS_URL")
