from __future__ import annotations

import asyncio
import json
import time

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, User

from thoxdash.routing import websocket_urlpatterns

pytestmark = pytest.mark.django_db(transaction=True)


def _communicator(user, device="dev1"):
    comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/devices/{device}/")
    comm.scope["user"] = user
    return comm


async def test_anonymous_websocket_is_refused(settings, store):
    settings.REDIS_PREFIX = store.prefix
    comm = _communicator(AnonymousUser())
    connected, code = await comm.connect()
    assert not connected and code == 4401


async def test_snapshot_then_live_update(settings, store):
    settings.REDIS_PREFIX = store.prefix
    settings.LIVE_MAX_UPDATES_PER_S = 50
    now = time.time()
    store.publish("dev1", [{"ts": now - 5, "source": "jtop", "values": {"gpu_load_ratio": 0.2, "unrelated_x": 1}}])
    user = await asyncio.to_thread(lambda: User.objects.create_user("u1", password="p"))
    comm = _communicator(user)
    connected, _ = await comm.connect()
    assert connected
    snap = json.loads(await comm.receive_from(timeout=5))
    assert snap["type"] == "snapshot"
    assert snap["series"]["gpu_load_ratio"][1] == [0.2]
    assert "unrelated_x" not in snap["series"]
    store.publish("dev1", [{"ts": time.time(), "source": "jtop", "values": {"gpu_load_ratio": 0.9}},
                           {"ts": time.time(), "source": "event", "event": {"kind": "model_loaded", "model": "<script>"}}])
    # The two records go to two streams; XREAD may wake on the first, so they can arrive in two updates.
    series: dict = {}
    events: list = []
    deadline = time.monotonic() + 5
    while not (series and events) and time.monotonic() < deadline:
        update = json.loads(await comm.receive_from(timeout=5))
        assert update["type"] == "update"
        series.update(update.get("series", {}))
        events.extend(update.get("events", []))
    assert series["gpu_load_ratio"][1] == [0.9]
    assert events[0]["model"] == "<script>"  # raw data; the page renders it as text
    await comm.disconnect()


async def test_updates_are_rate_limited(settings, store):
    settings.REDIS_PREFIX = store.prefix
    settings.LIVE_MAX_UPDATES_PER_S = 2
    user = await asyncio.to_thread(lambda: User.objects.create_user("u2", password="p"))
    comm = _communicator(user, "dev2")
    assert (await comm.connect())[0]
    await comm.receive_from(timeout=5)  # snapshot
    started = time.monotonic()
    for i in range(10):
        store.publish("dev2", [{"ts": time.time(), "source": "s", "values": {"gpu_load_ratio": i / 10}}])
        await asyncio.sleep(0.05)
    await asyncio.sleep(max(0.0, 1.6 - (time.monotonic() - started)))
    got, messages = [], 0
    while not await comm.receive_nothing(timeout=0.6):
        msg = json.loads(await comm.receive_from(timeout=1))
        messages += 1
        got.extend(msg["series"]["gpu_load_ratio"][1])
    assert got == [i / 10 for i in range(10)]  # nothing lost, only batched
    assert messages <= 5  # 2 updates/s over ~2 s, instead of 10
    await comm.disconnect()
