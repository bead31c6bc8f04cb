"""ThoxDash's own health in /metrics: rule evaluation (lag, cycle time), webhook deliveries by
result, the Celery queue depth, the firing alerts and the device registry entries skipped as bad.
Read at scrape time: a few Redis commands and two GROUP BY queries, whatever the number of devices."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.metrics_core import Metric

from advisors.selfmetrics import read as read_self

log = logging.getLogger(__name__)
PREFIX = "thoxdash_"

# name (without prefix) -> (type, help)
SELF_METRICS: dict[str, tuple[str, str]] = {
    "rules_last_cycle_timestamp_seconds": ("gauge", "Unix time the newest rule evaluation batch ended."),
    "rules_evaluation_lag_seconds": ("gauge", "Seconds since the newest rule evaluation batch ended."),
    "rules_cycle_duration_seconds": ("gauge", "How long the newest rule evaluation batch took."),
    "rules_cycles_total": ("counter", "Rule evaluation batches run."),
    "rules_cycle_seconds_total": ("counter", "Time spent in rule evaluation batches."),
    "rules_device_evaluations_total": ("counter", "Device evaluations run (one per device per batch)."),
    "rules_device_failures_total": ("counter", "Device evaluations that failed."),
    "webhook_deliveries": ("gauge", "Webhook deliveries in the outbox by status (sent, retrying, failed, ...)."),
    "celery_queue_length": ("gauge", "Tasks waiting in the Celery queue."),
    "alerts_firing": ("gauge", "Alerts firing now, by severity."),
    "registry_problems": ("gauge", "Device registry entries skipped as malformed (listed on the Settings page)."),
}
_FROM_HASH = {
    "rules_last_cycle_timestamp_seconds": "rules_last_cycle_ts",
    "rules_cycle_duration_seconds": "rules_last_cycle_seconds",
    "rules_cycles_total": "rules_cycles_total",
    "rules_cycle_seconds_total": "rules_cycle_seconds_total",
    "rules_device_evaluations_total": "rules_devices_total",
    "rules_device_failures_total": "rules_failures_total",
}
# kombu's Redis transport keeps one list per queue and priority step (default steps 0, 3, 6, 9)
PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def _metric(name: str) -> Metric:
    kind, text = SELF_METRICS[name]
    family = name[: -len("_total")] if kind == "counter" else name
    return Metric(PREFIX + family, text, kind)


def queue_length(client: Any, queue: str) -> int:
    pipe = client.pipeline(transaction=False)
    for suffix in PRIORITY_SUFFIXES:
        pipe.llen(queue + suffix)
    return sum(int(n or 0) for n in pipe.execute())


class SelfCollector:
    def __init__(self, store: Any, now: float | None = None):
        self.store = store
        self.now = time.time() if now is None else now

    def collect(self) -> Iterator[Metric]:
        values = read_self(self.store)
        for name, field in _FROM_HASH.items():
            if field in values:
                metric = _metric(name)
                metric.add_sample(PREFIX + name, {}, values[field])
                yield metric
        if "rules_last_cycle_ts" in values:
            lag = _metric("rules_evaluation_lag_seconds")
            lag.add_sample(lag.name, {}, max(0.0, self.now - values["rules_last_cycle_ts"]))
            yield lag
        yield from self._database()
        yield from self._queue()
        yield from self._registry()

    def _registry(self) -> Iterator[Metric]:
        try:
            problems = self.store.registry().problems
        except Exception:
            log.warning("self-metrics: device registry unavailable", exc_info=True)
            return
        metric = _metric("registry_problems")
        metric.add_sample(metric.name, {}, len(problems))
        yield metric

    def _database(self) -> Iterator[Metric]:
        from django.db.models import Count

        from advisors.models import Alert, Delivery

        try:
            deliveries = list(Delivery.objects.values("status").annotate(n=Count("id")))
            firing = list(Alert.objects.filter(state=Alert.FIRING).values("severity").annotate(n=Count("id")))
        except Exception:  # the database is the web's own; a scrape still answers without it
            log.warning("self-metrics: database unavailable", exc_info=True)
            return
        metric = _metric("webhook_deliveries")
        by_status = {status: 0 for status in (Delivery.PENDING, Delivery.SENDING, Delivery.RETRYING, Delivery.SENT,
                                              Delivery.FAILED, Delivery.PERMANENT, Delivery.SKIPPED)}
        by_status.update({row["status"]: row["n"] for row in deliveries})
        for status in sorted(by_status):
            metric.add_sample(metric.name, {"status": status}, by_status[status])
        yield metric
        metric = _metric("alerts_firing")
        counts = {row["severity"]: row["n"] for row in firing}
        for severity in ("info", "warning", "critical"):
            metric.add_sample(metric.name, {"severity": severity}, counts.get(severity, 0))
        yield metric

    def _queue(self) -> Iterator[Metric]:
        from django.conf import settings

        from collectors.store import connect

        broker = getattr(settings, "CELERY_BROKER_URL", "") or ""
        queue = getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")
        if not broker.startswith(("redis://", "rediss://", "unix://")):
            return
        try:
            client = self.store.r if broker == settings.REDIS_URL else connect(broker)
            depth = queue_length(client, queue)
        except Exception:
            log.warning("self-metrics: broker unavailable", exc_info=True)
            return
        metric = _metric("celery_queue_length")
        metric.add_sample(metric.name, {"queue": queue}, depth)
        yield metric
