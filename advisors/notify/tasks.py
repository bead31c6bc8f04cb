"""The delivery task: one per webhook and notification.

The HTTP attempt runs on a small thread pool inside the worker process (first attempts are started
there directly by `dispatch.notify_transitions`), so a receiver that hangs
until the timeout never holds a Celery pool slot that rule evaluation needs. The Delivery row is
the durable record (claimed before sending, updated after); `dispatch.sweep` re-enqueues rows whose
attempt was lost with its process.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from celery import shared_task

log = logging.getLogger(__name__)
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="thoxdash-webhook")
        return _pool


def run_attempt(pk: int) -> None:
    """One attempt, then its retry scheduled; used by the pool thread (and directly in tests)."""
    from django.db import close_old_connections, connection

    from advisors.notify.dispatch import enqueue
    from advisors.notify.sender import attempt

    close_old_connections()
    try:
        outcome = attempt(pk)
        if outcome is not None and outcome.retry_in is not None:
            enqueue(pk, outcome.retry_in)
    except Exception:  # recorded nowhere else: log it; the sweep retries the row
        log.exception("delivery %s failed unexpectedly", pk)
    finally:
        connection.close()


@shared_task(name="advisors.notify.deliver", acks_late=True, ignore_result=True)
def deliver(pk: int) -> None:
    pool().submit(run_attempt, pk)
