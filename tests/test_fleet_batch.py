"""Batched rule evaluation (issue #8, fleet): evaluate_batch evaluates every device of a batch with
the per-batch work done once, is idempotent when re-run (acks_late redelivery), keeps one device's
failure to itself, and evaluate_all sends the known devices in batches that expire."""

from __future__ import annotations

import time

import pytest

from advisors import tasks
from advisors.alerting import evaluate_batch, evaluate_device
from advisors.models import Alert, DeviceSettings
from advisors.telemetry import store as web_store

pytestmark = pytest.mark.django_db

KEY = 'runtime_memory_bytes{runtime="ollama"}'


def breach(store, device: str, now: float, value: float = 6.0e9) -> None:
    store.register_device(device)
    store.publish(
        device, [{"ts": now - 2 + i, "source": "jtop", "values": {KEY: value}} for i in range(3)]
    )


def firing(device: str) -> list[str]:
    return sorted(
        Alert.objects.filter(device=device, state=Alert.FIRING).values_list("rule", flat=True)
    )


def test_batch_evaluates_every_device_of_the_batch(store):
    now = 1_800_000_000.0
    devices = [f"b-{i}" for i in range(5)]
    for device in devices:
        breach(store, device, now)
    calls = []
    batch = evaluate_batch(store, devices, now, on_transitions=calls.append)
    assert batch.failed == [] and sorted(batch.results) == devices
    for device in devices:
        assert [a.rule for a in batch.results[device]["fired"]] == ["runtime_memory_over_ceiling"]
        assert firing(device) == ["runtime_memory_over_ceiling"]
    assert (
        sorted(r["fired"][0].device for r in calls) == devices
    )  # one notification plan per device


def test_batch_rerun_is_idempotent(store):
    now = 1_800_000_000.0
    devices = ["i-0", "i-1", "i-2"]
    for device in devices:
        breach(store, device, now)
    calls = []
    evaluate_batch(store, devices, now, on_transitions=calls.append)
    # a redelivered task (worker killed after the commit, before the ack) runs the same cycle again
    again = evaluate_batch(store, devices, now, on_transitions=calls.append)
    assert all(not any(r.values()) for r in again.results.values())
    assert len(calls) == 3
    assert Alert.objects.filter(device__in=devices).count() == 3
    # ... and so does the single-device path over the same state
    assert evaluate_device(store, "i-0", now)["fired"] == []


def test_one_broken_device_does_not_stop_the_others(store):
    now = 1_800_000_000.0
    devices = ["x-0", "x-bad", "x-2"]
    for device in devices:
        breach(store, device, now)
    DeviceSettings.objects.create(device="x-bad", thresholds={"window_s": "not a number"})
    batch = evaluate_batch(store, devices, now)
    assert batch.failed == ["x-bad"]
    assert firing("x-0") == firing("x-2") == ["runtime_memory_over_ceiling"]
    assert firing("x-bad") == []


def test_transitions_and_their_notifications_commit_together(store):
    """A failure while planning a device's notifications rolls its new alert back too, so the next
    run fires (and notifies) it once, instead of leaving an alert nobody was told about."""
    now = 1_800_000_000.0
    devices = ["n-0", "n-1"]
    for device in devices:
        breach(store, device, now)

    def flaky(result):
        if result["fired"][0].device == "n-1":
            raise RuntimeError("broker down")

    first = evaluate_batch(store, devices, now, on_transitions=flaky)
    assert first.failed == ["n-1"] and firing("n-0") and firing("n-1") == []
    calls = []
    second = evaluate_batch(store, devices, now + 1, on_transitions=calls.append)
    assert [r["fired"][0].device for r in calls] == ["n-1"]
    assert second.failed == [] and firing("n-1") == ["runtime_memory_over_ceiling"]


def test_changed_summaries_are_written_for_the_whole_batch(store):
    now = 1_800_000_000.0
    devices = ["s-0", "s-1"]
    for device in devices:
        DeviceSettings.objects.create(device=device, thresholds={"for_s": {"memory_pressure_high": 0}})
        store.publish(
            device, [{"ts": now, "source": "jtop", "values": {"memory_pressure_some_ratio": 0.5}}]
        )
    evaluate_batch(store, devices, now)
    before = dict(Alert.objects.filter(device__in=devices).values_list("device", "summary"))
    for device in devices:
        store.publish(
            device,
            [{"ts": now + 1, "source": "jtop", "values": {"memory_pressure_some_ratio": 0.6}}],
        )
    evaluate_batch(store, devices, now + 1)
    after = dict(Alert.objects.filter(device__in=devices).values_list("device", "summary"))
    assert all(after[d] != before[d] and "60%" in after[d] for d in devices)
    assert Alert.objects.filter(device__in=devices).count() == 2


def test_task_evaluates_the_batch_and_reports_counts():
    store = web_store()
    now = time.time()
    devices = ["t-batch-0", "t-batch-1"]
    for device in devices:
        breach(store, device, now)
    result = tasks.evaluate_batch(devices, now)
    assert result == {"devices": 2, "failed": 0, "fired": 2, "resolved": 0, "escalated": 0}
    assert tasks.evaluate_batch(devices, now)["fired"] == 0


def test_evaluate_all_sends_batches_with_an_expiry(settings, monkeypatch):
    store = web_store()
    mine = [f"t-all-{i}" for i in range(7)]
    for device in mine:
        store.register_device(device)
    settings.RULES_BATCH = 3
    settings.RULES_EXPIRES_S = 4.0
    sent = []
    monkeypatch.setattr(
        tasks.evaluate_batch, "apply_async", lambda args, **kw: sent.append((args, kw))
    )
    count = tasks.evaluate_all()
    assert count == len(store.devices()) >= 7
    assert all(len(args[0]) <= 3 and kw["expires"] == 4.0 for args, kw in sent)
    covered = [d for args, _ in sent for d in args[0]]
    assert sorted(covered) == sorted(store.devices()) and set(mine) <= set(covered)


def test_chunks():
    assert tasks.chunks(list("abcdefg"), 3) == [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    assert tasks.chunks([], 3) == [] and tasks.chunks(["a"], 0) == [["a"]]


def test_a_silent_device_fires_device_down_and_its_other_alerts_go_stale(store, admin_client):
    """Through the production path (evaluate_batch): silence past THOXDASH_STALE_AFTER_S fires one
    critical device_down; the device's other alert neither resolves nor changes while it is silent,
    even when its data leaves the window, and shows as stale in the API; both end when data
    returns."""
    now = 1_800_000_000.0
    device = "quiet-1"
    breach(store, device, now)
    evaluate_batch(store, [device], now)
    assert firing(device) == ["runtime_memory_over_ceiling"]
    calls = []
    evaluate_batch(store, [device], now + 10, on_transitions=calls.append)
    assert firing(device) == ["runtime_memory_over_ceiling"] and calls == []  # 10 s: not yet down
    evaluate_batch(store, [device], now + 16, on_transitions=calls.append)
    assert firing(device) == ["device_down", "runtime_memory_over_ceiling"]
    assert [(a.rule, a.severity, a.labels) for a in calls[0]["fired"]] == [("device_down", "critical", {})]
    evaluate_batch(store, [device], now + 400)  # the breach has left the 300 s window: still frozen
    assert firing(device) == ["device_down", "runtime_memory_over_ceiling"]
    body = admin_client.get("/api/alerts", {"device": device}).json()
    assert {a["rule"]: a["stale"] for a in body} == {"device_down": False, "runtime_memory_over_ceiling": True}
    page = admin_client.get("/alerts/", {"device": device}).content.decode()
    assert page.count("stale (device down)") == 1
    store.publish(device, [{"ts": now + 401, "source": "jtop", "values": {KEY: 2.0e9}}])
    back = evaluate_batch(store, [device], now + 401).results[device]
    assert sorted(a.rule for a in back["resolved"]) == ["device_down", "runtime_memory_over_ceiling"]
    assert firing(device) == []


def test_a_failing_agent_source_fires_after_a_minute(store):
    now = 1_800_000_000.0
    device = "src-1"
    key = 'agent_source_up{source="jtop"}'
    store.register_device(device)
    store.publish(device, [{"ts": now + i, "source": "agent", "values": {key: 0.0 if i >= 10 else 1.0}}
                           for i in range(80)])
    evaluate_batch(store, [device], now + 60)
    assert firing(device) == []
    fired = evaluate_batch(store, [device], now + 79).results[device]["fired"]
    assert [(a.rule, a.labels) for a in fired] == [("agent_source_down", {"source": "jtop"})]
