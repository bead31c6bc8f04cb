"""ASGI entry point: HTTP (Django, static files) and websockets (Channels, session auth)."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "thoxdash.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi = get_asgi_application()


def _require_redis() -> None:
    """Refuse a Redis older than ThoxDash needs, with one line (collectors.redis_version)."""
    from advisors.telemetry import store
    from collectors.redis_version import require_at_start

    require_at_start(store().r, "REDIS_URL")


_require_redis()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from thoxdash.origins import OriginValidator  # noqa: E402
from thoxdash.routing import websocket_urlpatterns  # noqa: E402
from thoxdash.static import CachedStaticFiles  # noqa: E402

application = ProtocolTypeRouter({
    # Static files (our JS/CSS and the plotly bundle) are served by the app itself, so a device
    # with no nginx and no internet still gets every asset.
    "http": CachedStaticFiles(django_asgi),
    # Origin matched with scheme, host and port (thoxdash/origins.py), then the session.
    "websocket": OriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
})
