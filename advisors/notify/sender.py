"""HTTP attempts for one Delivery row: claim it, POST the stored body, record what happened.

- 2xx: sent. 5xx, 408, 429, timeouts and connection errors: retry with capped exponential backoff
  and jitter (Retry-After honoured) for as long as the notification is younger than
  WEBHOOK_MAX_AGE_S (default 24 h): a receiver that is down for minutes or hours gets everything
  once it is back; only an older notification expires (`failed`, "expired"). Any other 4xx (or
  3xx): permanent, and the webhook is disabled with the reason shown in the settings page and
  `webhook list`.
- In order per webhook: a row is claimed only when no older row of the same webhook is still
  undelivered, and each delivered row starts the next one (`Outcome.next_pk`), so a receiver coming
  back gets its backlog oldest first.
- A row is claimed with a conditional UPDATE before sending, so a task delivered twice (Celery
  acks_late, a sweep) sends at most once while the claim holds. The claim holds for the HTTP
  timeout plus CLAIM_MARGIN_S; the result is written the moment the answer arrives. The window in
  which a duplicate can happen is the POST itself: a worker killed after the receiver got the body
  but before the row says `sent` leaves it `sending`, and once the claim lapses the sweep sends it
  again, with the same body and the same `Idempotency-Key` header (receivers de-duplicate on it).
  That is at-least-once delivery; exactly-once is impossible without the receiver's help.
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
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from advisors.models import Delivery, Webhook
from advisors.notify import NOTIFIERS
from advisors.notify.base import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    AlertView,
    Context,
    body_bytes,
    signature,
)
from advisors.notify.links import external_url

log = logging.getLogger(__name__)
RETRYABLE = {408, 425, 429}
CLAIM_MARGIN_S = 5.0  # a claim outlives the HTTP timeout by this much
UNDELIVERED = (Delivery.PENDING, Delivery.RETRYING, Delivery.SENDING)


@dataclass(frozen=True)
class Outcome:
    status: str                 # a Delivery status
    retry_in: float | None = None
    next_pk: int | None = None  # the webhook's next undelivered row, to start now


def max_age_s() -> float:
    return float(getattr(settings, "WEBHOOK_MAX_AGE_S", 86_400.0))


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


def older_undelivered() -> Exists:
    """An older alert row of the same webhook that is not delivered yet (it goes first)."""
    return Exists(Delivery.objects.filter(webhook_id=OuterRef("webhook_id"), kind="alert", pk__lt=OuterRef("pk"),
                                          status__in=UNDELIVERED))


def claim(pk: int) -> Delivery | None:
    now = timezone.now()
    lock = now + timedelta(seconds=timeout_s() + CLAIM_MARGIN_S)
    free = Q(locked_until__isnull=True) | Q(locked_until__lt=now)
    stale_send = Q(status=Delivery.SENDING, locked_until__lt=now)
    in_turn = Q(kind="test") | ~Q(older_undelivered())
    claimed = (Delivery.objects.filter(pk=pk)
               .filter((Q(status__in=[Delivery.PENDING, Delivery.RETRYING]) & free | stale_send) & in_turn)
               .update(status=Delivery.SENDING, locked_until=lock, last_attempt_at=now, attempts=F("attempts") + 1))
    return Delivery.objects.select_related("webhook").get(pk=pk) if claimed else None


def next_in_line(webhook_id: int) -> int | None:
    """The oldest undelivered alert row of a webhook (what to attempt after one was settled)."""
    return (Delivery.objects.filter(webhook_id=webhook_id, kind="alert",
                                    status__in=[Delivery.PENDING, Delivery.RETRYING])
            .order_by("pk").values_list("pk", flat=True).first())


def post(webhook: Webhook, delivery: Delivery) -> tuple[int | None, str, float | None, float]:
    """(http status or None, error text, Retry-After, duration ms)."""
    body = body_bytes(delivery.payload)
    headers = {"Content-Type": "application/json", "User-Agent": "ThoxDash-webhook/1",
               IDEMPOTENCY_HEADER: delivery.idempotency_key, "X-Thoxdash-Delivery": delivery.idempotency_key}
    if webhook.secret:
        headers[SIGNATURE_HEADER] = signature(webhook.secret, body)
    notifier = NOTIFIERS.get(webhook.format)
    url = notifier.endpoint(webhook.url) if notifier is not None else webhook.url
    start = time.perf_counter()
    try:
        with httpx.Client(timeout=timeout_s(), follow_redirects=False) as client:
            response = client.post(url, content=body, headers=headers)
    except httpx.TimeoutException:
        return None, f"timeout after {timeout_s():g} s", None, (time.perf_counter() - start) * 1000
    except httpx.HTTPError as exc:
        error = f"connection failed: {exc.__class__.__name__}: {exc}"[:500]
        return None, error, None, (time.perf_counter() - start) * 1000
    ms = (time.perf_counter() - start) * 1000
    if 200 <= response.status_code < 300:
        return response.status_code, "", None, ms
    text = response.text[:300].strip()
    return response.status_code, f"HTTP {response.status_code}: {text}" if text else f"HTTP {response.status_code}", \
        _retry_after(response), ms


def attempt(pk: int) -> Outcome | None:
    """One attempt; None when the row was not claimable (already sent, in flight elsewhere, or
    waiting behind an older row of its webhook)."""
    delivery = claim(pk)
    if delivery is None:
        return None
    outcome = _attempt(delivery)
    if outcome.status != Delivery.RETRYING and delivery.kind != "test":
        return Outcome(outcome.status, outcome.retry_in, next_in_line(delivery.webhook_id))
    return outcome


def _attempt(delivery: Delivery) -> Outcome:
    pk = delivery.pk
    webhook = delivery.webhook
    now = timezone.now()
    if not webhook.enabled and delivery.kind != "test":
        Delivery.objects.filter(pk=pk).update(status=Delivery.SKIPPED, locked_until=None,
                                              error=f"webhook disabled: {webhook.disabled_reason}"[:1000])
        return Outcome(Delivery.SKIPPED)
    age = (now - delivery.created_at).total_seconds()
    if delivery.kind != "test" and age > max_age_s():
        Delivery.objects.filter(pk=pk).update(status=Delivery.FAILED, locked_until=None, error=(
            f"expired: not delivered within {max_age_s():g} s ({delivery.attempts - 1} attempts); "
            f"last error: {delivery.error}")[:1000])
        return Outcome(Delivery.FAILED)
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
    if delivery.kind == "test":
        Delivery.objects.filter(pk=pk).update(status=Delivery.FAILED, **fields)
        return Outcome(Delivery.FAILED)
    delay = backoff_s(delivery.attempts, retry_after)
    Delivery.objects.filter(pk=pk).update(status=Delivery.RETRYING, next_attempt_at=now + timedelta(seconds=delay),
                                          **fields)
    return Outcome(Delivery.RETRYING, delay)


def send_test(webhook: Webhook) -> Delivery:
    """A synthetic notification in the webhook's format, sent now, once."""
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
