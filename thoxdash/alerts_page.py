"""The /alerts/ page: firing alerts (acknowledge, silence), silences (expire), history."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from advisors.alerting import stale_devices
from advisors.models import Alert, Silence
from advisors.silencing import acknowledge, expire, silence

DURATIONS = [(900, "15 min"), (3600, "1 hour"), (4 * 3600, "4 hours"), (86_400, "1 day"), (7 * 86_400, "7 days")]


def alerts_page(request: HttpRequest) -> HttpResponse:
    silences = list(Silence.active().select_related("created_by").order_by("expires_at"))
    firing = list(Alert.objects.filter(state=Alert.FIRING).select_related("acknowledged_by")[:500])
    device = request.GET.get("device", "")
    fingerprint = request.GET.get("fingerprint", "")
    if device:
        firing = [a for a in firing if a.device == device]
    if fingerprint:
        firing = [a for a in firing if a.fingerprint == fingerprint]
    down = stale_devices()
    for alert in firing:
        alert.silence = alert.silenced_by(silences)  # type: ignore[attr-defined]  # for the template
        alert.stale = alert.device in down and alert.rule != "device_down"  # type: ignore[attr-defined]
    history = Alert.objects.exclude(state=Alert.FIRING)
    if device:
        history = history.filter(device=device)
    if fingerprint:
        history = history.filter(fingerprint=fingerprint)
    return render(request, "alerts.html", {
        "firing": firing, "history": history.select_related("acknowledged_by")[:200], "silences": silences,
        "durations": DURATIONS, "can_act": request.user.is_staff, "device": device, "fingerprint": fingerprint,
    })


def _staff(request: HttpRequest) -> HttpResponse | None:
    """A 403 page for read-only users (logged by Django in one line, no traceback), else None."""
    from thoxdash.auth import forbidden

    return None if request.user.is_staff else forbidden(request)


@login_required
@require_POST
def ack(request: HttpRequest, pk: int) -> HttpResponse:
    if (refused := _staff(request)) is not None:
        return refused
    alert = acknowledge(get_object_or_404(Alert, pk=pk), request.user)
    messages.success(request, f"Acknowledged {alert.rule} on {alert.device}.")
    return redirect("alerts")


@login_required
@require_POST
def silence_form(request: HttpRequest, pk: int) -> HttpResponse:
    if (refused := _staff(request)) is not None:
        return refused
    alert = get_object_or_404(Alert, pk=pk)
    try:
        row = silence(alert, request.user, float(request.POST.get("duration_s", "3600")),
                      request.POST.get("comment", ""))
    except ValueError as exc:
        messages.error(request, f"Not silenced: {exc}")
    else:
        messages.success(request, f"Silenced {alert.rule} on {alert.device} until {row.expires_at:%Y-%m-%d %H:%M} UTC.")
    return redirect("alerts")


@login_required
@require_POST
def expire_form(request: HttpRequest, pk: int) -> HttpResponse:
    if (refused := _staff(request)) is not None:
        return refused
    expire(get_object_or_404(Silence, pk=pk))
    messages.success(request, "Silence expired.")
    return redirect("alerts")
