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
                           {"ts": time.time(), "source": "event",
                            "event": {"kind": "model_loaded", "model": "<script>"}}])
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


async def test_a_10000_series_snapshot_comes_in_parts_under_the_frame_limit(settings, store):
    settings.REDIS_PREFIX = store.prefix
    now = time.time()
    store.publish("big", [{"ts": now - 10 + i, "source": "host",
                           "values": {f'cpu_load_ratio{{cpu="{c}"}}': (c % 100) / 100 for c in range(10_000)}}
                          for i in range(8)])
    user = await asyncio.to_thread(lambda: User.objects.create_user("u3", password="p"))
    comm = _communicator(user, "big")
    assert (await comm.connect())[0]
    raw = [await comm.receive_from(timeout=30)]
    head = json.loads(raw[0])
    assert head["type"] == "snapshot" and head["parts"] > 1
    for _ in range(head["parts"] - 1):
        raw.append(await comm.receive_from(timeout=30))
    parts = [json.loads(text) for text in raw[1:]]
    assert [p["type"] for p in parts] == ["snapshot_part"] * (head["parts"] - 1)
    assert [p["part"] for p in parts] == list(range(1, head["parts"]))
    assert max(len(text.encode()) for text in raw) < 1 << 20  # every frame under the websocket's 1 MiB
    series = {**head["series"]}
    for p in parts:
        assert not set(p["series"]) & set(series)
        series.update(p["series"])
    assert len(series) == 10_000 and series['cpu_load_ratio{cpu="42"}'][1] == [0.42] * 8
    assert "truncated_series" not in head
    await comm.disconnect()


async def test_bad_entries_do_not_stick_the_live_feed(settings, store):
    settings.REDIS_PREFIX = store.prefix
    settings.LIVE_MAX_UPDATES_PER_S = 50
    now = time.time()
    key = store.keys("dev5").telemetry
    store.publish("dev5", [{"ts": now - 3, "source": "s", "values": {"gpu_load_ratio": 0.1}}])
    store.r.xadd(key, {"j": "{not json"})
    store.r.xadd(key, {"j": "[1, 2]"})
    user = await asyncio.to_thread(lambda: User.objects.create_user("u5", password="p"))
    comm = _communicator(user, "dev5")
    assert (await comm.connect())[0]
    snap = json.loads(await comm.receive_from(timeout=5))
    assert snap["type"] == "snapshot" and snap["series"]["gpu_load_ratio"][1] == [0.1]
    store.r.xadd(key, {"j": '{"ts": NaN, "source": "s", "values": {"gpu_load_ratio": 1}}'})
    store.r.xadd(key, {"no": "j"})
    store.publish("dev5", [{"ts": time.time(), "source": "s", "values": {"gpu_load_ratio": 0.7}}])
    got: list = []
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        update = json.loads(await comm.receive_from(timeout=5))
        assert update["type"] == "update"
        got.extend(update["series"].get("gpu_load_ratio", [[], []])[1])
    assert got == [0.7]
    await comm.disconnect()


async def test_redis_going_away_closes_with_a_valid_code(settings, store, tmp_path):
    """Close codes a server may send are 1000 or 3000-4999 (1011 is refused by the websocket server
    under daphne, which left the socket half-open and the page 'stale' for good)."""
    from tests.faults import RedisServer

    server = RedisServer(tmp_path)
    server.start()
    try:
        settings.REDIS_URL = server.url
        settings.REDIS_PREFIX = store.prefix
        user = await asyncio.to_thread(lambda: User.objects.create_user("u6", password="p"))
        comm = _communicator(user, "dev6")
        assert (await comm.connect())[0]
        assert json.loads(await comm.receive_from(timeout=5))["type"] == "snapshot"
        await asyncio.to_thread(server.kill)
        error = json.loads(await comm.receive_from(timeout=10))
        assert error == {"type": "error", "message": "telemetry store unavailable; reconnecting"}
        closed = await comm.receive_output(timeout=5)
        assert closed == {"type": "websocket.close", "code": 4011}
    finally:
        server.stop()


def test_split_series_keeps_parts_under_the_budget_and_the_total_bounded():
    from thoxdash.live import split_series

    series = {f"s{i:03d}": [[float(t) for t in range(50)], [0.5] * 50] for i in range(200)}
    one = len(json.dumps(series["s000"], separators=(",", ":"))) + len("s000") + 8
    parts, dropped = split_series(series, part_bytes=10 * one, max_bytes=10**9)
    assert dropped == 0 and [len(p) for p in parts] == [10] * 20
    assert [k for p in parts for k in p] == sorted(series)
    parts, dropped = split_series(series, part_bytes=10 * one, max_bytes=55 * one)
    assert dropped == 145 and sum(len(p) for p in parts) == 55  # bounded; the rest is counted
    parts, dropped = split_series({}, 1024, 4096)
    assert parts == [{}] and dropped == 0
