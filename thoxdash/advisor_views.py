"""The /advisor/ page: recommendations with their evidence, Apply / Undo (staff), the audit log.

Forms post only a recommendation id or a request id: the action and its parameters are looked up
server-side, never taken from the form.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from advisors import actions as act
from advisors.telemetry import store
from collectors.store import DEVICE_ID


def _text(value: object, width: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _device_choice(request: HttpRequest, devices: list[str]) -> str:
    chosen = request.GET.get("device") or request.POST.get("device") or (devices[0] if devices else "")
    if chosen and not DEVICE_ID.match(chosen):
        raise Http404("no such device")
    return chosen


@login_required
def page(request: HttpRequest) -> HttpResponse:
    devices = sorted(store().devices())
    chosen = _device_choice(request, devices)
    recs: list[dict] = []
    if chosen:
        act.collect_results(store(), chosen)
        recs = act.device_recommendations(store(), chosen)
    for rec in recs:
        rec["evidence_text"] = _text(rec["evidence"]["value"])
        rec["action_text"] = _text(rec["action"]) if rec.get("action") else ""
    rows = act.recent_rows(chosen or None)
    for row in rows:
        row.params_text = _text(row.params, 160)
    return render(request, "advisor.html", {
        "devices": devices, "chosen": chosen, "recommendations": recs,
        "safe": [r for r in recs if r.get("safe")], "actions": rows,
        "can_act": request.user.is_staff,
    })


@login_required
@require_POST
def do(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied("staff only")
    devices = sorted(store().devices())
    device = _device_choice(request, devices)
    op = request.POST.get("op", "")
    try:
        if device not in devices:
            raise act.ActionError(f"unknown device {device!r}")
        if op in ("apply", "preview"):
            row = act.apply_recommendation(store(), device, request.POST.get("rec", ""), request.user,
                                           dry_run=op == "preview")
        elif op == "apply_safe":
            row = act.apply_recommended(store(), device, request.user, request.POST.getlist("rec"))
        elif op == "undo":
            from advisors.models import ActionRequest

            original = ActionRequest.objects.filter(request_id=request.POST.get("request_id", ""),
                                                    device=device).first()
            if original is None:
                raise act.ActionError("no such action request")
            row = act.request_undo(store(), act.refresh(store(), original), request.user)
        else:
            raise act.ActionError(f"unknown operation {op[:20]!r}")
    except act.ActionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Sent {row.action} to {device} (request {row.request_id}); "
                                  "the result appears below when the agent answers.")
    return redirect(reverse("advisor") + "?" + urlencode({"device": device}))
