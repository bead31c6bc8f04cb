"""JSON API for the advisor: recommendations, action requests (staff + token scope `act`), results.

GET  /api/devices/<id>/recommendations -> [recommendation, ...]
POST /api/devices/<id>/actions         {"action", "params", "dry_run"?, "request_id"?} or
                                       {"action": "apply_recommended", "ids"?: [...]} -> 202 row
GET  /api/actions/<request id>         -> row (refreshed from the agent's answer)
POST /api/actions/<request id>/undo    -> 202 the undo request's row
"""

from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from advisors import actions as act
from advisors.telemetry import store
from thoxdash.api import device_problem
from thoxdash.auth import api_auth, csrf_for_sessions


@require_GET
@api_auth()
def recommendations(request: HttpRequest, device_id: str) -> JsonResponse:
    if problem := device_problem(device_id):
        return problem
    return JsonResponse(act.device_recommendations(store(), device_id), safe=False)


@csrf_for_sessions
@require_POST
@api_auth(scope="act", staff=True)
def create(request: HttpRequest, device_id: str) -> JsonResponse:
    if problem := device_problem(device_id):
        return problem
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return JsonResponse({"error": "body must be JSON"}, status=400)
    if not isinstance(body, dict):
        return JsonResponse({"error": "body must be a JSON object"}, status=400)
    try:
        if body.get("action") == "apply_recommended":
            ids = body.get("ids")
            if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
                return JsonResponse({"error": "'ids' must be a list of recommendation ids"}, status=400)
            row = act.apply_recommended(store(), device_id, request.user, ids)
        elif body.get("action") == "recommendation":
            row = act.apply_recommendation(store(), device_id, str(body.get("id", "")), request.user)
        else:
            row = act.request_action(store(), device_id, str(body.get("action")), body.get("params", {}),
                                     request.user, dry_run=body.get("dry_run") is True,
                                     request_id=body.get("request_id"))
    except act.ActionError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    if getattr(row, "existing", False):  # an idempotent retry: nothing sent again
        return JsonResponse(act.refresh(store(), row).as_json(), status=200)
    return JsonResponse(row.as_json(), status=202)


def _row(request_id: str):
    from advisors.models import ActionRequest

    return ActionRequest.objects.select_related("requested_by", "undo_of").filter(request_id=request_id).first()


@require_GET
@api_auth()
def detail(request: HttpRequest, request_id: str) -> JsonResponse:
    row = _row(request_id)
    if row is None:
        return JsonResponse({"error": f"no action {request_id[:64]}"}, status=404)
    return JsonResponse(act.refresh(store(), row).as_json())


@csrf_for_sessions
@require_POST
@api_auth(scope="act", staff=True)
def undo(request: HttpRequest, request_id: str) -> JsonResponse:
    row = _row(request_id)
    if row is None:
        return JsonResponse({"error": f"no action {request_id[:64]}"}, status=404)
    try:
        new = act.request_undo(store(), act.refresh(store(), row), request.user)
    except act.ActionError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(new.as_json(), status=202)
