"""API authentication: a logged-in session or `Authorization: Bearer <token>`."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from advisors.models import ApiToken
from advisors.models.tokens import hash_token


def _bearer_user(request: HttpRequest, scope: str):
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None, None
    token = ApiToken.objects.select_related("user").filter(token_hash=hash_token(header[7:].strip())).first()
    if token is None or not token.user.is_active:
        return None, "invalid token"
    if not token.allows(scope):
        return None, f"token lacks the '{scope}' scope"
    ApiToken.objects.filter(pk=token.pk).update(last_used=timezone.now())
    return token.user, None


def api_auth(scope: str = "read", staff: bool = False) -> Callable:
    """Require a session or a bearer token with `scope`; `staff` for acting."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            # With an Authorization: Bearer header the token alone authenticates (a bad token is a
            # 401 even when a session cookie rides along); without one, the session does.
            if request.headers.get("Authorization", "").startswith("Bearer "):
                user, problem = _bearer_user(request, scope)
                if user is None:
                    return JsonResponse({"error": problem or "invalid token"}, status=401)
                request.user = user
                request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]  # Django's own flag
            else:
                user = request.user if request.user.is_authenticated else None
                if user is None:
                    return JsonResponse({"error": "authentication required"}, status=401)
            if staff and not user.is_staff:
                return JsonResponse({"error": "staff only"}, status=403)
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def csrf_for_sessions(view: Callable) -> Callable:
    """Bearer-token calls skip CSRF; calls riding on a browser session must carry the token."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            rejected = CsrfViewMiddleware(lambda r: HttpResponse()).process_view(request, view, args, kwargs)
            if rejected is not None:
                return JsonResponse({"error": "CSRF token missing or incorrect"}, status=403)
        return view(request, *args, **kwargs)

    return csrf_exempt(wrapper)


def forbidden(request: HttpRequest, reason: str = "This needs a staff account.") -> HttpResponse:
    """An expected refusal (a read-only user's POST): a 403 page; Django logs it in one line."""
    return render(request, "403.html", {"reason": reason}, status=403)
