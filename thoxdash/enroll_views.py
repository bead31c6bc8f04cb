"""Settings > Devices: staff enroll a device in the server-owned registry (or remove it) and get
its own action key once, on the response page (never stored in a message or cookie)."""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from advisors.telemetry import store
from collectors import registry
from collectors.actions.signing import derive_key
from collectors.keys import DEVICE_ID


@login_required
@require_POST
def devices_edit(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied("staff only")
    device = request.POST.get("device", "").strip()
    op = request.POST.get("op", "")
    if not DEVICE_ID.match(device):
        messages.error(request, "A device id is 1-64 letters, digits, '.', '_' or '-'.")
        return redirect(reverse("settings") + "#enrolled")
    s = store()
    if op == "remove":
        registry.remove(s.r, s.prefix, device)
        messages.success(request, f"Removed {device} from the registry.")
        return redirect(reverse("settings") + "#enrolled")
    if op != "enroll":
        messages.error(request, f"unknown operation {op[:40]!r}")
        return redirect(reverse("settings") + "#enrolled")
    registry.enroll(s.r, s.prefix, device, notes=request.POST.get("notes", "")[:200],
                    by=request.user.get_username(), now=time.time())
    key = derive_key(settings.AGENT_KEY, device) if settings.AGENT_KEY else ""
    response = render(request, "enrolled.html", {"device": device, "key": key,
                                                 "acl": registry.acl_rules(device, s.prefix)})
    response["Cache-Control"] = "no-store"
    return response
