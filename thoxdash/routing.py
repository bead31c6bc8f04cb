from __future__ import annotations

from django.urls import re_path

from thoxdash.consumers import DeviceConsumer

websocket_urlpatterns = [
    re_path(r"^ws/devices/(?P<device>[A-Za-z0-9][A-Za-z0-9_.-]{0,63})/$", DeviceConsumer.as_asgi()),
]
