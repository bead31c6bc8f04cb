"""The whole path with real processes: daphne (web) -> Redis -> `python -m collectors agent`
(executing on a fake tree) -> Redis -> web. A staff token with the `act` scope requests an action
over HTTP; the row it creates reads `applied` once the real agent has answered."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx

from tests import fake_device
from tests.fake_device import read


def _wait(fn, timeout=45.0, step=0.3):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out")


def test_http_request_is_executed_by_a_real_agent(stack, tmp_path):
    token = stack.manage("apitoken", "admin", "--scopes", "read,act").strip()
    auth = {"Authorization": f"Bearer {token}"}
    root = fake_device.build(tmp_path / "root")
    agent = subprocess.Popen([sys.executable, "-m", "collectors", "agent", "--device", "orin-e2e",
                              "--root", str(root), "--interval", "5", "--spill", str(tmp_path / "spill")],
                             env=stack.agent_env("orin-e2e",
                                                 THOXDASH_AGENT_CONFIG=str(root / "etc/thoxdash/agent.json")),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait(lambda: any(d["id"] == "orin-e2e" for d in httpx.get(stack.url + "/api/devices", headers=auth).json()))
        r = httpx.post(stack.url + "/api/devices/orin-e2e/actions", headers=auth,
                       json={"action": "irq_affinity", "params": {"irq": [24, 57], "cpus": "0-3"}})
        assert r.status_code == 202, r.text
        rid = r.json()["id"]
        row = _wait(lambda: (x := httpx.get(f"{stack.url}/api/actions/{rid}", headers=auth).json())["state"]
                    != "pending" and x)
        assert row["state"] == "applied", row
        assert row["requested_by"] == "admin"
        assert {c["target"] for c in row["preview"]} == {"irq24", "irq57"}
        assert read(root, "proc/irq/57/smp_affinity_list") == "0-3"
        # forbidden without the act scope, even for the same staff user
        read_only = stack.manage("apitoken", "admin", "--scopes", "read").strip()
        denied = httpx.post(f"{stack.url}/api/actions/{rid}/undo", headers={"Authorization": f"Bearer {read_only}"})
        assert denied.status_code == 401
        u = httpx.post(f"{stack.url}/api/actions/{rid}/undo", headers=auth)
        assert u.status_code == 202, u.text
        _wait(lambda: httpx.get(f"{stack.url}/api/actions/{u.json()['id']}", headers=auth).json()["state"] == "undone")
        assert read(root, "proc/irq/57/smp_affinity_list") == "0-7"
    finally:
        agent.terminate()
        out, _ = agent.communicate(timeout=20)
    assert agent.returncode == 0, out[-2000:]
