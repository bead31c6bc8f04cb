from __future__ import annotations

import subprocess
import sys

import pytest

from collectors.store import MAXLEN, StoreUnavailable, TelemetryStore, connect, ping


def test_publish_read_latest(store):
    store.register_device("dev1", board={"model": "Orin"})
    store.publish("dev1", [
        {"ts": 100.0, "source": "host", "values": {"ram_used_bytes": 1.0e9}},
        {"ts": 100.0, "source": "tuning", "state": {"thp": "always"}},
        {"ts": 101.0, "source": "host", "values": {"ram_used_bytes": 2.0e9, "gpu_load_ratio": 0.5}},
        {"ts": 101.5, "source": "request", "request": {"runtime": "ollama", "total_s": 1.0}},
        {"ts": 102.0, "source": "event", "event": {"kind": "oom_kill"}},
    ])
    latest = store.latest("dev1")
    assert latest["values"] == {"ram_used_bytes": 2.0e9, "gpu_load_ratio": 0.5}
    assert latest["state"] == {"thp": "always"} and latest["ts"] == 101.0
    assert [r["ts"] for r in store.read("dev1", "telemetry", since=100.5)] == [101.0]
    assert store.read("dev1", "requests")[0]["request"]["runtime"] == "ollama"
    assert store.read("dev1", "events")[0]["event"]["kind"] == "oom_kill"
    assert store.devices()["dev1"]["board"] == {"model": "Orin"}
    assert store.devices()["dev1"]["last_seen"] == 101.0


def test_out_of_order_ids_are_kept(store):
    store.publish("d", [{"ts": 200.0, "source": "a", "values": {"x": 1}}])
    store.publish("d", [{"ts": 150.0, "source": "b", "values": {"x": 2}}])  # clock stepped back
    assert sorted(r["ts"] for r in store.read("d")) == [150.0, 200.0]


def test_streams_are_capped(store, monkeypatch):
    monkeypatch.setitem(MAXLEN, "telemetry", 100)
    store.publish("d", [{"ts": 1000.0 + i, "source": "a", "values": {"x": i}} for i in range(2000)])
    assert store.r.xlen(store.keys("d").telemetry) < 400  # MAXLEN ~ trims by whole macro nodes


def test_device_ids_are_checked(store):
    with pytest.raises(ValueError, match="invalid device id"):
        store.keys("../etc")


def test_unreachable_redis_is_one_clear_message():
    with pytest.raises(StoreUnavailable, match=r"Redis at redis://127.0.0.1:1/0 is unreachable"):
        ping(connect("redis://127.0.0.1:1/0"))


def test_cli_unreachable_redis_prints_one_line(tmp_path):
    rec = tmp_path / "r.jsonl"
    rec.write_text('{"ts": 1, "source": "a", "values": {"x": 1}}\n')
    out = subprocess.run([sys.executable, "-m", "collectors", "replay", str(rec), "--device", "d",
                          "--redis", "redis://127.0.0.1:1/0"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error: Redis at redis://127.0.0.1:1/0 is unreachable")
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_delete_prefix_touches_only_its_keys(redis_url):
    mine = TelemetryStore(connect(redis_url), prefix="thoxtest:mine:")
    other = TelemetryStore(connect(redis_url), prefix="thoxtest:other:")
    mine.publish("a", [{"ts": 1.0, "source": "s", "values": {"x": 1}}])
    other.publish("a", [{"ts": 1.0, "source": "s", "values": {"x": 1}}])
    mine.delete_prefix()
    assert mine.read("a") == [] and len(other.read("a")) == 1
    other.delete_prefix()
