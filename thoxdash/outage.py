"""503 while the telemetry store (Redis) is away, instead of a 500 and a traceback.

Any view that reaches Redis during an outage raises redis's ConnectionError/TimeoutError (or the
store's StoreUnavailable); this middleware answers 503 with `Retry-After` and one clear line: JSON
`{"error": ...}` for /api/ and /metrics callers, a short page for people. Pages come back on their
own once Redis answers again (each request reconnects)."""

from __future__ import annotations

import json
import logging
from html import escape

import redis
from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin

from collectors.store import StoreUnavailable

log = logging.getLogger(__name__)
OUTAGE = (redis.ConnectionError, redis.TimeoutError, StoreUnavailable)
RETRY_AFTER_S = 5
MESSAGE = "The telemetry store (Redis) is unavailable; this page works again as soon as it is back."


def unavailable(request: HttpRequest, exc: BaseException) -> HttpResponse:
    detail = f"{exc.__class__.__name__}: {exc}"[:300]
    if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
        response = HttpResponse(json.dumps({"error": MESSAGE, "detail": detail}), status=503,
                                content_type="application/json")
    else:
        body = (f"<!doctype html><title>ThoxDash: telemetry store unavailable</title>"
                f"<h1>Telemetry store unavailable</h1><p>{escape(MESSAGE)}</p>"
                f"<p><small>{escape(detail)}</small></p>")
        response = HttpResponse(body, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_S)
    return response


class StoreOutageMiddleware(MiddlewareMixin):
    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, OUTAGE):
            log.warning("%s %s: telemetry store unavailable: %s", request.method, request.path, exception)
            return unavailable(request, exception)
        return None
