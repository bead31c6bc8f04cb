"""End to end with the real parts: Redis, a Celery worker + beat, and loopback receivers.

A ceiling breach written to Redis reaches a signed Alertmanager webhook and a Slack one while a
third receiver hangs past the timeout and a fourth is down: the slow and dead ones delay only
themselves. The resolution follows the same way.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from collectors.store import TelemetryStore, connect
from tests.receiver import Answer, Receiver, dead_url

KEY = 'runtime_memory_bytes{runtime="ollama"}'


@pytest.fixture(scope="module")
def live(redis_url, tmp_path_factory):
    from tests.conftest import RUN_PREFIX
    from tests.stack import Stack

    stack = Stack(tmp_path_factory.mktemp("alerts-stack"), redis_url, prefix=f"{RUN_PREFIX}alerts:")
    stack.env["THOXDASH_WEBHOOK_TIMEOUT_S"] = "3"
    stack.start()
    stack.spawn("beat", str(Path(sys.executable).parent / "celery"), "-A", "thoxdash", "beat", "-l", "warning",
                "-s", str(stack.tmp / "beat-schedule"))
    yield stack
    stack.stop()
    TelemetryStore(connect(redis_url), prefix=stack.prefix).delete_prefix()


def publish(stack, values: dict[str, float]) -> None:
    store = TelemetryStore(connect(stack.env["REDIS_URL"]), prefix=stack.prefix)
    store.register_device("e2e-orin", board="orin")
    store.publish("e2e-orin", [{"ts": time.time(), "source": "jtop", "values": values}])


def test_breach_reaches_webhooks_despite_slow_and_dead_receivers(live):
    with Receiver(secret="k1") as am, Receiver() as slack, Receiver(default=Answer(200, delay_s=8)) as slow:
        live.manage("webhook", "add", am.url, "--format", "alertmanager", "--secret", "k1")
        live.manage("webhook", "add", slow.url, "--format", "json")
        live.manage("webhook", "add", dead_url(), "--format", "json")
        live.manage("webhook", "add", slack.url, "--format", "slack", "--min-severity", "critical")
        publish(live, {KEY: 4.0e9})
        time.sleep(2)
        t0 = time.time()
        publish(live, {KEY: 5.8e9})
        try:
            got = am.wait_for(1, timeout_s=30)[0]
        except TimeoutError:
            pytest.fail("no webhook; worker log:\n" + live.log("worker")[-3000:] + live.log("beat")[-1000:])
        assert got.signature_ok
        body = got.json
        assert body["status"] == "firing" and body["alerts"][0]["labels"]["alertname"] == "runtime_memory_over_ceiling"
        assert body["alerts"][0]["labels"]["device"] == "e2e-orin"
        assert got.at - t0 < 20
        assert "blocks" in slack.wait_for(1, timeout_s=30)[0].json
        slow.wait_for(1, timeout_s=30)  # the slow one is being tried, and hangs
        publish(live, {KEY: 2.0e9})
        resolved = am.wait_for(2, timeout_s=30)[1].json
        assert resolved["status"] == "resolved"
    out = live.manage("webhook", "list")
    assert "retrying" in out or "failed" in out  # the dead receiver's delivery records its failure
