"""The /advisor/ page: recommendations with their evidence, Apply / Undo (staff), the audit log.

Every Apply goes through a confirmation that lists each step old -> new (read from the latest
telemetry) and asks once; medium- and high-risk steps start unticked. Forms post only
recommendation ids or a request id: the action and its parameters are looked up server-side,
never taken from the form.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from advisors import actions as act
from advisors.recommend.words import (
    change,
    check_title,
    describe,
    describe_action,
    describe_recommended,
    plain,
    risk_level,
)
from advisors.telemetry import store
from collectors.store import DEVICE_ID


def _device_choice(request: HttpRequest, devices: list[str]) -> str:
    chosen = request.GET.get("device") or request.POST.get("device") or (devices[0] if devices else "")
    if chosen and not DEVICE_ID.match(chosen):
        raise Http404("no such device")
    return chosen


def _worded(rec: dict[str, Any]) -> dict[str, Any]:
    value = rec["evidence"]["value"]
    rec["evidence_text"] = describe(rec["id"], value) if rec.get("kind") == "tuning" else plain(value)
    rec["recommended_text"] = (describe_recommended(rec["id"], rec.get("recommended")) if rec.get("kind") == "tuning"
                               else plain(rec.get("recommended")))
    rec["action_text"] = describe_action(rec.get("action"))
    rec["risk_level"] = risk_level(rec.get("risk", ""))
    return rec


def _row_words(row: Any) -> Any:
    row.params_text = describe_action({"action": row.action, "params": row.params})
    steps = (row.result or {}).get("steps") or []
    row.steps_text = [f"{describe_action({'action': s.get('action'), 'params': s.get('params') or {}})}: "
                      f"{s.get('status', '?')}" + (f" ({s['reason']})" if s.get("reason") else "")
                      for s in steps if isinstance(s, dict)]
    row.undo_label = f"Undo all {len(row.params.get('steps') or [])} steps" if row.action == "batch" else "Undo"
    row.kind_text = "preview" if row.state == "preview" else row.action.replace("_", " ")
    return row


@login_required
def page(request: HttpRequest) -> HttpResponse:
    devices = sorted(store().devices())
    chosen = _device_choice(request, devices)
    recs: list[dict] = []
    executor = {"ok": False, "reason": "no device reports yet"}
    if chosen:
        act.collect_results(store(), chosen)
        recs = [_worded(r) for r in act.device_recommendations(store(), chosen)]
        executor = act.executor_status(store(), chosen)
    rows = [_row_words(r) for r in act.recent_rows(chosen or None)]
    return render(request, "advisor.html", {
        "devices": devices, "chosen": chosen, "recommendations": recs,
        "safe": [r for r in recs if r.get("safe")], "actions": rows,
        "can_act": request.user.is_staff, "executor": executor,
        "pending": any(r.state == "pending" for r in rows),
    })


def confirm_steps(recs: list[dict[str, Any]], state: dict[str, Any]) -> list[dict[str, Any]]:
    """One line per step to confirm: what changes old -> new, its risk, and whether it starts ticked
    (only low-risk steps do)."""
    out = []
    for rec in recs:
        if not rec.get("action"):
            continue
        level = risk_level(rec.get("risk", ""))
        out.append({"id": rec["id"], "title": rec["title"], **change(rec["action"], state),
                    "risk": rec.get("risk", ""), "risk_level": level, "checked": level == "low",
                    "reboot": bool(rec.get("needs_reboot"))})
    return out


@login_required
def confirm(request: HttpRequest) -> HttpResponse:
    """The confirmation of an Apply: ?device=&rec=ID (one) or &all=1 (every safe recommendation)."""
    devices = sorted(store().devices())
    device = _device_choice(request, devices)
    if device not in devices:
        raise Http404(f"no device {device} reports here")
    recs = act.device_recommendations(store(), device)
    if request.GET.get("all"):
        chosen = [r for r in recs if r.get("safe") and r.get("action")]
    else:
        wanted = set(request.GET.getlist("rec"))
        chosen = [r for r in recs if r["id"] in wanted]
    state = store().latest(device)["state"]
    from advisors.recommend.checks import normalize

    steps = confirm_steps(chosen, normalize(state))
    template = "advisor_confirm_form.html" if request.GET.get("partial") else "advisor_confirm.html"
    return render(request, template, {
        "device": device, "steps": steps, "batch": len(steps) > 1 or bool(request.GET.get("all")),
        "can_act": request.user.is_staff, "executor": act.executor_status(store(), device),
        "titles": [check_title(s["id"]) for s in steps],
    })


@login_required
@require_POST
def do(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        from thoxdash.auth import forbidden

        return forbidden(request)
    devices = sorted(store().devices())
    device = _device_choice(request, devices)
    op = request.POST.get("op", "")
    try:
        if device not in devices:
            raise act.ActionError(f"unknown device {device!r}")
        ids = request.POST.getlist("rec")
        if op == "preview":
            row = act.apply_recommendation(store(), device, ids[0] if ids else "", request.user, dry_run=True)
        elif op == "apply" and len(ids) == 1 and request.POST.get("batch") != "1":
            row = act.apply_recommendation(store(), device, ids[0], request.user)
        elif op in ("apply", "apply_safe"):
            if not ids:
                raise act.ActionError("nothing was ticked: tick the steps to apply")
            row = act.apply_recommended(store(), device, request.user, ids)
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
        what = "Preview of" if op == "preview" else "Sent"
        messages.success(request, f"{what} {describe_action({'action': row.action, 'params': row.params})} "
                                  f"to {device}; the result appears below when the agent answers.")
    return redirect(reverse("advisor") + "?" + urlencode({"device": device}))
