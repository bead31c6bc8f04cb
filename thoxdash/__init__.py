"""ThoxDash web: settings, ASGI routing, Celery app, views, API, consumers, /metrics."""

from __future__ import annotations

from thoxdash.celery import app as celery_app

__all__ = ["celery_app"]
