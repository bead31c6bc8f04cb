"""The agent's executor over real Redis: signatures, expiry, replay, idempotency, batch, undo,
policy. Every request acts on a fake tree (--root), never on this machine's /sys."""

from __future__ import annotations

import json
import time

import pytest

from collectors.actions import signing
from collectors.actions.executor import Executor
from tests import fake_device
from tests.fake_device import read

KEY = "test-agent-key"
GOV4 = "sys/devices/system/cpu/cpu4/cpufreq/scaling_governor"


@pytest.fixture
def tree(tmp_path):
    return fake_device.build(tmp_path / "root")


@pytest.fixture
def executor(store, tree):
    return Executor(store, "dev1", tree, key=KEY, consumer="test")


def send(store, fields, device="dev1"):
    store.r.xadd(store.keys(device).actions, fields)


def request(action, params, key=KEY, **kw):
    message = signing.build("dev1", action, params, requested_by="alice", **kw)
    return message, signing.sign(message, key)


def results(store, device="dev1"):
    return [json.loads(f["j"]) for _id, f in store.r.xrange(store.keys(device).action_results)]


def test_signed_request_is_applied_verified_and_reported(store, executor, tree):
    message, fields = request("set_governor", {"cpus": "4-7", "value": "performance"})
    send(store, fields)
    (result,) = executor.poll()
    assert result["status"] == "applied", result
    assert result["request_id"] == message["id"] and result["requested_by"] == "alice"
    assert result["preview"][0] == {"target": "cpu4", "old": "schedutil", "new": "performance"}
    assert read(tree, GOV4) == "performance"
    assert results(store) == [result]
    event = store.read("dev1", "events")[-1]["event"]
    assert event["kind"] == "action_applied" and event["request_id"] == message["id"]
    # acknowledged: nothing left pending for the group
    assert store.r.xpending(store.keys("dev1").actions, "agent")["pending"] == 0
    assert executor.poll() == []


@pytest.mark.parametrize("mangle, reason", [
    (lambda f: {"j": f["j"]}, "unsigned request"),
    (lambda f: {"j": f["j"].replace("performance", "powersave"), "sig": f["sig"]}, "bad signature"),
    (lambda f: {"j": f["j"], "sig": signing.signature(f["j"], "another-key")}, "bad signature"),
    (lambda f: {"j": f["j"], "sig": ""}, "unsigned request"),
    (lambda f: {"sig": f["sig"]}, "no request body"),
])
def test_unsigned_or_tampered_requests_are_rejected(store, executor, tree, mangle, reason):
    _message, fields = request("set_governor", {"cpus": "4", "value": "performance"})
    send(store, mangle(fields))
    (result,) = executor.poll()
    assert result["status"] == "rejected" and reason in result["reason"]
    assert read(tree, GOV4) == "schedutil"


def test_expired_future_and_misaddressed_requests_are_rejected(store, executor, tree):
    _m, old = request("thp", {"mode": "never"}, now=time.time() - 600, ttl_s=60)
    _m, future = request("thp", {"mode": "never"}, now=time.time() + 3600)
    other = signing.build("dev2", "thp", {"mode": "never"})
    for fields in (old, future, signing.sign(other, KEY)):
        send(store, fields)
    reasons = [r["reason"] for r in executor.poll()]
    assert reasons[0].startswith("expired") and "future" in reasons[1] and "not 'dev1'" in reasons[2]
    assert read(tree, "sys/kernel/mm/transparent_hugepage/enabled") == "always [madvise] never"


def test_agent_without_key_refuses_everything(store, tree):
    executor = Executor(store, "dev1", tree, key="", consumer="nokey")
    send(store, request("thp", {"mode": "never"})[1])
    (result,) = executor.poll()
    assert result["status"] == "rejected" and "THOXDASH_AGENT_KEY" in result["reason"]


def test_replayed_request_is_not_applied_twice(store, executor, tree):
    message, fields = request("set_governor", {"cpus": "4", "value": "performance"})
    send(store, fields)
    assert executor.poll()[0]["status"] == "applied"
    (tree / GOV4).write_text("ondemand\n")  # someone changes it by hand afterwards
    send(store, fields)  # the same signed message again (a retry, or an attacker's replay)
    (again,) = executor.poll()
    assert again["duplicate"] is True and again["status"] == "applied"
    assert "not applied again" in again["note"]
    assert read(tree, GOV4) == "ondemand"
    assert len(store.read("dev1", "events")) == 1


def test_unknown_action_and_hostile_parameters(store, executor, tree):
    hostile = [("shell", {"cmd": "reboot"}),
               ("irq_affinity", {"irq": -3, "cpus": "0-3"}),
               ("irq_affinity", {"irq": 24, "cpus": "0-3; reboot"}),
               ("thp", {"mode": "never", "path": "/etc/shadow"}),
               ("set_governor", {"cpus": "../../../etc", "value": "performance"}),
               ("service", {"op": "stop", "name": "sshd.service"}),
               ("evict", {"runtime": "ollama", "model": "../../admin"})]
    for action, params in hostile:
        send(store, request(action, params)[1])
    out = executor.poll(count=20)
    assert [r["status"] for r in out] == ["rejected"] * len(hostile)
    assert "not in the allow-list" in out[0]["reason"]
    assert "between 0 and 65535" in out[1]["reason"]
    assert "CPU list" in out[2]["reason"]
    assert "unknown parameter(s): path" in out[3]["reason"]
    assert "CPU list" in out[4]["reason"]
    assert "not in this device's allow-list" in out[5]["reason"]
    assert "model name" in out[6]["reason"]
    assert read(tree, "proc/irq/24/smp_affinity_list") == "0-7"


def test_dry_run_previews_without_changing(store, executor, tree):
    send(store, request("thp", {"mode": "never"}, dry_run=True)[1])
    (result,) = executor.poll()
    assert result["status"] == "preview"
    assert result["preview"] == [{"target": "transparent_hugepage", "old": "madvise", "new": "never"}]
    assert read(tree, "sys/kernel/mm/transparent_hugepage/enabled") == "always [madvise] never"


SAFE_SET = [{"action": "set_governor", "params": {"cpus": "0-7", "value": "performance"}},
            {"action": "thp", "params": {"mode": "never"}},
            {"action": "irq_affinity", "params": {"irq": "all", "cpus": "0-3"}},
            {"action": "gpu_runtime_pm", "params": {"value": "on"}},
            {"action": "swapoff", "params": {}},
            {"action": "jetson_clocks", "params": {"on": True}}]


def test_batch_applies_each_step_and_one_undo_restores_all(store, executor, tree):
    before = {rel: read(tree, rel) for rel in (GOV4, "proc/irq/57/smp_affinity_list", "proc/swaps",
                                               "sys/devices/platform/gpu.0/power/control",
                                               "sys/devices/system/cpu/cpu0/cpufreq/scaling_min_freq")}
    batch, fields = request("batch", {"steps": SAFE_SET})
    send(store, fields)
    (result,) = executor.poll()
    assert result["status"] == "applied", result
    assert [s["status"] for s in result["steps"]] == ["applied"] * len(SAFE_SET)
    assert read(tree, GOV4) == "performance" and read(tree, "proc/irq/57/smp_affinity_list") == "0-3"
    assert "/dev/zram0" not in read(tree, "proc/swaps")
    undo_msg, undo_fields = request("undo", {"request_id": batch["id"]})
    send(store, undo_fields)
    (undone,) = executor.poll()
    assert undone["status"] == "undone", undone
    assert len(undone["steps"]) == len(SAFE_SET)
    after = {rel: read(tree, rel) for rel in before}
    assert after["proc/swaps"].split() == before["proc/swaps"].split()[:5] + ["/dev/zram0", "partition",
                                                                             "4194300", "0", "-2"]
    del after["proc/swaps"], before["proc/swaps"]
    assert after == before
    assert read(tree, "sys/kernel/mm/transparent_hugepage/enabled") == "madvise"
    # a second undo is refused
    send(store, request("undo", {"request_id": batch["id"]})[1])
    (second,) = executor.poll()
    assert second["status"] == "rejected" and undo_msg["id"] in second["reason"]


def test_batch_with_an_unsafe_or_invalid_step_is_refused_whole(store, executor, tree):
    send(store, request("batch", {"steps": SAFE_SET[:1] + [{"action": "restart_container",
                                                             "params": {"name": "triton"}}]})[1])
    send(store, request("batch", {"steps": SAFE_SET[:1] + [{"action": "thp", "params": {"mode": "x"}}]})[1])
    first, second = executor.poll()
    assert first["status"] == "rejected" and "not a safe tuning action" in first["reason"]
    assert second["status"] == "rejected" and "step 2 (thp)" in second["reason"]
    assert read(tree, GOV4) == "schedutil"


def test_policy_critical_runtime_never_throttled_automatically(store, executor):
    send(store, request("throttle", {"runtime": "triton", "max_concurrency": 1}, origin="auto")[1])
    send(store, request("throttle", {"runtime": "ollama", "max_concurrency": 1, "max_queue": 4},
                        origin="auto")[1])
    refused, applied = executor.poll()
    assert refused["status"] == "rejected" and "critical" in refused["reason"]
    assert applied["status"] == "applied"
    assert store.admission("dev1") == {"ollama": {"max_concurrency": 1, "max_queue": 4}}
    send(store, request("undo", {"request_id": applied["request_id"]})[1])
    assert executor.poll()[0]["status"] == "undone"
    assert store.admission("dev1") == {}


def test_undo_of_unknown_or_failed_request_is_refused(store, executor, tree):
    send(store, request("undo", {"request_id": "nosuchrequest"})[1])
    (tree / "etc/fake-jetson_clocks-broken").write_text("")
    rb, fields = request("jetson_clocks", {"on": True})
    send(store, fields)
    send(store, request("undo", {"request_id": rb["id"]})[1])
    unknown, rolled, refused = executor.poll()
    assert unknown["status"] == "rejected" and "unknown request" in unknown["reason"]
    assert rolled["status"] == "rolled_back"
    assert refused["status"] == "rejected" and "rolled_back" in refused["reason"]


def test_tampered_undo_state_is_not_written_back(store, executor, tree):
    message, fields = request("thp", {"mode": "never"})
    send(store, fields)
    executor.poll()
    key = store.keys("dev1").stream("action_log")
    saved = json.loads(store.r.hget(key, message["id"]))
    saved["snapshot"] = {"transparent_hugepage": "always; reboot"}
    store.r.hset(key, message["id"], json.dumps(saved))
    send(store, request("undo", {"request_id": message["id"]})[1])
    (result,) = executor.poll()
    assert result["status"] == "failed" and "must be one of" in result["reason"]
    assert read(tree, "sys/kernel/mm/transparent_hugepage/enabled") == "never"


def test_action_log_is_trimmed_oldest_first_but_keeps_recent_records(store, executor, monkeypatch):
    from collectors.actions import executor as module

    monkeypatch.setattr(module, "LOG_MAX", 3)
    key = store.keys("dev1").stream("action_log")
    now = time.time()
    for i in range(4):
        store.r.hset(key, f"old-request-{i}", json.dumps({"status": "applied", "ts": now - 200_000 + i}))
    for i in range(2):
        store.r.hset(key, f"new-request-{i}", json.dumps({"status": "applied", "ts": now - 10}))
    assert executor.trim_log(now) == 3
    assert sorted(store.r.hkeys(key)) == ["new-request-0", "new-request-1", "old-request-3"]


def test_allow_list_changes_are_picked_up_without_restart(store, tree):
    import os

    executor = Executor(store, "dev1", tree, key=KEY, consumer="reload")  # reads the tree's agent.json
    send(store, request("service", {"op": "stop", "name": "sshd.service"})[1])
    assert "not in this device's allow-list" in executor.poll()[0]["reason"]
    config = json.loads((tree / "etc/thoxdash/agent.json").read_text())
    config["services"].append("sshd.service")
    path = tree / "etc/thoxdash/agent.json"
    path.write_text(json.dumps(config))
    os.utime(path, (time.time() + 5, time.time() + 5))
    (tree / "run/fake-units/sshd.service").write_text("active\n")
    send(store, request("service", {"op": "stop", "name": "sshd.service"})[1])
    assert executor.poll()[0]["status"] == "applied"
    assert read(tree, "run/fake-units/sshd.service") == "inactive"
