"""JSON API (session or bearer token). Shapes are a contract: thoxdash/openapi.json, docs/ARCHITECTURE.md."""

from __future__ import annotations

import math
import time

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from advisors.telemetry import store
from collectors.store import DEVICE_ID
from thoxdash.auth import api_auth
from thoxdash.devices import device_list


def device_problem(device_id: str) -> JsonResponse | None:
    """A 400/404 response when `device_id` is malformed or unknown, else None."""
    if not DEVICE_ID.match(device_id):
        return JsonResponse({"error": "invalid device id"}, status=400)
    if device_id not in store().devices():
        return JsonResponse({"error": f"unknown device {device_id}"}, status=404)
    return None


@require_GET
@api_auth()
def devices(request: HttpRequest) -> JsonResponse:
    return JsonResponse([{k: d[k] for k in ("id", "board", "last_seen", "status")} for d in device_list()], safe=False)


@require_GET
@api_auth()
def latest(request: HttpRequest, device_id: str) -> JsonResponse:
    if problem := device_problem(device_id):
        return problem
    return JsonResponse(store().latest(device_id))


@require_GET
@api_auth()
def series(request: HttpRequest, device_id: str) -> JsonResponse:
    if problem := device_problem(device_id):
        return problem
    name = request.GET.get("name", "")
    if not name:
        return JsonResponse({"error": "query parameter 'name' is required"}, status=400)
    now = time.time()
    try:
        since = float(request.GET.get("since", now - settings.LIVE_WINDOW_S))
    except ValueError:
        return JsonResponse({"error": "'since' must be epoch seconds"}, status=400)
    if not math.isfinite(since):
        return JsonResponse({"error": "'since' must be finite epoch seconds"}, status=400)
    # bounded: at most SERIES_MAX_WINDOW_S back and SERIES_MAX_RECORDS records (older data: the range API)
    since = max(since, now - settings.SERIES_MAX_WINDOW_S)
    points = []
    for record in store().read(device_id, "telemetry", since=since, count=settings.SERIES_MAX_RECORDS):
        value = record.get("values", {}).get(name)
        if value is not None:
            points.append([record["ts"], value])
    return JsonResponse({"name": name, "points": points})
