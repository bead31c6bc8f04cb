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


# -- every key named in one place ---------------------------------------------------------------------

def test_keys_module_names_every_key(store):
    from collectors.keys import ACTION_GROUP, GlobalKeys, Keys

    k = Keys("p:", "dev1")
    assert (k.telemetry, k.rulememo, k.action_log, k.admission, k.rollup(60)) == (
        "p:dev:dev1:telemetry", "p:dev:dev1:rulememo", "p:dev:dev1:action_log", "p:dev:dev1:admission",
        "p:dev:dev1:rollup:60")
    assert GlobalKeys("p:").devices == "p:devices" and GlobalKeys("p:").lock("notify-sweep") == "p:lock:notify-sweep"
    with pytest.raises(ValueError, match="invalid lock name"):
        GlobalKeys("p:").lock("a b")
    assert ACTION_GROUP == "agent"


def test_lock_is_taken_once_until_it_expires(store):
    assert store.lock("sweep", 0.3) is True
    assert store.lock("sweep", 0.3) is False
    assert store.r.exists(store.global_keys.lock("sweep")) == 1


def test_rule_memos_round_trip_and_ignore_junk(store):
    store.memos.put_many({"a": {"x": 1}, "b": {"y": [2]}})
    store.r.set(store.keys("c").rulememo, "[1, 2]")  # not an object: treated as no memo
    store.r.set(store.keys("d").rulememo, "{not json")
    assert store.memos.get_many(["a", "b", "c", "d", "e"]) == {"a": {"x": 1}, "b": {"y": [2]}, "c": {}, "d": {},
                                                              "e": {}}
    assert 0 < store.r.ttl(store.keys("a").rulememo) <= 7 * 86_400


def test_latest_all_applies_the_device_id_filter(store):
    store.register_device("good", board={})
    store.publish("good", [{"ts": 1.0, "source": "s", "values": {"x": 1}}])
    store.r.hset(store.global_keys.devices, mapping={"a b": "{}", "../x": "[]"})
    assert list(store.latest_all()) == ["good"]
    assert list(store.fleet()) == ["good"]


# -- record shapes: refused at ingest (counted), skipped on read -----------------------------------------

BAD_RECORDS = [
    [1, 2],                                                        # not an object
    "text",
    {"ts": float("nan"), "source": "s", "values": {"x": 1}},       # non-finite ts
    {"ts": 1.0, "source": "s", "values": {"x": float("inf")}},     # non-finite value
    {"ts": 1.0, "source": "s", "values": {"x": "1"}},              # not a number
    {"ts": 1.0, "source": "s", "values": {"x": True}},
    {"ts": 1.0, "source": "s", "values": [1]},                     # body not an object
    {"ts": 1.0, "source": "s"},                                    # no body
    {"ts": 1.0, "values": {"x": 1}},                               # no source
    {"ts": 1.0, "source": "s", "event": {"kind": 3}},              # event kind not a string
    {"ts": 1.0, "source": "s", "state": {"x": float("nan")}},      # NaN nested: not JSON
    {"ts": 1.0, "source": "s", "values": {f"k{i}": 1.0 for i in range(100_000)}},  # over 1 MiB
]


def test_bad_records_are_refused_at_ingest_and_counted_per_device(store):
    good = {"ts": 2.0, "source": "s", "values": {"x": 5.0}}
    assert store.publish("dev", [*BAD_RECORDS, good]) == 1
    assert [r["values"] for r in store.read("dev")] == [{"x": 5.0}]
    latest = store.latest("dev")
    assert latest["values"] == {"x": 5.0, "ingest_rejected_total": float(len(BAD_RECORDS))}
    assert store.publish("other", [good]) == 1 and "ingest_rejected_total" not in store.latest("other")["values"]
    # a device cannot reset its own count
    store.publish("dev", [{"ts": 3.0, "source": "s", "values": {"ingest_rejected_total": 0.0}}])
    assert store.latest("dev")["values"]["ingest_rejected_total"] == float(len(BAD_RECORDS))


RAW_BAD_ENTRIES = [
    {"j": "{not json"},
    {"x": "no j field"},
    {"j": "[1, 2]"},
    {"j": '"a string"'},
    {"j": '{"ts": NaN, "source": "s", "values": {"x": 1}}'},
    {"j": '{"ts": 1.5, "source": "s", "values": {"x": Infinity}}'},
    {"j": '{"ts": 1.5, "source": "s", "state": {"x": NaN}}'},
    {"j": '{"ts": 1.5, "source": "s", "values": {"x": 1}, "event": {"kind": "k"}}'},  # two bodies
]


def test_readers_skip_bad_entries_written_around_the_store(store):
    store.publish("dev", [{"ts": 1.0, "source": "s", "values": {"x": 1.0}}])
    key = store.keys("dev").telemetry
    for fields in RAW_BAD_ENTRIES:
        store.r.xadd(key, fields, id="1001-*")
    store.publish("dev", [{"ts": 2.0, "source": "s", "values": {"x": 2.0}}])
    assert [r["values"]["x"] for r in store.read("dev")] == [1.0, 2.0]
    assert [r["values"]["x"] for r in store.tail("dev")] == [1.0, 2.0]
    assert [r["values"]["x"] for r in store.read_chunks("dev", "telemetry", 0, 10, chunk=3)] == [1.0, 2.0]
    with pytest.raises(ValueError):
        from collectors.store import decode_entry

        decode_entry({"j": "[1, 2]"})


def test_incremental_reads_advance_past_what_was_read_and_no_further(store):
    store.publish("dev", [{"ts": 1.0, "source": "s", "values": {"x": 1.0}}])
    store.r.xadd(store.keys("dev").telemetry, {"j": "{not json"}, id="1500-0")
    after: dict[str, str] = {}
    records, state = store.read_after("dev", ["telemetry", "events"], after, since=0.0)
    assert [r["ts"] for r in records] == [1.0] and state == {}
    assert after == {"telemetry": "1500-0"}  # past the bad entry it read; no cursor where nothing was read
    store.publish("dev", [{"ts": 2.0, "source": "s", "values": {"x": 2.0}},
                          {"ts": 2.0, "source": "event", "event": {"kind": "k"}}])
    records, _ = store.read_after("dev", ["telemetry", "events"], after, since=0.0)
    assert [(r["ts"], "event" in r) for r in records] == [(2.0, False), (2.0, True)]
    records, _ = store.read_after("dev", ["telemetry", "events"], after, since=0.0)
    assert records == []


def test_latest_never_returns_non_finite_numbers(store):
    store.publish("dev", [{"ts": 1.0, "source": "s", "values": {"x": 1.0}}])
    store.r.hset(store.keys("dev").latest, mapping={"y": "nan", "z": "inf", "w": "text"})
    store.r.hset(store.keys("dev").state, mapping={"s": "NaN", "t": '{"a": 1}'})
    latest = store.latest("dev")
    assert latest["values"] == {"x": 1.0}
    assert latest["state"] == {"s": "NaN", "t": {"a": 1}}
    import json

    json.dumps(latest, allow_nan=False)  # valid JSON
