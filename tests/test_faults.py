"""Faults injected for real: a redis-server SIGKILLed and restarted under a running agent, latency
proxy, daphne (websocket, /metrics) and Celery worker; a Celery worker SIGKILLed in the middle of a
task (the alert fires once, the webhook is called once); a webhook receiver that is down and comes
back (the issue's "5 minutes" is scaled to ~8 s with a shorter backoff: same retry mechanism; the
backlog arrives in order); a worker SIGKILLed while its webhook POST is in flight (the documented
duplicate, same Idempotency-Key) and just after it (no duplicate); bad stream entries of every
shape next to good data (the device still alerts, its pages answer 200); a runtime admin API that
hangs or answers garbage. The whole `make run` set over an outage is tests/test_faults_run.py.

These tests run their own redis-server on a free port (never the shared one) and their own stack
over it, so killing Redis affects nothing else.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import httpx
import pytest

from collectors.actions import signing
from collectors.actions.executor import Executor
from collectors.store import TelemetryStore, connect
from tests import fake_device
from tests.faults import Receiver, RedisServer, python_env, session_cookie, sigkill_tree, wait_for
from tests.runtime_servers import LoopbackServer, js
from tests.stack import Stack, free_port

PY = sys.executable
OUTAGE_S = 4.0  # Redis stays dead this long (the mechanism does not depend on the length)


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """A private redis-server and a stack (daphne + a Celery worker) on it."""
    tmp = tmp_path_factory.mktemp("faults")
    redis_server = RedisServer(tmp)
    redis_server.start()
    stack = Stack(tmp, redis_server.url, prefix="thoxfault:", worker=False)
    stack.env.update({"THOXDASH_CELERY_VISIBILITY_TIMEOUT_S": "3", "THOXDASH_CELERY_RESTORE_INTERVAL_S": "1",
                      "THOXDASH_WEBHOOK_BACKOFF_BASE_S": "0.5",
                      "THOXDASH_WEBHOOK_BACKOFF_CAP_S": "2",
                      "THOXDASH_WEBHOOK_TIMEOUT_S": "2"})
    stack.start()
    stack.redis = redis_server
    stack.worker = start_worker(stack, "worker")
    yield stack
    stack.stop()
    redis_server.stop()


def start_worker(stack: Stack, name: str) -> subprocess.Popen:
    bindir = Path(PY).parent
    return stack.spawn(name, str(bindir / "celery"), "-A", "thoxdash", "worker", "-l", "info", "--pool",
                       "threads", "--concurrency", "2", "--hostname", f"{name}-{stack.port}@%h")


def alerts(stack: Stack, device: str) -> list[tuple[str, str]]:
    db = stack.env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(db, timeout=20) as conn:
        return conn.execute("SELECT rule, state FROM advisors_alert WHERE device = ? ORDER BY id",
                            (device,)).fetchall()


def breach(store: TelemetryStore, device: str) -> None:
    now = time.time()
    store.register_device(device, board={"model": "test"})
    store.publish(device, [{"ts": now - 2 + i * 0.5, "source": "s",
                            "values": {'runtime_memory_bytes{runtime="ollama"}': 6.0e9}} for i in range(5)])


def add_webhook(stack: Stack, url: str) -> None:
    stack.manage("webhook", "add", url, "--format", "json", "--min-severity", "warning")


def drop_webhooks(stack: Stack) -> None:
    db = stack.env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(db, timeout=20) as conn:
        conn.execute("UPDATE advisors_webhook SET enabled = 0")


def notifications(receiver: Receiver, device: str, status: str = "firing") -> list[dict]:
    return [b for b in receiver.bodies if b.get("device") == device and b.get("status") == status]


def enqueue_evaluation(stack: Stack, device: str) -> None:
    stack.manage("shell", "-c", f"from advisors.tasks import evaluate_device; evaluate_device.delay({device!r})")


# -- Redis killed and restarted ----------------------------------------------------------------------

def _upstream() -> LoopbackServer:
    def generate(req):
        line = {"model": "llama3.2:3b", "created_at": "2026-11-23T12:00:00Z", "response": "hi", "done": True,
                "done_reason": "stop", "total_duration": 50_000_000, "load_duration": 1_000_000,
                "prompt_eval_count": 5, "prompt_eval_duration": 10_000_000, "eval_count": 3,
                "eval_duration": 30_000_000}
        return 200, "application/json", json.dumps(line).encode()
    return LoopbackServer({("POST", "/api/generate"): generate})


def _ask(proxy_url: str, n: int) -> None:
    for _ in range(n):
        r = httpx.post(proxy_url + "/api/generate", json={"model": "llama3.2:3b", "prompt": "hi", "stream": False},
                       timeout=10)
        assert r.status_code == 200 and r.json()["done"] is True


async def _ws_messages(url: str, cookie: str, origin: str, until: set[str], timeout: float) -> list[dict]:
    """Connect once; collect messages until one of type in `until` arrives or the socket closes."""
    seen: list[dict] = []
    async with aiohttp.ClientSession(cookies={"sessionid": cookie}) as session, \
            session.ws_connect(url, headers={"Origin": origin}, timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                break
            if msg.type != aiohttp.WSMsgType.TEXT:
                seen.append({"type": "closed", "code": ws.close_code})
                break
            data = json.loads(msg.data)
            seen.append(data)
            if data.get("type") in until:
                break
    return seen


def test_redis_killed_and_restarted_during_collection(own, tmp_path):
    store = TelemetryStore(connect(own.redis.url), own.prefix)
    env = python_env(own.env, THOXDASH_PROXY_SPILL=str(tmp_path / "proxy-spill"), THOXDASH_PROXY_PUBLISH_S="0.2")
    agent = subprocess.Popen([PY, "-m", "collectors", "agent", "--device", "fault-agent", "--redis", own.redis.url,
                              "--interval", "0.5", "--spill", str(tmp_path / "agent-spill")], env=env,
                             stdout=(tmp_path / "agent.log").open("w"), stderr=subprocess.STDOUT)
    proxy_port = free_port()
    proxy_url = f"http://127.0.0.1:{proxy_port}"
    with _upstream() as upstream:
        proxy = subprocess.Popen([PY, "-m", "collectors", "proxy", "--listen", f"127.0.0.1:{proxy_port}",
                                  "--upstream", upstream.url, "--runtime", "ollama", "--device", "fault-proxy",
                                  "--redis", own.redis.url], env=env,
                                 stdout=(tmp_path / "proxy.log").open("w"), stderr=subprocess.STDOUT)
        try:
            _run_outage(own, store, agent, proxy_url, tmp_path)
        finally:
            for proc in (agent, proxy):
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def _agent_status(store: TelemetryStore) -> list[dict]:
    return [r for r in store.read("fault-agent") if r.get("source") == "agent"]


def _requests(store: TelemetryStore) -> list[dict]:
    return store.read("fault-proxy", "requests")


def _run_outage(own: Stack, store: TelemetryStore, agent: subprocess.Popen, proxy_url: str, tmp_path: Path) -> None:
    wait_for(lambda: len(_agent_status(store)) >= 3, 30, "the agent's first records")
    wait_for(lambda: _answers(proxy_url), 20, "the proxy to listen")
    _ask(proxy_url, 5)
    wait_for(lambda: len(_requests(store)) >= 5, 15, "5 proxied requests in Redis")

    cookie = session_cookie(own.url, "viewer", "viewer-pass-123")
    ws_url = own.url.replace("http", "ws") + "/ws/devices/fault-agent/"
    loop = asyncio.new_event_loop()
    try:
        first = loop.run_until_complete(_ws_messages(ws_url, cookie, own.url, {"update"}, 15))
        assert [m["type"] for m in first][:1] == ["snapshot"] and first[-1]["type"] == "update", first

        # Kill Redis while a websocket is following the device: the consumer says so and closes.
        task = loop.create_task(_ws_messages(ws_url, cookie, own.url, {"error"}, 20))
        loop.run_until_complete(asyncio.sleep(1.0))
        killed_at = time.time()
        own.redis.kill()
        during = loop.run_until_complete(task)
        assert during[-1]["type"] == "error" or during[-1]["type"] == "closed", during

        _ask(proxy_url, 10)  # served while Redis is away; the records wait in the proxy's buffer
        scrape = {"Authorization": f"Bearer {own.env['THOXDASH_METRICS_TOKEN']}"}
        assert httpx.get(own.url + "/metrics", headers=scrape, timeout=10).status_code == 503
        time.sleep(max(0.0, OUTAGE_S - (time.time() - killed_at)))
        own.redis.start()
        restarted_at = time.time()

        # The browser's reconnect loop, at the websocket level: retry until a snapshot and a live update.
        def reconnect() -> list[dict] | None:
            got = loop.run_until_complete(_ws_messages(ws_url, cookie, own.url, {"update", "error"}, 10))
            types = [m["type"] for m in got]
            return got if types[:1] == ["snapshot"] and types[-1] == "update" else None

        after = wait_for(reconnect, 40, "the websocket to reconnect and stream again", every=1.0)
        assert after[-1]["series"], after[-1]
        r = httpx.get(own.url + "/metrics", headers=scrape, timeout=10)
        assert r.status_code == 200 and 'thoxdash_device_up{device="fault-agent"} 1.0' in r.text
    finally:
        loop.close()

    _ask(proxy_url, 5)
    # The proxy lost nothing: every request exactly once, the outage's included.
    wait_for(lambda: len(_requests(store)) >= 20, 30, "all 20 proxied requests in Redis")
    time.sleep(1.0)
    reqs = _requests(store)
    assert len(reqs) == 20, [r["ts"] for r in reqs]
    in_outage = [r for r in reqs if killed_at <= r["ts"] <= restarted_at]
    assert len(in_outage) == 10

    # The agent lost nothing: its once-per-tick status records run through the outage without a
    # hole, and nothing was dropped from its buffer.
    wait_for(lambda: any(r["ts"] > restarted_at + 2 for r in _agent_status(store)), 30, "agent records after restart")
    status = _agent_status(store)
    stamps = [r["ts"] for r in status]
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert max(gaps) < 5.0, f"largest gap {max(gaps):.2f} s; log: {(tmp_path / 'agent.log').read_text()[-2000:]}"
    before = [t for t in stamps if t <= killed_at]
    rate_before = len(before) / max(1e-6, before[-1] - before[0])
    rate_during = sum(1 for t in stamps if killed_at < t < restarted_at) / (restarted_at - killed_at)
    assert rate_during >= 0.5 * rate_before, (rate_before, rate_during)  # the outage is as dense as normal
    assert max(r["values"].get("agent_buffered_records", 0) for r in status) > 0
    assert all(r["values"].get("agent_dropped_records_total", 0) == 0 for r in status)
    assert agent.poll() is None, "the agent must survive the outage"

    # Celery resumes: the same worker, which lived through the outage, evaluates and fires.
    breach(store, "fault-celery")
    enqueue_evaluation(own, "fault-celery")
    wait_for(lambda: ("runtime_memory_over_ceiling", "firing") in alerts(own, "fault-celery"), 40,
             "the worker to fire after Redis came back")
    assert own.worker.poll() is None


def _answers(url: str) -> bool:
    try:
        httpx.get(url + "/", timeout=1)
        return True
    except httpx.HTTPError:
        return False


# -- Celery worker SIGKILLed mid-task ----------------------------------------------------------------

def test_worker_sigkilled_mid_task_alert_fires_once_and_notifies_once(own):
    store = TelemetryStore(connect(own.redis.url), own.prefix)
    receiver = Receiver().start()
    add_webhook(own, receiver.url)
    breach(store, "fault-kill")
    db = own.env["DATABASE_URL"].removeprefix("sqlite:///")
    worker_log = own.logs / "worker.log"
    received_before = worker_log.read_text().count("evaluate_device[")
    # Hold the database so the task stops inside its first query: it is running, not finished.
    lock = sqlite3.connect(db, timeout=20, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        enqueue_evaluation(own, "fault-kill")
        wait_for(lambda: worker_log.read_text().count("evaluate_device[") > received_before, 15,
                 "the worker to take the task")
        time.sleep(1.0)
        sigkill_tree(own.worker)  # worker process gone, task unacknowledged
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert alerts(own, "fault-kill") == []
    # A fresh worker gets the task again (visibility timeout 3 s, restore scan every 1 s here) and
    # fires it -- once.
    own.worker = start_worker(own, "worker2")
    wait_for(lambda: alerts(own, "fault-kill"), 45, "the redelivered task to fire the alert")
    # A second evaluation of the same still-breaching window changes nothing (idempotent).
    enqueue_evaluation(own, "fault-kill")
    wait_for(lambda: (own.logs / "worker2.log").read_text().count("evaluate_device[") >= 4, 30,
             "the second evaluation to run")
    time.sleep(1.0)
    assert alerts(own, "fault-kill") == [("runtime_memory_over_ceiling", "firing")]
    # ... and the webhook got exactly one firing notification for it.
    wait_for(lambda: notifications(receiver, "fault-kill"), 20, "the webhook notification")
    time.sleep(2.0)
    assert len(notifications(receiver, "fault-kill")) == 1, receiver.bodies
    receiver.stop()
    drop_webhooks(own)


# -- webhook receiver down, then back ---------------------------------------------------------------

def test_webhook_receiver_down_then_back_retried_none_lost_nothing_blocked(own):
    """The receiver is down for ~8 s (standing in for "5 minutes": the same retry loop with a
    0.5 s backoff base and 2 s cap instead of 1 s / 60 s); meanwhile another receiver and rule
    evaluation carry on."""
    store = TelemetryStore(connect(own.redis.url), own.prefix)
    down = Receiver()  # its port is chosen, nothing listens yet
    up = Receiver().start()
    add_webhook(own, down.url)
    add_webhook(own, up.url)
    try:
        breach(store, "fault-hook-a")
        fired_at = time.time()
        enqueue_evaluation(own, "fault-hook-a")
        # The healthy receiver is not held up by the dead one.
        wait_for(lambda: notifications(up, "fault-hook-a"), 20, "the healthy receiver's notification")
        healthy_after = time.time() - fired_at
        # Rule evaluation is not blocked either: another device fires while deliveries retry.
        breach(store, "fault-hook-b")
        enqueue_evaluation(own, "fault-hook-b")
        wait_for(lambda: ("runtime_memory_over_ceiling", "firing") in alerts(own, "fault-hook-b"), 20,
                 "evaluation of another device during the retries")
        wait_for(lambda: notifications(up, "fault-hook-b"), 20, "the second notification")
        db = own.env["DATABASE_URL"].removeprefix("sqlite:///")

        def attempts_to_down() -> int:
            with sqlite3.connect(db, timeout=20) as conn:
                row = conn.execute("SELECT SUM(d.attempts) FROM advisors_delivery d JOIN advisors_webhook w "
                                   "ON d.webhook_id = w.id WHERE w.url = ?", (down.url,)).fetchone()
            return int(row[0] or 0)

        wait_for(lambda: attempts_to_down() >= 3, 30, "retries against the dead receiver")
        time.sleep(max(0.0, 8.0 - (time.time() - fired_at)))
        assert down.bodies == []
        down.start()  # back
        wait_for(lambda: notifications(down, "fault-hook-a") and notifications(down, "fault-hook-b"), 30,
                 "the retried deliveries")
        time.sleep(3.0)
        # The backlog arrives in order (a fired first), none lost, none doubled.
        assert [b["device"] for b in down.bodies if b.get("status") == "firing"][:2] == ["fault-hook-a",
                                                                                         "fault-hook-b"]
        # One firing notification per alert on each receiver.
        for receiver in (down, up):
            for device in ("fault-hook-a", "fault-hook-b"):
                assert len(notifications(receiver, device)) == 1, (device, receiver.bodies)
        assert healthy_after < 15, healthy_after
    finally:
        down.stop()
        up.stop()
        drop_webhooks(own)


# -- a worker SIGKILLed with the webhook POST in flight, and just after it ------------------------------

def deliveries(stack: Stack, url: str) -> list[tuple[str, int]]:
    db = stack.env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(db, timeout=20) as conn:
        return conn.execute("SELECT d.status, d.attempts FROM advisors_delivery d JOIN advisors_webhook w "
                            "ON d.webhook_id = w.id WHERE w.url = ? ORDER BY d.id", (url,)).fetchall()


def sweep(stack: Stack) -> None:
    stack.manage("shell", "-c", "from advisors.notify.dispatch import sweep; sweep(grace_s=0)")


def test_worker_sigkilled_during_the_post_sends_again_with_the_same_key(own):
    """The documented duplicate: the receiver got the body, the worker died before recording it;
    once the claim lapses (HTTP timeout + 5 s) the sweep sends it again, same body, same key."""
    store = TelemetryStore(connect(own.redis.url), own.prefix)
    receiver = Receiver(delay_s=30).start()  # holds the answer: the POST stays in flight
    add_webhook(own, receiver.url)
    try:
        breach(store, "fault-mid")
        enqueue_evaluation(own, "fault-mid")
        wait_for(lambda: notifications(receiver, "fault-mid"), 30, "the POST to reach the receiver")
        sigkill_tree(own.worker)
        receiver.delay_s = 0
        own.worker = start_worker(own, "worker-mid")

        def resent() -> bool:
            sweep(own)
            return len(notifications(receiver, "fault-mid")) >= 2

        wait_for(resent, 60, "the sweep to send the lost attempt again", every=2.0)
        wait_for(lambda: deliveries(own, receiver.url) == [("sent", 2)], 20, "the row to be recorded sent")
        assert alerts(own, "fault-mid") == [("runtime_memory_over_ceiling", "firing")]
        time.sleep(2.0)
        firing = [i for i, b in enumerate(receiver.bodies) if b.get("device") == "fault-mid"]
        assert len(firing) == 2 and receiver.bodies[firing[0]] == receiver.bodies[firing[1]]
        keys = {receiver.headers[i]["Idempotency-Key"] for i in firing}
        assert len(keys) == 1, keys  # the receiver de-duplicates on it
    finally:
        receiver.stop()
        drop_webhooks(own)


def test_worker_sigkilled_after_the_post_sends_nothing_more(own):
    store = TelemetryStore(connect(own.redis.url), own.prefix)
    receiver = Receiver().start()
    add_webhook(own, receiver.url)
    try:
        breach(store, "fault-after")
        enqueue_evaluation(own, "fault-after")
        wait_for(lambda: deliveries(own, receiver.url) == [("sent", 1)], 30, "the delivery to be recorded sent")
        sigkill_tree(own.worker)
        own.worker = start_worker(own, "worker-after")
        for _ in range(5):  # well past any claim: nothing is left to send
            sweep(own)
            time.sleep(1.0)
        assert len(notifications(receiver, "fault-after")) == 1
        assert alerts(own, "fault-after") == [("runtime_memory_over_ceiling", "firing")]
    finally:
        receiver.stop()
        drop_webhooks(own)


# -- bad records of every shape next to good data ------------------------------------------------------

BAD_ENTRIES = [{"j": "{not json"}, {"no": "j"}, {"j": "[1, 2]"}, {"j": '"text"'}, {"j": "null"},
               {"j": '{"ts": NaN, "source": "s", "values": {"x": 1}}'},
               {"j": '{"ts": 1e300, "source": "s", "values": {"runtime_memory_bytes": Infinity}}'},
               {"j": '{"ts": 5, "source": "s", "state": {"isolated_cpus": NaN}}'},
               {"j": '{"ts": 5, "source": "s", "values": [1]}'}, {"j": "x" * 2_000_000}]


def _strict_json(text: str):
    def refuse(name: str):
        raise ValueError(f"{name} in a JSON answer")
    return json.loads(text, parse_constant=refuse)


def test_bad_records_of_every_shape_leave_the_device_alerting_and_its_pages_up(own):
    store = TelemetryStore(connect(own.redis.url), own.prefix)
    device = "fault-bad"
    store.register_device(device, board={"model": "test"})
    keys = store.keys(device)
    for stream in (keys.telemetry, keys.requests, keys.events):
        for fields in BAD_ENTRIES:
            store.r.xadd(stream, fields)
    store.r.hset(keys.latest, mapping={"gpu_load_ratio": "nan", "ram_used_bytes": "inf"})
    refused = [[1, 2], "text", {"ts": float("nan"), "source": "s", "values": {"x": 1}},
               {"ts": time.time(), "source": "s", "values": {"gpu_load_ratio": float("inf")}}]
    assert store.publish(device, refused) == 0
    # device-chosen names that would break the whole fleet's scrape
    store.publish(device, [{"ts": time.time(), "source": "s", "values": {
        'gpu_load_ratio{__name__="evil"}': 0.5, "device_up": 7.0, "device_last_seen_timestamp_seconds": 1.0}}])
    breach(store, device)  # good data, written after the bad
    enqueue_evaluation(own, device)
    wait_for(lambda: ("runtime_memory_over_ceiling", "firing") in alerts(own, device), 40,
             "the device's good data to fire its alert")
    cookie = session_cookie(own.url, "viewer", "viewer-pass-123")
    with httpx.Client(base_url=own.url, cookies={"sessionid": cookie}, timeout=20) as client:
        for path in ("/", f"/devices/{device}/", "/api/fleet", "/api/devices", f"/api/devices/{device}/latest",
                     f"/api/devices/{device}/range?range=15m&points=300",
                     f"/api/devices/{device}/series?name=runtime_memory_bytes", "/alerts/"):
            r = client.get(path)
            assert r.status_code == 200, (path, r.status_code, r.text[:300])
            if path.startswith("/api/"):
                _strict_json(r.text)
        latest = client.get(f"/api/devices/{device}/latest").json()
        assert latest["values"]["ingest_rejected_total"] == 4.0
    scrape = httpx.get(own.url + "/metrics", headers={"Authorization": f"Bearer {own.env['THOXDASH_METRICS_TOKEN']}"},
                       timeout=20)
    assert scrape.status_code == 200
    assert f'thoxdash_ingest_rejected_total{{device="{device}"}} 4.0' in scrape.text
    assert "__name__" not in scrape.text and scrape.text.count("# HELP thoxdash_device_up ") == 1
    lint = subprocess.run([shutil.which("promtool") or "/usr/bin/promtool", "check", "metrics"],
                          input=scrape.text, capture_output=True, text=True, timeout=30)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    loop = asyncio.new_event_loop()
    try:
        got = loop.run_until_complete(_ws_messages(own.url.replace("http", "ws") + f"/ws/devices/{device}/", cookie,
                                                   own.url, {"snapshot"}, 15))
    finally:
        loop.close()
    assert got[-1]["type"] == "snapshot" and 'runtime_memory_bytes{runtime="ollama"}' in got[-1]["series"]


# -- runtime admin API hung or answering garbage ----------------------------------------------------

KEY = "fault-key"


LOADED = {"models": [{"name": "llama3.2:3b", "model": "llama3.2:3b", "size": 3_000_000_000,
                     "size_vram": 3_000_000_000}]}


@pytest.mark.parametrize(("behaviour", "reason"), [
    ("ps-hangs", "no answer in 1 s"),
    ("ps-garbage", "not JSON"),
    ("ps-wrong-shape", "no 'models' list"),
    ("unload-hangs", "no answer in 1 s"),
])
def test_runtime_admin_api_fault_fails_the_action_cleanly(store, tmp_path, behaviour, reason):
    routes = {("POST", "/api/generate"): lambda req: js(200, {"done": True}),
              ("GET", "/api/ps"): lambda req: js(200, LOADED)}
    with LoopbackServer(routes) as server:
        if behaviour == "ps-hangs":
            routes[("GET", "/api/ps")] = server.hang(30)
        elif behaviour == "ps-garbage":
            routes[("GET", "/api/ps")] = lambda req: (200, "application/json", b"\x00\xff<html>not json")
        elif behaviour == "ps-wrong-shape":
            routes[("GET", "/api/ps")] = lambda req: js(200, {"models": "surprise"})
        else:
            routes[("POST", "/api/generate")] = server.hang(30)
        config = {"runtimes": [{"name": "ollama", "kind": "ollama", "url": server.url, "priority": "background"}]}
        root = fake_device.build(tmp_path / "root", config=config)
        executor = Executor(store, "fault-rt", root, key=KEY, consumer="test")
        executor.ctx.http_timeout_s = 1.0
        message = signing.build("fault-rt", "evict", {"runtime": "ollama", "model": "llama3.2:3b"})
        store.r.xadd(store.keys("fault-rt").actions, signing.sign(message, KEY))
        started = time.monotonic()
        (result,) = executor.poll()
        elapsed = time.monotonic() - started
    assert result["status"] == "failed", result
    assert result["request_id"] == message["id"]
    assert reason in result["reason"], result
    assert "Traceback" not in result["reason"]
    assert elapsed < 15, f"the action took {elapsed:.1f} s"
    # The failure is on the action-result stream for the web side, and the next action still runs.
    results = [json.loads(f["j"]) for _id, f in store.r.xrange(store.keys("fault-rt").action_results)]
    assert results[-1]["request_id"] == message["id"] and results[-1]["status"] == "failed"
