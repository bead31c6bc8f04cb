from __future__ import annotations

from django.conf import settings
from django.db import models


class ActionRequest(models.Model):
    """An allow-listed action asked of a device's agent, and its audit trail (who, when, what, result).

    state: pending (sent, no answer yet) | preview | applied | partial (batch: some steps) | failed |
    rolled_back (verification failed, old value restored) | rejected (agent refused) | undone |
    expired (no answer before the request expired).
    """

    FINAL = ("preview", "applied", "partial", "failed", "rolled_back", "rejected", "undone", "expired")

    device = models.CharField(max_length=64, db_index=True)
    action = models.CharField(max_length=64)
    params = models.JSONField(default=dict)
    request_id = models.CharField(max_length=64, unique=True)
    state = models.CharField(max_length=16, default="pending", db_index=True)
    origin = models.CharField(max_length=8, default="user", help_text="user, or auto (auto mode)")
    dry_run = models.BooleanField(default=False, help_text="a preview: the device reports, changes nothing")
    recommendation = models.CharField(max_length=200, blank=True, default="")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    requested_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    preview = models.JSONField(default=list, blank=True)
    result = models.JSONField(default=dict, blank=True)
    undo_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="undos")

    class Meta:
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} on {self.device} ({self.state})"

    @property
    def undoable(self) -> bool:
        return self.state in ("applied", "partial") and self.action not in ("undo", "evict", "restart_container") \
            and not (self.action == "service" and (self.params or {}).get("op") == "restart")

    def as_json(self) -> dict:
        return {"id": self.request_id, "device": self.device, "action": self.action, "params": self.params,
                "state": self.state, "origin": self.origin, "dry_run": self.dry_run,
                "recommendation": self.recommendation,
                "requested_by": self.requested_by.username if self.requested_by else None,
                "requested_at": self.requested_at.isoformat() if self.requested_at else None,
                "finished_at": self.finished_at.isoformat() if self.finished_at else None,
                "preview": self.preview, "result": self.result,
                "undo_of": self.undo_of.request_id if self.undo_of else None}
