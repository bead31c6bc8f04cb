"""Hostile devices on a real stack (daphne + a Celery worker + Redis): junk and deletions in the
registry, absurd CPU lists, NaN/Inf, 10,000 series and malformed stream entries, written straight
into Redis the way a device's Redis user could. Every page answers 200 and the rules keep
evaluating the other devices (a fresh breach on a good device still fires)."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from collectors.store import TelemetryStore, connect
from tests.faults import wait_for
from tests.stack import Stack
from tests.test_e2e import login


@pytest.fixture(scope="module")
def hostile(redis_url, tmp_path_factory):
    from tests.conftest import RUN_PREFIX

    s = Stack(tmp_path_factory.mktemp("hostile"), redis_url, prefix=f"{RUN_PREFIX}hostile:")
    s.env["THOXDASH_WS_PER_USER"] = "2"
    s.start()
    yield s
    s.stop()


def _poison(store: TelemetryStore) -> list[str]:
    """Every hostile shape; returns the ids that are valid enough to be listed."""
    p, r, now = store.prefix, store.r, time.time()
    r.hset(f"{p}devices", mapping={"a b": "{}", "x": "[]", "bad-json": "{not json", "num": "5",
                                   "../etc": "{}", "huge-entry": json.dumps({"notes": "n" * 40_000})})
    # absurd lists in state, and a state hash field that is not JSON
    store.register_device("cpu-bomb")
    bomb = {"isolated_cpus": "0-99999999999", "nohz_full": "0-99999999999",
            "irq_affinity": {"isolated": "0-99999999999"},
            "cpu_governor": {str(i): "performance" for i in range(5000)}}
    store.publish("cpu-bomb", [{"ts": now, "source": "tuning", "state": bomb}])
    r.hset(f"{p}dev:cpu-bomb:state", mapping={"isolated_cpus": json.dumps("0-99999999999"), "junk": "{not json"})
    r.xadd(f"{p}dev:cpu-bomb:telemetry", {"j": json.dumps({"ts": now, "source": "s", "values": {
        'irq_interrupts_total{cpu="7",irq="24"}': 1.0}})})
    # NaN / Inf / huge numbers, in the latest hash and in stream entries
    store.register_device("nan-dev")
    r.hset(f"{p}dev:nan-dev:latest", mapping={"gpu_load_ratio": "nan", "temp_c": "inf", "big": "1e308",
                                              "neg": "-inf", "device_up": "1", '__name__{a="b"}': "1", "__ts": "nan"})
    r.xadd(f"{p}dev:nan-dev:telemetry", {"j": f'{{"ts": {now}, "source": "s", "values": {{"gpu_load_ratio": NaN, '
                                              f'"temp_c": Infinity}}}}'})
    # 10,000 series
    store.register_device("wide-dev")
    wide = {f'series_{i}{{n="{i}"}}': str(float(i)) for i in range(10_000)}
    wide["__ts"] = repr(now)
    r.hset(f"{p}dev:wide-dev:latest", mapping=wide)
    r.xadd(f"{p}dev:wide-dev:telemetry", {"j": json.dumps({"ts": now, "source": "s",
                                                           "values": {k: 1.0 for k in list(wide)[:10_000]}})})
    # a registry entry of a real device deleted by someone else: it is gone from the lists, nothing breaks
    store.register_device("deleted-dev")
    store.publish("deleted-dev", [{"ts": now, "source": "s", "values": {"gpu_load_ratio": 0.2}}])
    r.hdel(f"{p}devices", "deleted-dev")
    return ["cpu-bomb", "nan-dev", "wide-dev"]


def _malformed_streams(store: TelemetryStore) -> list[str]:
    """Stream entries that are not JSON, have no `j` field, or are JSON but not a record."""
    p, r, now = store.prefix, store.r, time.time()
    store.register_device("bad-stream")
    store.publish("bad-stream", [{"ts": now - 1, "source": "s", "values": {"gpu_load_ratio": 0.5}}])
    for fields in ({"j": "{not json"}, {"x": "no j field"}, {"j": "[1,2]"}, {"j": '"text"'},
                   {"j": json.dumps({"ts": "yesterday", "source": "s", "values": {}})}):
        r.xadd(f"{p}dev:bad-stream:telemetry", fields)
        r.xadd(f"{p}dev:bad-stream:requests", fields)
        r.xadd(f"{p}dev:bad-stream:events", fields)
    return ["bad-stream"]


def _breach(store: TelemetryStore, device: str) -> None:
    now = time.time()
    store.register_device(device, board={"model": "good"})
    store.publish(device, [{"ts": now - 2 + i * 0.5, "source": "s",
                            "values": {'runtime_memory_bytes{runtime="ollama"}': 6.0e9}} for i in range(4)])


def _check(hostile: Stack, listed: list[str], good: str, absent: tuple[str, ...] = ()) -> None:
    _breach(TelemetryStore(connect(hostile.env["REDIS_URL"]), hostile.prefix), good)
    with httpx.Client(timeout=60) as client:
        login(client, hostile.url, "admin", hostile.env["THOXDASH_ADMIN_PASSWORD"])
        pages = ["/", "/alerts/", "/advisor/", "/settings/", "/api/devices", "/api/fleet", "/api/alerts",
                 "/metrics"]
        for device in [*listed, good, *absent]:
            pages += [f"/devices/{device}/", f"/advisor/?device={device}", f"/settings/?device={device}",
                      f"/api/devices/{device}/latest", f"/api/devices/{device}/series?name=gpu_load_ratio",
                      f"/api/devices/{device}/range?name=gpu_load_ratio&range=15m",
                      f"/api/devices/{device}/recommendations"]
        failures = {}
        for path in pages:
            r = client.get(hostile.url + path)
            gone = any(f"/{a}/" in path for a in absent)  # not (validly) registered: a clean 404
            if not (r.status_code == 200 or (r.status_code == 404 and gone)):
                failures[path] = r.status_code
        assert not failures, sorted(failures.items())
        devices = {d["id"] for d in client.get(hostile.url + "/api/devices").json()}
        assert set(listed) | {good} <= devices and not devices & set(absent), devices
    # the rules keep evaluating the good device beside the hostile ones (one batch, beat's path)
    hostile.manage("shell", "-c", "from advisors.tasks import evaluate_all; evaluate_all.delay()")
    wait_for(lambda: f"('{good}', 'runtime_memory_over_ceiling', 'firing')" in hostile.manage(
        "shell", "-c", "from advisors.models import Alert; "
        "print(list(Alert.objects.values_list('device', 'rule', 'state')))"), 40,
        "the good device's alert beside the hostile devices")
    assert "MemoryError" not in hostile.log("worker")


def test_hostile_devices_break_no_page_and_no_rule(hostile):
    store = TelemetryStore(connect(hostile.env["REDIS_URL"]), hostile.prefix)
    listed = _poison(store)
    _check(hostile, listed, "good-1", absent=("deleted-dev", "huge-entry"))
    with httpx.Client(timeout=60) as client:
        login(client, hostile.url, "admin", hostile.env["THOXDASH_ADMIN_PASSWORD"])
        latest = client.get(hostile.url + "/api/devices/nan-dev/latest").text
        metrics = client.get(hostile.url + "/metrics").text
    json.loads(latest, parse_constant=lambda c: pytest.fail(f"/latest sent {c}: not JSON"))
    assert metrics.count("# TYPE thoxdash_device_up ") == 1 and 'thoxdash_device_up{device="nan-dev"}' in metrics
    assert "__name__" not in metrics
    assert metrics.count('device="wide-dev"') <= 2_000 + 2


def test_malformed_stream_entries_break_no_page_and_no_rule(hostile):
    store = TelemetryStore(connect(hostile.env["REDIS_URL"]), hostile.prefix)
    listed = _malformed_streams(store)
    _check(hostile, listed, "good-2")


def test_websockets_per_user_are_bounded_and_origins_checked(hostile):
    import asyncio

    import aiohttp

    store = TelemetryStore(connect(hostile.env["REDIS_URL"]), hostile.prefix)
    store.register_device("ws-dev")
    store.publish("ws-dev", [{"ts": time.time(), "source": "s", "values": {"gpu_load_ratio": 0.5}}])
    with httpx.Client() as client:
        login(client, hostile.url, "viewer", "viewer-pass-123")
        cookie = client.cookies["sessionid"]
    ws_url = hostile.url.replace("http", "ws") + "/ws/devices/ws-dev/"

    async def run() -> tuple[list[str], list[str]]:
        async with aiohttp.ClientSession(cookies={"sessionid": cookie}) as session:
            bad = []
            for origin in (f"http://127.0.0.1:{hostile.port + 1}", f"https://127.0.0.1:{hostile.port}", "http://localhost"):
                try:
                    async with session.ws_connect(ws_url, headers={"Origin": origin}) as ws:
                        msg = await ws.receive(timeout=5)
                        bad.append(f"{origin}: {msg.type}")
                except aiohttp.WSServerHandshakeError as exc:
                    assert exc.status == 403, exc
            sockets, outcome = [], []
            for _ in range(3):
                ws = await session.ws_connect(ws_url, headers={"Origin": hostile.url})
                sockets.append(ws)
                msg = await ws.receive(timeout=10)
                if msg.type == aiohttp.WSMsgType.CLOSE:
                    outcome.append(f"closed {ws.close_code}")
                else:
                    text = msg.type == aiohttp.WSMsgType.TEXT
                    outcome.append(json.loads(msg.data)["type"] if text else str(msg.type))
            for ws in sockets:
                await ws.close()
            # closing frees the slots
            ws = await session.ws_connect(ws_url, headers={"Origin": hostile.url})
            msg = await ws.receive(timeout=10)
            outcome.append(json.loads(msg.data)["type"] if msg.type == aiohttp.WSMsgType.TEXT else str(msg.type))
            await ws.close()
            return bad, outcome

    bad, outcome = asyncio.run(run())
    assert bad == []
    assert outcome == ["snapshot", "snapshot", "closed 4429", "snapshot"], outcome


def test_pages_work_under_the_real_csp(hostile):
    """The device, fleet and settings pages in Chromium with the CSP in force (no bypass): charts
    draw and update, the select auto-submits through forms.js, and no CSP violation is reported."""
    from playwright.sync_api import sync_playwright

    from scripts.ensure_browser import chromium
    from tests.faults import session_cookie

    store = TelemetryStore(connect(hostile.env["REDIS_URL"]), hostile.prefix)
    store.register_device("csp-dev", board={"model": "Orin"})
    store.register_device("csp-dev-2")
    now = time.time()
    store.publish("csp-dev", [{"ts": now - 10 + i, "source": "jtop", "values": {"gpu_load_ratio": 0.3}}
                              for i in range(10)])
    cookie = session_cookie(hostile.url, "admin", hostile.env["THOXDASH_ADMIN_PASSWORD"])
    violations: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        context = browser.new_context()
        context.add_cookies([{"name": "sessionid", "value": cookie, "url": hostile.url}])
        page = context.new_page()
        page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
        response = page.goto(hostile.url + "/devices/csp-dev/")
        assert "script-src 'self'" in response.headers["content-security-policy"]
        wait_for(lambda: int(page.evaluate("document.getElementById('charts').dataset.updates || '0'")) >= 1, 20,
                 "the device page's first update")
        store.publish("csp-dev", [{"ts": time.time(), "source": "jtop", "values": {"gpu_load_ratio": 0.97}}])
        wait_for(lambda: page.evaluate("document.getElementById('chart-gpu').data[0].y.slice(-1)[0]") == 0.97, 20,
                 "the live point drawn by Plotly")
        page.goto(hostile.url + "/")
        page.goto(hostile.url + "/settings/")
        options = page.eval_on_selector_all("select[data-autosubmit] option", "els => els.map(e => e.value)")
        other = next(o for o in options if o != page.eval_on_selector("select[data-autosubmit]", "e => e.value"))
        with page.expect_navigation():
            page.select_option("select[data-autosubmit]", other)
        assert f"device={other}" in page.url
        browser.close()
    assert violations == []
