"""What every notifier shares: the alert view it formats, and the body signing."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SIGNATURE_HEADER = "X-Thoxdash-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt for a firing alert


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class AlertView:
    """One alert transition, as the notifiers see it (no ORM objects past this point)."""

    id: int
    device: str
    rule: str
    severity: str
    labels: dict[str, str]
    fingerprint: str
    status: str  # firing|resolved
    starts_at: str
    ends_at: str | None
    summary: str
    url: str

    @classmethod
    def of(cls, alert: Any, external_url: str) -> AlertView:
        return cls(alert.pk, alert.device, alert.rule, alert.severity, dict(alert.labels), alert.fingerprint,
                   alert.state, rfc3339(alert.starts_at) or "", rfc3339(alert.ends_at), alert.summary,
                   f"{external_url.rstrip('/')}/alerts/?fingerprint={alert.fingerprint}")


@dataclass
class Context:
    webhook_id: int
    external_url: str
    device: str
    reason: str = "first notification"
    extra: dict[str, Any] = field(default_factory=dict)


class Notifier:
    """A payload format. Subclasses implement `payload`; the sender does the HTTP."""

    format = ""
    label = ""  # what the Settings page and the admin show

    def payload(self, alerts: list[AlertView], ctx: Context) -> Any:
        """The JSON body (an object, or a list for formats that want one)."""
        raise NotImplementedError

    def endpoint(self, url: str) -> str:
        """Where the body is POSTed, given the webhook's URL."""
        return url


def body_bytes(payload: Any) -> bytes:
    """The exact bytes sent (and signed): stable across retries."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the raw body>`, as receivers verify it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    return hmac.compare_digest(signature(secret, body), header or "")
