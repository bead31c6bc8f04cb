"""Websocket origin check: the page's Origin must be this site itself (same scheme, host and port
as the request) or one of the configured origins (THOXDASH_EXTERNAL_URL, CSRF_TRUSTED_ORIGINS).

Channels' AllowedHostsOriginValidator compares host names only, so any port of an allowed host
(another local service, a developer's page on 127.0.0.1:18999) could open a socket with the user's
session and read live telemetry.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORT = {"http": 80, "https": 443}


def parse_origin(text: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin or URL; None when it is not http(s)."""
    try:
        parts = urlsplit(text.strip())
        scheme, host, port = parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    except ValueError:
        return None
    if scheme not in DEFAULT_PORT or not host:
        return None
    return scheme, host, port or DEFAULT_PORT[scheme]


def origin_allowed(origin: str, host_header: str, schemes: Iterable[str], allowed_hosts: list[str],
                   trusted: Iterable[str]) -> bool:
    """True when `origin` is the request's own origin (for one of `schemes`, with the Host header's
    port) or matches a trusted origin exactly (scheme, host, port; `*.` wildcards in the host)."""
    parsed = parse_origin(origin)
    if parsed is None:
        return False
    domain, port = split_domain_port(host_header)
    if domain and validate_host(domain, allowed_hosts):
        for scheme in schemes:
            if scheme in DEFAULT_PORT and parsed == (scheme, domain.strip("[]"),
                                                     int(port) if port else DEFAULT_PORT[scheme]):
                return True
    for item in trusted:
        want = parse_origin(item)
        if want is None:
            continue
        w_scheme, w_host, w_port = want
        if parsed[0] == w_scheme and parsed[2] == w_port and fnmatch.fnmatchcase(parsed[1], w_host):
            return True
    return False


class OriginValidator:
    """ASGI middleware: websockets from other origins are refused before any consumer runs."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            headers = {k.decode("latin1").lower(): v.decode("latin1") for k, v in scope.get("headers", [])}
            secure = scope.get("scheme") in ("wss", "https")
            schemes = ["https" if secure else "http"]
            forwarded = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
            if forwarded in DEFAULT_PORT:
                schemes.append(forwarded)
            trusted = [settings.EXTERNAL_URL, *settings.CSRF_TRUSTED_ORIGINS]
            if not origin_allowed(headers.get("origin", ""), headers.get("host", ""), schemes,
                                  settings.ALLOWED_HOSTS, trusted):
                return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
