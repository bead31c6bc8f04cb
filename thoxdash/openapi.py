"""GET /api/openapi.json: the JSON API's OpenAPI 3 document (a static file kept next to the code).

It needs a login like every other API endpoint (session or bearer token).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from thoxdash.auth import api_auth

SCHEMA_PATH = Path(__file__).resolve().parent / "openapi.json"


@lru_cache(maxsize=1)
def _document() -> bytes:
    return SCHEMA_PATH.read_bytes()


@require_GET
@api_auth()
def schema(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_document(), content_type="application/json")
