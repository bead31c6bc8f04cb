from __future__ import annotations

from django.conf import settings
from django.db import models


class Alert(models.Model):
    """One firing (and later resolved) episode of a rule for one set of labels on one device."""

    FIRING, RESOLVED = "firing", "resolved"

    device = models.CharField(max_length=64, db_index=True)
    rule = models.CharField(max_length=64)
    severity = models.CharField(max_length=16)
    labels = models.JSONField(default=dict)
    fingerprint = models.CharField(max_length=64, db_index=True)
    state = models.CharField(max_length=16, default=FIRING, db_index=True)
    summary = models.TextField(blank=True, default="")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-starts_at"]
        constraints = [
            models.UniqueConstraint(fields=["fingerprint"], condition=models.Q(state="firing"),
                                    name="one_firing_alert_per_fingerprint"),
        ]

    def __str__(self) -> str:
        return f"{self.rule} {self.labels} on {self.device} ({self.state})"

    def silenced_by(self, silences) -> Silence | None:
        return next((s for s in silences if s.matches(self.device, self.rule, self.labels)), None)


class Silence(models.Model):
    """Mute notifications for alerts whose labels match, until `expires_at`."""

    device = models.CharField(max_length=64, blank=True, default="", help_text="empty: every device")
    rule = models.CharField(max_length=64, blank=True, default="", help_text="empty: every rule")
    matchers = models.JSONField(default=dict, blank=True, help_text="labels that must be equal")
    comment = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"silence {self.rule or '*'} {self.matchers} on {self.device or '*'} until {self.expires_at}"

    def matches(self, device: str, rule: str, labels: dict) -> bool:
        if self.device and self.device != device:
            return False
        if self.rule and self.rule != rule:
            return False
        return all(str(labels.get(k, "")) == str(v) for k, v in (self.matchers or {}).items())

    @classmethod
    def active(cls, now=None):
        from django.utils import timezone

        return cls.objects.filter(expires_at__gt=now or timezone.now())
