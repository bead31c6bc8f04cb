"""Time-based retention (issue #8, fleet): raw telemetry and request streams are trimmed by age at
each rollup pass, rollups by their own retention per step, never past what has been rolled up; the
long dashboard ranges still come from the rollups."""

from __future__ import annotations

import pytest

from thoxdash.payload import range_payload
from thoxdash.rollup import rollup_device, trim_device

NOW = 1_800_000_000.0


def fill(store, device: str, seconds: int, every: int = 5, end: float = NOW) -> None:
    """`seconds` of telemetry (one record every `every` s), a request each minute, an event at the start."""
    start = end - seconds
    records = [
        {
            "ts": start + i,
            "source": "jtop",
            "values": {"gpu_load_ratio": 0.5, "ram_used_bytes": 1e9 + i},
        }
        for i in range(0, seconds, every)
    ]
    records += [
        {
            "ts": start + i + 0.5,
            "source": "request",
            "request": {"runtime": "ollama", "model": "m", "status": 200, "total_s": 1.0},
        }
        for i in range(0, seconds, 60)
    ]
    records.append(
        {
            "ts": start + 1.0,
            "source": "event",
            "event": {"kind": "model_loaded", "runtime": "ollama"},
        }
    )
    store.register_device(device)
    store.publish(device, sorted(records, key=lambda r: r["ts"]))


def oldest(store, device: str, stream: str) -> float:
    return store.read(device, stream, count=1)[0]["ts"]


def test_trim_before_drops_old_entries_and_keeps_recent(store):
    fill(store, "d", 7200)
    removed = store.trim_before("d", "telemetry", NOW - 3600)
    assert removed == 720
    kept = store.read("d", "telemetry")
    assert kept[0]["ts"] >= NOW - 3600 and kept[-1]["ts"] == NOW - 5
    assert len(kept) == 720


def test_trim_device_applies_the_raw_retention_after_the_rollup(store):
    fill(store, "d", 3 * 3600)
    rollup_device(store, "d", now=NOW, config={})
    removed = trim_device(store, "d", now=NOW, raw_retention_s=3600)
    assert removed["telemetry"] > 0 and removed["requests"] > 0
    assert NOW - 3600 <= oldest(store, "d", "telemetry") < NOW - 3590
    assert oldest(store, "d", "requests") >= NOW - 3600
    assert len(store.read("d", "events")) == 1  # events are kept by count only
    # rollups keep what was trimmed from the raw stream (10 s retention: a day by default)
    assert store.read_rollups("d", 10, count=1)[0]["ts"] <= NOW - 3 * 3600 + 10


def test_raw_data_not_yet_rolled_up_is_kept(store):
    fill(store, "d", 3 * 3600)
    rollup_device(store, "d", now=NOW - 2 * 3600, config={})  # the rollups stalled two hours ago
    trim_device(store, "d", now=NOW, raw_retention_s=1800)
    last_bucket = store.last_rollup_ts("d", 10)
    assert oldest(store, "d", "telemetry") <= last_bucket + 10 < NOW - 1800


def test_rollup_retention_per_step_keeps_what_the_next_step_needs(store):
    fill(store, "d", 4 * 3600, every=10)
    rollup_device(store, "d", now=NOW, config={})
    trim_device(
        store, "d", now=NOW, raw_retention_s=4 * 3600, rollup_retention_s={10: 1800, 60: 7200}
    )
    assert store.read_rollups("d", 10, count=1)[0]["ts"] >= NOW - 1800
    assert store.read_rollups("d", 60, count=1)[0]["ts"] >= NOW - 7200
    assert store.read_rollups("d", 600, count=1)[0]["ts"] <= NOW - 4 * 3600 + 600  # 30 d by default
    # a 10 s step whose 60 s rollup is behind keeps the 10 s buckets that rollup has still to read
    store.delete_prefix()
    fill(store, "d", 4 * 3600, every=10)
    rollup_device(store, "d", now=NOW, config={})
    store.r.delete(store.keys("d").rollup(60))  # pretend the 60 s rollup ended 2 h ago:
    store.write_rollups(
        "d", 60, [{"ts": NOW - 7200, "step": 60, "values": {"gpu_load_ratio": 0.5}}]
    )
    trim_device(store, "d", now=NOW, raw_retention_s=4 * 3600, rollup_retention_s={10: 1800})
    assert store.read_rollups("d", 10, count=1)[0]["ts"] <= NOW - 7200 + 60


@pytest.mark.parametrize("range_s,step", [(86_400, 60), (3600, 10)])
def test_long_ranges_come_from_rollups_when_raw_is_trimmed(store, range_s, step):
    fill(store, "d", 26 * 3600, every=30)
    rollup_device(store, "d", now=NOW, config={})
    trim_device(store, "d", now=NOW, raw_retention_s=1800)
    assert oldest(store, "d", "telemetry") >= NOW - 1800
    payload = range_payload(store, "d", range_s, 300, {}, now=NOW)
    assert payload["source"] == f"rollup:{step}"
    xs = (
        payload["series"]["gpu_load_ratio"]["x"]
        if isinstance(payload["series"]["gpu_load_ratio"], dict)
        else payload["series"]["gpu_load_ratio"][0]
    )
    assert min(xs) <= NOW - range_s + 2 * step  # the chart reaches back past the raw retention


@pytest.mark.django_db
def test_rollup_task_trims_by_the_settings(settings):
    import time

    from advisors.telemetry import store as web_store
    from thoxdash.tasks import rollup_all

    store = web_store()
    now = time.time()
    fill(store, "ret-task", 3 * 3600, end=now)
    settings.RAW_RETENTION_S = 3600.0
    assert rollup_all() >= 1
    assert now - 3600 - 1 <= oldest(store, "ret-task", "telemetry") <= now - 3590
    assert store.read_rollups("ret-task", 10, count=1)[0]["ts"] <= now - 3 * 3600 + 10
