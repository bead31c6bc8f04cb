"""End to end on the device side: a real agent process (`python -m collectors agent --root TREE`)
consumes a signed action from Redis, changes the fake tree, and answers in action_results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from collectors.actions import signing
from tests import fake_device
from tests.fake_device import read

KEY = "e2e-agent-key"


def wait_results(store, device, count, timeout=45.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        entries = store.r.xrange(store.keys(device).action_results)
        if len(entries) >= count:
            return [json.loads(f["j"]) for _id, f in entries]
        time.sleep(0.2)
    raise AssertionError(f"no {count} results within {timeout} s")


def test_agent_process_executes_signed_action_and_rejects_forgery(store, redis_url, tmp_path):
    root = fake_device.build(tmp_path / "root")
    env = {**os.environ, "THOXDASH_REDIS_PREFIX": store.prefix, "THOXDASH_AGENT_KEY": KEY,
           "THOXDASH_AGENT_CONFIG": str(root / "etc/thoxdash/agent.json")}
    # queued before the agent starts: the consumer group starts at the stream's beginning
    good = signing.build("edge1", "thp", {"mode": "never"}, requested_by="admin")
    store.r.xadd(store.keys("edge1").actions, signing.sign(good, KEY))
    forged = signing.build("edge1", "set_governor", {"cpus": "0-7", "value": "powersave"})
    store.r.xadd(store.keys("edge1").actions, signing.sign(forged, "not-the-device-key"))
    agent = subprocess.Popen([sys.executable, "-m", "collectors", "agent", "--device", "edge1",
                              "--redis", redis_url, "--root", str(root), "--interval", "5",
                              "--spill", str(tmp_path / "spill")],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first, second = wait_results(store, "edge1", 2)
        assert first["request_id"] == good["id"] and first["status"] == "applied", first
        assert read(root, "sys/kernel/mm/transparent_hugepage/enabled") == "never"
        assert second["status"] == "rejected" and "bad signature" in second["reason"]
        assert read(root, "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") == "schedutil"
        # undo through the same live agent
        store.r.xadd(store.keys("edge1").actions,
                     signing.sign(signing.build("edge1", "undo", {"request_id": good["id"]}), KEY))
        third = wait_results(store, "edge1", 3)[2]
        assert third["status"] == "undone", third
        assert read(root, "sys/kernel/mm/transparent_hugepage/enabled") == "madvise"
    finally:
        agent.terminate()
        out, _ = agent.communicate(timeout=20)
    assert agent.returncode == 0, out[-2000:]
