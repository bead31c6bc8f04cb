from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiToken(models.Model):
    """A bearer token for the JSON API; only its hash is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, default="cli")
    token_hash = models.CharField(max_length=64, unique=True)
    scopes = models.CharField(max_length=100, default="read", help_text="read, or read,act")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)

    @classmethod
    def issue(cls, user, name: str = "cli", scopes: str = "read") -> tuple[ApiToken, str]:
        token = "thx_" + secrets.token_urlsafe(32)
        return cls.objects.create(user=user, name=name, token_hash=hash_token(token), scopes=scopes), token

    def allows(self, scope: str) -> bool:
        return scope in {s.strip() for s in self.scopes.split(",")}
