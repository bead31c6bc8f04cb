"""JSON API for alerts: list, acknowledge, silence (with expiry), list and expire silences.

GET needs a session or a read token; POST needs staff (session + CSRF, or a token with `act`).
"""

from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from advisors.alerting import stale_devices
from advisors.models import Alert, Silence
from advisors.silencing import acknowledge, alert_dict, expire, silence, silence_dict
from thoxdash.auth import api_auth, csrf_for_sessions

STATES = {"firing": [Alert.FIRING], "resolved": [Alert.RESOLVED], "all": [Alert.FIRING, Alert.RESOLVED]}


def _body(request: HttpRequest) -> dict:
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return request.POST.dict()


@require_GET
@api_auth()
def alerts(request: HttpRequest) -> JsonResponse:
    state = request.GET.get("state", "firing")
    if state not in STATES:
        return JsonResponse({"error": "state must be firing, resolved or all"}, status=400)
    try:
        limit = min(max(int(request.GET.get("limit", 500)), 1), 5000)
    except ValueError:
        return JsonResponse({"error": "limit must be an integer"}, status=400)
    rows = Alert.objects.filter(state__in=STATES[state]).select_related("acknowledged_by")
    if device := request.GET.get("device"):
        rows = rows.filter(device=device)
    if rule := request.GET.get("rule"):
        rows = rows.filter(rule=rule)
    silences = list(Silence.active())
    down = stale_devices()
    return JsonResponse([alert_dict(a, silences, down) for a in rows[:limit]], safe=False)


def _alert_or_404(pk: int) -> Alert | JsonResponse:
    alert = Alert.objects.select_related("acknowledged_by").filter(pk=pk).first()
    return alert if alert is not None else JsonResponse({"error": f"no alert {pk}"}, status=404)


@csrf_for_sessions
@require_POST
@api_auth(scope="act", staff=True)
def ack(request: HttpRequest, pk: int) -> JsonResponse:
    alert = _alert_or_404(pk)
    if isinstance(alert, JsonResponse):
        return alert
    alert = acknowledge(alert, request.user)
    return JsonResponse(alert_dict(alert, list(Silence.active())))


@csrf_for_sessions
@require_POST
@api_auth(scope="act", staff=True)
def silence_alert(request: HttpRequest, pk: int) -> JsonResponse:
    alert = _alert_or_404(pk)
    if isinstance(alert, JsonResponse):
        return alert
    data = _body(request)
    try:
        duration = float(data.get("duration_s", 3600))
        row = silence(alert, request.user, duration, str(data.get("comment", "")))
    except (TypeError, ValueError) as exc:
        return JsonResponse({"error": str(exc) or "duration_s must be a number"}, status=400)
    return JsonResponse(silence_dict(row), status=201)


@require_GET
@api_auth()
def silences(request: HttpRequest) -> JsonResponse:
    rows = Silence.objects.select_related("created_by").order_by("-created_at")
    if request.GET.get("active", "1") != "0":
        rows = Silence.active().select_related("created_by").order_by("-created_at")
    return JsonResponse([silence_dict(s) for s in rows[:1000]], safe=False)


@csrf_for_sessions
@require_POST
@api_auth(scope="act", staff=True)
def expire_silence(request: HttpRequest, pk: int) -> JsonResponse:
    row = Silence.objects.filter(pk=pk).first()
    if row is None:
        return JsonResponse({"error": f"no silence {pk}"}, status=404)
    return JsonResponse(silence_dict(expire(row)))
