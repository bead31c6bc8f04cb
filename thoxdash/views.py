"""Server-rendered pages. Every page needs a login; the data arrives over the websocket/API."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from advisors.telemetry import store
from collectors.catalog import chart_series
from collectors.store import DEVICE_ID
from collectors.text import is_uint
from thoxdash.auth import forbidden
from thoxdash.devices import device_list
from thoxdash.payload import RANGES, isolated_cpus


def favicon(request: HttpRequest) -> HttpResponse:
    from django.templatetags.static import static

    return redirect(static("thoxdash/favicon.svg"), permanent=True)


@login_required
def fleet(request: HttpRequest) -> HttpResponse:
    from thoxdash.api_series import fleet_rows

    return render(request, "fleet.html", {"rows": fleet_rows(), "stale_after_s": settings.STALE_AFTER_S})


def checklist(state: dict[str, Any], config: dict[str, Any],
              values: dict[str, float] | None = None) -> list[dict[str, str]]:
    """The doctor's tuning checklist over the latest state hash, in words for the template."""
    from advisors.recommend import run_checks
    from advisors.recommend.words import check_title, describe, describe_recommended

    return [{"check": c["check"], "title": check_title(c["check"]), "status": c["status"],
             "status_text": c["status"],
             "value": describe(c["check"], c.get("value")),
             "recommended": describe_recommended(c["check"], c.get("recommended")),
             "evidence": str(c.get("evidence") or "")}
            for c in run_checks(state, config, values)]


def host_config(device_id: str, values: dict[str, float] | None = None) -> dict[str, Any]:
    """The device config plus what the advice needs to fit the host (its real CPUs)."""
    from advisors.alerting import device_config

    config = dict(device_config(device_id))
    if values is None:
        values = store().latest(device_id)["values"]
    cpus = sorted({k.split('cpu="', 1)[1].split('"', 1)[0] for k in values
                   if k.startswith("cpu_load_ratio{") and 'cpu="' in k})
    if cpus and "online_cpus" not in config:
        config["online_cpus"] = ",".join(c for c in cpus if is_uint(c))
    return config


def irq_names(state: dict[str, Any]) -> dict[str, str]:
    """IRQ number -> a short name ("c240000.i2c", "eth0") from the IRQ source's placement state."""
    out = {}
    for irq, entry in (state.get("irq_placement") or {}).items():
        name = str((entry or {}).get("name") or "").split()
        if name:
            out[str(irq)] = name[-1][:24]
    return out


def _page_config(device_id: str) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, str]]]:
    latest = store().latest(device_id)
    config = host_config(device_id, latest["values"])
    state = latest["state"]
    return {
        "device": device_id,
        "throttle_celsius": config.get("throttle_celsius") or {},
        "isolated": sorted(isolated_cpus(config, state), key=lambda c: int(c) if is_uint(c) else 1 << 30),
        "slos": config.get("slos") or [],
        "irq_names": irq_names(state),
        "stale_after_s": settings.STALE_AFTER_S,
        "live_window_s": settings.LIVE_WINDOW_S,
        "max_updates_per_s": settings.LIVE_MAX_UPDATES_PER_S,
        "charts": chart_series(),  # chart id -> the metric names it draws (collectors/catalog.py)
    }, state, checklist(state, config, latest["values"])


@login_required
def device(request: HttpRequest, device_id: str) -> HttpResponse:
    if not DEVICE_ID.match(device_id):
        raise Http404("no such device")
    devices = {d["id"]: d for d in device_list()}
    if device_id not in devices:
        from advisors.models import DeviceSettings

        if not DeviceSettings.objects.filter(device=device_id).exists():
            raise Http404(f"no device {device_id} has reported here")
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
            return forbidden(request)
        device_form = DeviceForm(request.POST)
        runtimes = RuntimeFormSet(request.POST, prefix="rt")
        slos = SloFormSet(request.POST, prefix="slo")
        if chosen and device_form.is_valid() and runtimes.is_valid() and slos.is_valid():
            DeviceSettings.objects.update_or_create(device=chosen, defaults={
                "runtimes": collect(runtimes), "slos": collect(slos),
                "isolated_cpus": device_form.cleaned_data["isolated_cpus"].replace(" ", ""),
                "want_locked_clocks": device_form.cleaned_data["want_locked_clocks"]})
            messages.success(request, f"Saved the settings of {chosen}.")
            return redirect(reverse("settings") + "?" + _query(device=chosen))
        messages.error(request, "Not saved: correct the fields marked below.")
    else:
        device_form = DeviceForm(initial={
            "isolated_cpus": row.isolated_cpus if row else "",
            "want_locked_clocks": DeviceForm.locked_choice(row.want_locked_clocks if row else None)})
        runtimes = RuntimeFormSet(prefix="rt", initial=[RuntimeForm.initial_from(r) for r in config["runtimes"]])
        slos = SloFormSet(prefix="slo", initial=[SloForm.initial_from(s) for s in config["slos"]])
    from thoxdash.settings_forms import WebhookForm, redacted

    hooks = list(Webhook.objects.order_by("id"))
    for hook in hooks:  # a webhook URL's path is often its secret (Slack): staff only
        hook.shown_url = hook.url if request.user.is_staff else redacted(hook.url)  # type: ignore[attr-defined]
        if not request.user.is_staff and hook.disabled_reason:  # may quote the URL
            hook.disabled_reason = "see a staff user"
    return render(request, "settings.html", {
        "devices": devices, "chosen": chosen, "has_row": row is not None, "device_form": device_form,
        "webhook_form": WebhookForm(), "runtimes": runtimes, "slos": slos, "webhooks": hooks,
        "locked_now": bool(config.get("want_locked_clocks")),
        "enrolled": sorted(store().devices()), "registry_problems": store().registry().problems[:20],
        "users": get_user_model().objects.order_by("username"), "can_edit": request.user.is_staff,
    })


def _query(**params: str) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


def _webhook_tester():
    """The notifier's test function."""
    from advisors.notify.sender import send_test

    return send_test


@login_required
@require_POST
def webhook_test(request: HttpRequest, webhook_id: int) -> HttpResponse:
    from advisors.models import Webhook

    if not request.user.is_staff:
        return forbidden(request)
    hook = get_object_or_404(Webhook, pk=webhook_id)
    tester = _webhook_tester()
    if tester is None:
        messages.error(request, "Webhook test is not available: the notifier module is not installed.")
    else:
        try:
            result = tester(hook)
        except Exception as exc:  # the endpoint's failure is the answer the user asked for
            messages.error(request, f"Test to {hook.url} failed: {str(exc)[:300]}")
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
        status = getattr(result, "http_status", None)
        parts = [f"HTTP {status}" if status else "",
                 str(getattr(result, "status", "")), str(getattr(result, "error", "") or "")[:200]]
        duration = getattr(result, "duration_ms", None)
        if duration is not None:
            parts.append(f"{duration:.0f} ms")
        return ", ".join(p for p in parts if p)
    return json.dumps(result, default=str)[:300] if isinstance(result, (dict, list)) else str(result)[:300]


@login_required
@require_POST
def webhook_edit(request: HttpRequest) -> HttpResponse:
    """Staff only: add a webhook, or remove one."""
    from advisors.models import Webhook
    from thoxdash.settings_forms import WebhookForm

    if not request.user.is_staff:
        return forbidden(request)
    op = request.POST.get("op", "")
    if op == "add":
        form = WebhookForm(request.POST)
        if form.is_valid():
            hook = Webhook.objects.create(**form.cleaned_data)
            messages.success(request, f"Added webhook {hook.pk} ({hook.get_format_display()}, "
                                      f"{hook.min_severity} and above). Send a test to check it.")
        else:
            errors = "; ".join(f"{form.fields[f].label or f}: {' '.join(str(m) for m in e)}"
                               for f, e in form.errors.items())
            messages.error(request, f"Webhook not added: {errors}")
    elif op == "remove":
        hook = get_object_or_404(Webhook, pk=request.POST.get("webhook_id"))
        hook.delete()
        messages.success(request, "Removed the webhook.")
    return redirect(reverse("settings") + "#webhooks")


@login_required
@require_POST
def users_edit(request: HttpRequest) -> HttpResponse:
    """Staff: create a (non-staff) user. Superusers only: create staff, toggle staff / active flags."""
    if not request.user.is_staff:
        return forbidden(request)
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    users = get_user_model()
    op = request.POST.get("op", "")
    if op == "create":
        name = request.POST.get("username", "").strip()
        password = request.POST.get("password", "")
        make_staff = bool(request.POST.get("is_staff"))
        if make_staff and not request.user.is_superuser:
            return forbidden(request, "Only a superuser creates staff users.")
        problems = []
        if not name:
            problems.append("Give a username.")
        elif users.objects.filter(username=name).exists():
            problems.append(f"A user named {name} already exists: choose another name.")
        else:
            try:
                validate_password(password, users(username=name))
            except ValidationError as exc:
                problems.extend(exc.messages)
        if problems:
            messages.error(request, "User not created: " + " ".join(problems))
        else:
            users.objects.create_user(name, password=password, is_staff=make_staff)
            messages.success(request, f"Created user {name}.")
    elif op in ("toggle_staff", "toggle_active"):
        if not request.user.is_superuser:
            return forbidden(request, "Only a superuser changes staff or active flags.")
        user = get_object_or_404(users, pk=request.POST.get("user_id"))
        if user.pk == request.user.pk:
            messages.error(request, "You cannot change your own flags.")
        else:
            field = "is_staff" if op == "toggle_staff" else "is_active"
            setattr(user, field, not getattr(user, field))
            user.save(update_fields=[field])
            messages.success(request, f"Updated {user.username}.")
    return redirect(reverse("settings") + "#users")
