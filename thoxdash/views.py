"""Server-rendered pages. Every page needs a login; the data arrives over the websocket/API."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from advisors.telemetry import store
from collectors.store import DEVICE_ID
from collectors.text import is_uint
from thoxdash.devices import device_list
from thoxdash.payload import RANGES, isolated_cpus


@login_required
def fleet(request: HttpRequest) -> HttpResponse:
    from thoxdash.api_series import fleet_rows

    return render(request, "fleet.html", {"rows": fleet_rows(), "stale_after_s": settings.STALE_AFTER_S})


def _shown(value: Any) -> str:
    if value is None or value == "":
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= 160 else text[:159] + "…"


def checklist(state: dict[str, Any], config: dict[str, Any],
              values: dict[str, float] | None = None) -> list[dict[str, str]]:
    """The doctor's tuning checklist over the latest state hash, as text for the template."""
    from advisors.recommend import run_checks

    return [{"check": c["check"], "status": c["status"], "value": _shown(c.get("value")),
             "recommended": _shown(c.get("recommended")), "evidence": _shown(c.get("evidence"))}
            for c in run_checks(state, config, values)]


def _page_config(device_id: str) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, str]]]:
    from advisors.alerting import device_config

    config = device_config(device_id)
    latest = store().latest(device_id)
    state = latest["state"]
    return {
        "device": device_id,
        "throttle_celsius": config.get("throttle_celsius") or {},
        "isolated": sorted(isolated_cpus(config, state), key=lambda c: int(c) if is_uint(c) else 1 << 30),
        "slos": config.get("slos") or [],
        "stale_after_s": settings.STALE_AFTER_S,
        "live_window_s": settings.LIVE_WINDOW_S,
        "max_updates_per_s": settings.LIVE_MAX_UPDATES_PER_S,
    }, state, checklist(state, config, latest["values"])


@login_required
def device(request: HttpRequest, device_id: str) -> HttpResponse:
    if not DEVICE_ID.match(device_id):
        raise Http404("no such device")
    devices = {d["id"]: d for d in device_list()}
    page, _state, checks = _page_config(device_id)
    chosen = request.GET.get("range", "live")
    page["range"] = chosen if chosen in RANGES else "live"
    return render(request, "device.html", {
        "device_id": device_id, "device": devices.get(device_id), "devices": list(devices.values()),
        "page_config": page, "checklist": checks, "ranges": ["live", *RANGES],
    })


@login_required
def alerts(request: HttpRequest) -> HttpResponse:
    from thoxdash.alerts_page import alerts_page

    return alerts_page(request)


@login_required
def advisor(request: HttpRequest) -> HttpResponse:
    from thoxdash.advisor_views import page

    return page(request)


def _settings_devices() -> list[str]:
    from advisors.models import DeviceSettings

    names = set(DeviceSettings.objects.values_list("device", flat=True)) | set(store().devices())
    return sorted(names)


@login_required
def settings_page(request: HttpRequest) -> HttpResponse:
    from advisors.alerting import device_config
    from advisors.models import DeviceSettings, Webhook
    from thoxdash.settings_forms import (
        DeviceForm,
        RuntimeForm,
        RuntimeFormSet,
        SloForm,
        SloFormSet,
        collect,
    )

    devices = _settings_devices()
    chosen = request.GET.get("device") or (devices[0] if devices else "")
    if chosen and not DEVICE_ID.match(chosen):
        raise Http404("no such device")
    row = DeviceSettings.objects.filter(device=chosen).first() if chosen else None
    config = device_config(chosen) if chosen else {"runtimes": [], "slos": []}
    if request.method == "POST":
        if not request.user.is_staff:
            raise PermissionDenied("staff only")
        device_form = DeviceForm(request.POST)
        runtimes = RuntimeFormSet(request.POST, prefix="rt")
        slos = SloFormSet(request.POST, prefix="slo")
        if chosen and device_form.is_valid() and runtimes.is_valid() and slos.is_valid():
            DeviceSettings.objects.update_or_create(device=chosen, defaults={
                "runtimes": collect(runtimes), "slos": collect(slos),
                "isolated_cpus": device_form.cleaned_data["isolated_cpus"].replace(" ", "")})
            messages.success(request, f"Saved the settings of {chosen}.")
            return redirect(reverse("settings") + "?" + _query(device=chosen))
        messages.error(request, "Not saved: correct the fields marked below.")
    else:
        device_form = DeviceForm(initial={"isolated_cpus": row.isolated_cpus if row else ""})
        runtimes = RuntimeFormSet(prefix="rt", initial=[RuntimeForm.initial_from(r) for r in config["runtimes"]])
        slos = SloFormSet(prefix="slo", initial=[SloForm.initial_from(s) for s in config["slos"]])
    return render(request, "settings.html", {
        "devices": devices, "chosen": chosen, "has_row": row is not None, "device_form": device_form,
        "runtimes": runtimes, "slos": slos, "webhooks": Webhook.objects.order_by("id"),
        "users": get_user_model().objects.order_by("username"), "can_edit": request.user.is_staff,
    })


def _query(**params: str) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


def _webhook_tester():
    """The notifier's test function (advisors.notify), when that module provides one."""
    try:
        from advisors import notify
    except ImportError:
        return None
    for name in ("send_test", "test_webhook", "send_test_notification"):
        fn = getattr(notify, name, None)
        if callable(fn):
            return fn
    return None


@login_required
@require_POST
def webhook_test(request: HttpRequest, webhook_id: int) -> HttpResponse:
    from advisors.models import Webhook

    if not request.user.is_staff:
        raise PermissionDenied("staff only")
    hook = get_object_or_404(Webhook, pk=webhook_id)
    tester = _webhook_tester()
    if tester is None:
        messages.error(request, "Webhook test is not available: the notifier module is not installed.")
    else:
        try:
            result = tester(hook)
        except Exception as exc:  # the endpoint's failure is the answer the user asked for
            messages.error(request, f"Test to {hook.url} failed: {exc}")
        else:
            if getattr(result, "status", "sent") == "sent":
                messages.success(request, f"Test sent to {hook.url}: {_describe(result)}")
            else:
                messages.error(request, f"Test to {hook.url} failed: {_describe(result)}")
    return redirect(reverse("settings") + "#webhooks")


def _describe(result: object) -> str:
    if result is None:
        return "ok"
    if hasattr(result, "http_status") or hasattr(result, "status"):
        parts = [f"HTTP {result.http_status}" if getattr(result, "http_status", None) else "",
                 str(getattr(result, "status", "")), str(getattr(result, "error", "") or "")[:200]]
        if getattr(result, "duration_ms", None) is not None:
            parts.append(f"{result.duration_ms:.0f} ms")
        return ", ".join(p for p in parts if p)
    return json.dumps(result, default=str)[:300] if isinstance(result, (dict, list)) else str(result)[:300]


@login_required
@require_POST
def users_edit(request: HttpRequest) -> HttpResponse:
    """Staff only: create a user, or toggle a user's staff / active flag."""
    if not request.user.is_staff:
        raise PermissionDenied("staff only")
    users = get_user_model()
    op = request.POST.get("op", "")
    if op == "create":
        name = request.POST.get("username", "").strip()
        password = request.POST.get("password", "")
        if not name or len(password) < 8 or users.objects.filter(username=name).exists():
            messages.error(request, "Give a new username and a password of at least 8 characters.")
        else:
            users.objects.create_user(name, password=password, is_staff=bool(request.POST.get("is_staff")))
            messages.success(request, f"Created user {name}.")
    elif op in ("toggle_staff", "toggle_active"):
        user = get_object_or_404(users, pk=request.POST.get("user_id"))
        if user.pk == request.user.pk:
            messages.error(request, "You cannot change your own flags.")
        else:
            field = "is_staff" if op == "toggle_staff" else "is_active"
            setattr(user, field, not getattr(user, field))
            user.save(update_fields=[field])
            messages.success(request, f"Updated {user.username}.")
    return redirect(reverse("settings") + "#users")
