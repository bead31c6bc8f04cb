from __future__ import annotations

from django.db import models

from advisors.notify import NOTIFIERS

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


class Webhook(models.Model):
    FORMATS = [(n.format, n.label) for n in NOTIFIERS.values()]  # derived: advisors.notify.NOTIFIERS
    SEVERITIES = [("info", "info"), ("warning", "warning"), ("critical", "critical")]

    url = models.URLField(max_length=500)
    format = models.CharField(max_length=32, choices=FORMATS, default="json")
    secret = models.CharField(max_length=200, blank=True, default="")
    min_severity = models.CharField(max_length=16, choices=SEVERITIES, default="warning")
    enabled = models.BooleanField(default=True)
    disabled_reason = models.TextField(blank=True, default="")
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.format} → {self.url}"

    def wants(self, severity: str) -> bool:
        return SEVERITY_RANK.get(severity, 0) >= SEVERITY_RANK.get(self.min_severity, 1)


class Delivery(models.Model):
    """One notification to one webhook; retries update the same row (the durable outbox)."""

    PENDING, SENDING, RETRYING, SENT, FAILED, PERMANENT, SKIPPED = (
        "pending", "sending", "retrying", "sent", "failed", "permanent", "skipped")

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    idempotency_key = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, default="alert")  # alert|test
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=16, default=PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    http_status = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    duration_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.idempotency_key} {self.status} ({self.attempts} attempts)"
