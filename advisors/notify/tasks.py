"""The delivery task: one per webhook and notification.

The HTTP attempt runs on a small thread pool inside the worker process (first attempts are started
there directly by `dispatch.notify_transitions`), so a receiver that hangs until the timeout never
holds a Celery pool slot that rule evaluation needs. The Delivery row is the durable record
(claimed before sending, updated after); a retry goes back through Celery with a countdown, the
webhook's next row in line starts as soon as one is settled, and `dispatch.sweep` re-enqueues rows
whose attempt was lost with its process.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from celery import shared_task
from django.db import close_old_connections, connection

from advisors.notify.sender import attempt

log = logging.getLogger(__name__)
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="thoxdash-webhook")
        return _pool


def enqueue(pk: int, countdown: float = 0.0) -> None:
    """Hand one delivery to Celery; if the broker is down the sweep picks the row up later."""
    try:
        deliver.apply_async((pk,), countdown=countdown or None)
    except Exception as exc:  # broker unreachable: the row stays pending, the sweep retries it
        log.warning("could not enqueue delivery %s: %s", pk, exc)


def start_now(pk: int) -> None:
    """An attempt right away on this worker's delivery pool (no trip through the queue)."""
    pool().submit(run_attempt, pk)


def run_attempt(pk: int) -> None:
    """One attempt, then its retry scheduled (or the webhook's next row started); used by the pool
    thread (and directly in tests)."""
    close_old_connections()
    try:
        outcome = attempt(pk)
        if outcome is not None and outcome.retry_in is not None:
            enqueue(pk, outcome.retry_in)
        if outcome is not None and outcome.next_pk is not None:
            start_now(outcome.next_pk)
    except Exception:  # recorded nowhere else: log it; the sweep retries the row
        log.exception("delivery %s failed unexpectedly", pk)
    finally:
        connection.close()


@shared_task(name="advisors.notify.deliver", acks_late=True, ignore_result=True)
def deliver(pk: int) -> None:
    pool().submit(run_attempt, pk)
