"""Where notifications point back to: the ThoxDash URL receivers link to (settings.EXTERNAL_URL)."""

from __future__ import annotations

from django.conf import settings


def external_url() -> str:
    return str(settings.EXTERNAL_URL).rstrip("/")
