"""The Content-Security-Policy header (Django 5.2's SecurityMiddleware has none): the policy is
settings.CONTENT_SECURITY_POLICY (THOXDASH_CSP); the default allows no inline scripts or handlers,
the templates load every script from /static/."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        csp = settings.CONTENT_SECURITY_POLICY
        if csp and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = csp
        return response
