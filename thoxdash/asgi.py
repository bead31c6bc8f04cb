"""ASGI entry point: HTTP (Django, static files) and websockets (Channels, session auth)."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "thoxdash.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi = get_asgi_application()

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
