"""HTTP attempts for one Delivery row: claim it, POST the stored body, record what happened.

- 2xx: sent. 5xx, 408, 429, timeouts and connection errors: retry with capped exponential backoff
  and jitter (Retry-After honoured), up to WEBHOOK_MAX_ATTEMPTS. Any other 4xx (or 3xx): permanent,
  and the webhook is disabled with the reason shown in the settings page and `webhook list`.
- A row is claimed with a conditional UPDATE before sending, so a task delivered twice (Celery
  acks_late, a sweep) sends at most once; receivers also get the `Idempotency-Key` header.
- Failures are data on the row, never exceptions out of here.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta

import httpx
from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from advisors.models import Delivery, Webhook
from advisors.notify.base import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, body_bytes, signature

log = logging.getLogger(__name__)
RETRYABLE = {408, 425, 429}


@dataclass(frozen=True)
class Outcome:
    status: str                 # a Delivery status
    retry_in: float | None = None


def timeout_s() -> float:
    return float(getattr(settings, "WEBHOOK_TIMEOUT_S", 5.0))


def backoff_s(attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
    """Capped exponential backoff with "equal jitter" (between half and all of base x 2^(n-1), at most
    the cap), so receivers recovering from an outage are not hit in lockstep; Retry-After is a floor."""
    base = float(getattr(settings, "WEBHOOK_BACKOFF_BASE_S", 1.0))
    cap = float(getattr(settings, "WEBHOOK_BACKOFF_CAP_S", 60.0))
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    delay = ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(cap, delay)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def claim(pk: int) -> Delivery | None:
    now = timezone.now()
    lock = now + timedelta(seconds=timeout_s() + 30)
    free = Q(locked_until__isnull=True) | Q(locked_until__lt=now)
    stale_send = Q(status=Delivery.SENDING, locked_until__lt=now)
    claimed = (Delivery.objects.filter(pk=pk)
               .filter(Q(status__in=[Delivery.PENDING, Delivery.RETRYING]) & free | stale_send)
               .update(status=Delivery.SENDING, locked_until=lock, last_attempt_at=now, attempts=F("attempts") + 1))
    return Delivery.objects.select_related("webhook").get(pk=pk) if claimed else None


def post(webhook: Webhook, delivery: Delivery) -> tuple[int | None, str, float | None, float]:
    """(http status or None, error text, Retry-After, duration ms)."""
    body = body_bytes(delivery.payload)
    headers = {"Content-Type": "application/json", "User-Agent": "ThoxDash-webhook/1",
               IDEMPOTENCY_HEADER: delivery.idempotency_key, "X-Thoxdash-Delivery": delivery.idempotency_key}
    if webhook.secret:
        headers[SIGNATURE_HEADER] = signature(webhook.secret, body)
    from advisors.notify import NOTIFIERS

    notifier = NOTIFIERS.get(webhook.format)
    url = notifier.endpoint(webhook.url) if notifier is not None else webhook.url
    start = time.perf_counter()
    try:
        with httpx.Client(timeout=timeout_s(), follow_redirects=False) as client:
            response = client.post(url, content=body, headers=headers)
    except httpx.TimeoutException:
        return None, f"timeout after {timeout_s():g} s", None, (time.perf_counter() - start) * 1000
    except httpx.HTTPError as exc:
        return None, f"connection failed: {exc.__class__.__name__}: {exc}"[:500], None, (time.perf_counter() - start) * 1000
    ms = (time.perf_counter() - start) * 1000
    if 200 <= response.status_code < 300:
        return response.status_code, "", None, ms
    text = response.text[:300].strip()
    return response.status_code, f"HTTP {response.status_code}: {text}" if text else f"HTTP {response.status_code}", \
        _retry_after(response), ms


def attempt(pk: int) -> Outcome | None:
    """One attempt; None when the row was not claimable (already sent, or in flight elsewhere)."""
    delivery = claim(pk)
    if delivery is None:
        return None
    webhook = delivery.webhook
    now = timezone.now()
    if not webhook.enabled and delivery.kind != "test":
        Delivery.objects.filter(pk=pk).update(status=Delivery.SKIPPED, locked_until=None,
                                              error=f"webhook disabled: {webhook.disabled_reason}"[:1000])
        return Outcome(Delivery.SKIPPED)
    code, error, retry_after, ms = post(webhook, delivery)
    fields = {"http_status": code, "error": error, "duration_ms": round(ms, 2), "locked_until": None}
    if code is not None and 200 <= code < 300:
        Delivery.objects.filter(pk=pk).update(status=Delivery.SENT, sent_at=timezone.now(), next_attempt_at=None,
                                              **fields)
        if delivery.kind == "test" and not webhook.enabled:
            Webhook.objects.filter(pk=webhook.pk).update(enabled=True, disabled_reason="", disabled_at=None)
        return Outcome(Delivery.SENT)
    retryable = code is None or code >= 500 or code in RETRYABLE
    if not retryable:
        Delivery.objects.filter(pk=pk).update(status=Delivery.PERMANENT, **fields)
        if delivery.kind != "test":
            reason = f"disabled {now:%Y-%m-%d %H:%M:%S} UTC after a permanent error: {error}"[:1000]
            Webhook.objects.filter(pk=webhook.pk, enabled=True).update(enabled=False, disabled_reason=reason,
                                                                        disabled_at=now)
        return Outcome(Delivery.PERMANENT)
    max_attempts = int(getattr(settings, "WEBHOOK_MAX_ATTEMPTS", 8))
    if delivery.kind == "test" or delivery.attempts >= max_attempts:
        suffix = "" if delivery.kind == "test" else f" (gave up after {delivery.attempts} attempts)"
        Delivery.objects.filter(pk=pk).update(status=Delivery.FAILED, **{**fields, "error": (error + suffix)[:1000]})
        return Outcome(Delivery.FAILED)
    delay = backoff_s(delivery.attempts, retry_after)
    Delivery.objects.filter(pk=pk).update(status=Delivery.RETRYING, next_attempt_at=now + timedelta(seconds=delay),
                                          **fields)
    return Outcome(Delivery.RETRYING, delay)


def send_test(webhook: Webhook) -> Delivery:
    """A synthetic notification in the webhook's format, sent now, once."""
    from advisors.notify import NOTIFIERS
    from advisors.notify.base import AlertView, Context
    from advisors.notify.dispatch import external_url

    ext = external_url()
    now = timezone.now().isoformat().replace("+00:00", "Z")
    alert = AlertView(0, "thoxdash-test", "webhook_test", "info", {"test": "true"}, "0" * 16, "firing", now, None,
                      "ThoxDash test notification: this webhook works.", f"{ext}/alerts/")
    payload = NOTIFIERS[webhook.format].payload([alert], Context(webhook.pk, ext, "thoxdash-test", "test"))
    delivery = Delivery.objects.create(webhook=webhook, kind="test", payload=payload,
                                       idempotency_key=f"test:{webhook.pk}:{time.time_ns()}")
    attempt(delivery.pk)
    delivery.refresh_from_db()
    return delivery
