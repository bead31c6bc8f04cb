"""Dashboard JSON: a device's charts over a time range (range picker) and the fleet table rows."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Count
from django.http import HttpRequest, JsonResponse
from django.views.decorators.gzip import gzip_page
from django.views.decorators.http import require_GET

from advisors.telemetry import store
from collectors.store import DEVICE_ID
from thoxdash.auth import api_auth
from thoxdash.fleet import rows
from thoxdash.payload import RANGES, range_payload


def device_config(device: str) -> dict:
    from advisors.alerting import device_config as load

    return load(device)


def firing_counts() -> dict[str, int]:
    from advisors.models import Alert

    return dict(Alert.objects.filter(state=Alert.FIRING).values_list("device").annotate(n=Count("id")))


def fleet_rows() -> list[dict]:
    return rows(store().fleet(), firing_counts(), settings.STALE_AFTER_S)


@require_GET
@gzip_page
@api_auth()
def chart_range(request: HttpRequest, device_id: str) -> JsonResponse:
    """GET /api/devices/<id>/range?range=15m|1h|24h|7d&points=N (N: the chart's width in pixels)."""
    if not DEVICE_ID.match(device_id):
        return JsonResponse({"error": "invalid device id"}, status=400)
    name = request.GET.get("range", "15m")
    if name not in RANGES:
        return JsonResponse({"error": f"range must be one of {', '.join(RANGES)}"}, status=400)
    try:
        points = max(50, min(int(request.GET.get("points", "600")), 4000))
    except ValueError:
        return JsonResponse({"error": "'points' must be an integer"}, status=400)
    payload = range_payload(store(), device_id, RANGES[name], points, device_config(device_id))
    response = JsonResponse({"type": "range", "range": name, "device": device_id, **payload})
    response["Cache-Control"] = "private, max-age=5"
    return response


@require_GET
@gzip_page
@api_auth()
def fleet(request: HttpRequest) -> JsonResponse:
    """GET /api/fleet: the fleet table's rows (status, headline numbers, firing alerts)."""
    response = JsonResponse({"devices": fleet_rows(), "stale_after_s": settings.STALE_AFTER_S})
    response["Cache-Control"] = "private, no-cache"
    return response
