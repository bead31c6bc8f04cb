"""Acknowledge and silence: what the alerts page and the JSON API call."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from advisors.models import Alert, Silence

MAX_SILENCE_S = 30 * 86_400


def acknowledge(alert: Alert, user: Any) -> Alert:
    """Mark a firing alert as seen by `user` (idempotent: the first acknowledgement is kept)."""
    Alert.objects.filter(pk=alert.pk, acknowledged_at__isnull=True).update(
        acknowledged_by=user, acknowledged_at=timezone.now())
    alert.refresh_from_db()
    return alert


def silence(alert: Alert, user: Any, duration_s: float, comment: str = "") -> Silence:
    """Mute notifications for this alert's device, rule and labels for `duration_s` seconds."""
    if not 0 < duration_s <= MAX_SILENCE_S:
        raise ValueError(f"duration must be between 1 s and {MAX_SILENCE_S // 86_400} days")
    return Silence.objects.create(device=alert.device, rule=alert.rule, matchers=dict(alert.labels),
                                  comment=comment[:2000], created_by=user if user and user.pk else None,
                                  expires_at=timezone.now() + timedelta(seconds=duration_s))


def expire(silence_row: Silence) -> Silence:
    now = timezone.now()
    Silence.objects.filter(pk=silence_row.pk, expires_at__gt=now).update(expires_at=now)
    silence_row.refresh_from_db()
    return silence_row


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def alert_dict(alert: Alert, silences: list[Silence], down: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """`down`: devices whose device_down fires; their other firing alerts are `stale`."""
    hit = alert.silenced_by(silences) if alert.state == Alert.FIRING else None
    return {"id": alert.pk, "device": alert.device, "rule": alert.rule, "severity": alert.severity,
            "labels": alert.labels, "fingerprint": alert.fingerprint, "state": alert.state,
            "starts_at": _iso(alert.starts_at), "ends_at": _iso(alert.ends_at), "summary": alert.summary,
            "acknowledged_by": alert.acknowledged_by.get_username() if alert.acknowledged_by else None,
            "acknowledged_at": _iso(alert.acknowledged_at),
            "silenced_until": _iso(hit.expires_at) if hit else None,
            "stale": alert.state == Alert.FIRING and alert.device in down and alert.rule != "device_down"}


def silence_dict(row: Silence) -> dict[str, Any]:
    return {"id": row.pk, "device": row.device, "rule": row.rule, "matchers": row.matchers, "comment": row.comment,
            "created_by": row.created_by.get_username() if row.created_by else None,
            "created_at": _iso(row.created_at), "expires_at": _iso(row.expires_at),
            "active": row.expires_at > timezone.now()}
