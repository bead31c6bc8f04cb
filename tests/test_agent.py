from __future__ import annotations

import json
import subprocess
import sys
import time

import redis

from collectors.agent import Agent
from collectors.buffer import OutboxBuffer
from collectors.sources.base import Source
from collectors.sources.host import HostSource
from collectors.store import TelemetryStore, connect


def test_agent_once_prints_host_sample_as_json():
    out = subprocess.run([sys.executable, "-m", "collectors", "agent", "--device", "t1", "--once"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    host = next(r for r in records if r["source"] == "host")
    values = host["values"]
    assert values["ram_total_bytes"] > 0
    assert 0 <= values['cpu_load_ratio{cpu="0"}'] <= 1
    assert values["ram_used_bytes"] + values["ram_available_bytes"] == values["ram_total_bytes"]


def test_agent_publishes_to_stream_and_latest(store):
    agent = Agent("host1", [HostSource(interval=0.2)], store, board={"model": "x86_64 host"})
    agent.tick(time.time())
    time.sleep(0.3)
    agent.tick(time.time())
    agent.close()
    latest = store.latest("host1")
    assert latest["values"]["ram_total_bytes"] > 0
    assert 'agent_source_up{source="host"}' in latest["values"]
    assert len(store.read("host1")) >= 2
    assert "host1" in store.devices()


class Boom(Source):
    def collect(self, now):
        raise OSError("sensor fell off")


class Hang(Source):
    def collect(self, now):
        time.sleep(5)
        return []


def test_failing_and_hung_sources_do_not_stop_the_agent(store):
    agent = Agent("d", [Boom(name="boom"), Hang(name="hang"), HostSource(interval=0.1)], store, source_timeout=0.5)
    start = time.monotonic()
    for _ in range(4):
        agent.tick()
        time.sleep(0.2)
    assert time.monotonic() - start < 4
    assert agent.status["boom"].ok is False and "sensor fell off" in agent.status["boom"].message
    assert agent.status["hang"].ok is False and "hung" in agent.status["hang"].message
    assert store.latest("d")["values"]['agent_source_up{source="host"}'] == 1.0
    agent.close()


def test_redis_outage_buffers_then_flushes_in_order(tmp_path, store):
    dead = TelemetryStore(connect("redis://127.0.0.1:1/0"), prefix=store.prefix)
    buffer = OutboxBuffer(memory_records=5, spill_path=tmp_path / "spill.jsonl", spill_records=10)
    agent = Agent("d", [], dead, buffer=buffer)
    records = [{"ts": 100.0 + i, "source": "s", "values": {"x": float(i)}} for i in range(20)]
    for record in records:
        assert agent.publish([record]) is False
    assert len(buffer) == 15 and buffer.dropped == 5
    agent.store = store
    assert agent.publish([]) is True
    got = [r["values"]["x"] for r in store.read("d")]
    # kept: the start of the outage (spilled) and the newest records (memory); order preserved
    assert got == [float(i) for i in [*range(0, 10), *range(15, 20)]]
    assert not (tmp_path / "spill.jsonl").exists()


def test_unreachable_redis_in_agent_does_not_raise():
    agent = Agent("d", [], TelemetryStore(connect("redis://127.0.0.1:1/0")))
    assert agent.publish([{"ts": 1.0, "source": "s", "values": {"x": 1.0}}]) is False
    assert isinstance(redis.ConnectionError("x"), Exception)
