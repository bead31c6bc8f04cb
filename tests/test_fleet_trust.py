"""Fleet trust against a real Redis with ACLs: a device's own Redis user writes only its own keys
(never another device's or the server-owned registry), junk in the registry is skipped and reported,
a device's action key signs nothing another device accepts, and a replayed request is refused after
its log entry is deleted (the agent keeps the ids it has seen)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from collectors import registry
from collectors.actions import signing
from collectors.actions.executor import Executor
from collectors.store import TelemetryStore
from tests import fake_device
from tests.faults import wait_for
from tests.redis_server import private_redis
from tests.stack import ROOT

MASTER = "fleet-master-key-for-tests-0123456789"
DEPLOY = ROOT / "deploy"


@pytest.fixture
def acl_redis(tmp_path):
    """Redis with the server user and two device users (`agent-dev-a`, `agent-dev-b`) as shipped."""
    lines = ["user default off",
             "user thoxdash on >server-pw ~* &* +@all -@admin -flushall -flushdb -debug -shutdown",
             registry.acl_line("dev-a", "pw-a"), registry.acl_line("dev-b", "pw-b")]
    acl = tmp_path / "users.acl"
    acl.write_text("\n".join(lines) + "\n")
    with private_redis(tmp_path, "--aclfile", str(acl), ping_user=("thoxdash", "server-pw")) as port:
        def client(user: str, password: str) -> redis.Redis:
            return redis.Redis(port=port, username=user, password=password, decode_responses=True)
        yield {"port": port, "client": client}


def test_shipped_acl_rules_agree():
    """deploy/redis/thoxdash.acl.example, deploy/install.sh and collectors/registry.py write one rule."""
    example = (DEPLOY / "redis" / "thoxdash.acl.example").read_text()
    line = next(x for x in example.splitlines() if x.startswith("user agent-orin-nano-017 "))
    assert line.split(" ", 4)[4] == registry.acl_rules("orin-nano-017")
    install = (DEPLOY / "install.sh").read_text()
    bash = re.search(r'line="user \$1 on #\$\(sha "\$2"\) (resetkeys [^"]+)"', install)
    assert bash and bash.group(1).replace("$3", "orin-nano-017") == registry.acl_rules("orin-nano-017")
    assert "thox:devices" not in registry.acl_rules("x")


def test_a_device_writes_only_its_own_keys(acl_redis):
    server = acl_redis["client"]("thoxdash", "server-pw")
    registry.enroll(server, "thox:", "dev-a", now=time.time())
    registry.enroll(server, "thox:", "dev-b", now=time.time())
    a = acl_redis["client"]("agent-dev-a", "pw-a")
    a.xadd("thox:dev:dev-a:telemetry", {"j": "{}"})
    a.hset("thox:dev:dev-a:latest", "x", "1")
    a.set("thox:dev:dev-a:info", '{"board":{"model":"a"}}')
    refused = [
        lambda: a.xadd("thox:dev:dev-b:telemetry", {"j": "{}"}),
        lambda: a.hset("thox:dev:dev-b:latest", "x", "1"),
        lambda: a.xadd("thox:dev:dev-b:actions", {"j": "{}", "sig": "x"}),
        lambda: a.hdel("thox:dev:dev-b:action_log", "r"),
        lambda: a.hset("thox:devices", "a b", "{}"),
        lambda: a.hset("thox:devices", "dev-a", "[]"),
        lambda: a.hdel("thox:devices", "dev-b"),
        lambda: a.hgetall("thox:devices"),
        lambda: a.delete("thox:dev:dev-b:telemetry"),
        lambda: a.set("thox:dev:dev-b:info", "{}"),
        lambda: a.keys("*"),
        lambda: a.flushall(),
    ]
    for call in refused:
        with pytest.raises(redis.exceptions.NoPermissionError):
            call()
    assert sorted(TelemetryStore(server, "thox:").devices()) == ["dev-a", "dev-b"]


def test_a_fleet_agent_runs_without_registry_access(acl_redis, tmp_path):
    """The real agent as its own user: publishes, keeps running; the enrolled entry is the server's,
    the board comes from the device's own key."""
    port = acl_redis["port"]
    server = acl_redis["client"]("thoxdash", "server-pw")
    registry.enroll(server, "thox:", "dev-a", notes="rack 4", now=time.time())
    env = {**os.environ, "THOXDASH_REDIS_PREFIX": "thox:", "THOXDASH_AGENT_KEY": signing.derive_key(MASTER, "dev-a")}
    env.pop("THOXDASH_AGENT_MASTER_KEY", None)
    log = tmp_path / "agent.log"
    env["REDIS_URL"] = f"redis://agent-dev-a:pw-a@127.0.0.1:{port}/0"  # never on the command line
    agent = subprocess.Popen([sys.executable, "-m", "collectors", "agent", "--device", "dev-a", "--interval", "0.5",
                              "--spill", str(tmp_path / "spill")], cwd=ROOT, env=env,
                             stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: server.xlen("thox:dev:dev-a:telemetry") >= 3, 40, "the agent's records")
        wait_for(lambda: server.get("thox:dev:dev-a:info"), 10, "the agent's own info key")
        time.sleep(1.0)
        assert agent.poll() is None, log.read_text()[-3000:]
    finally:
        agent.terminate()
        agent.wait(15)
    devices = TelemetryStore(server, "thox:").devices()
    assert list(devices) == ["dev-a"]
    assert devices["dev-a"]["notes"] == "rack 4" and devices["dev-a"]["board"]
    assert devices["dev-a"]["last_seen"] is not None
    text = log.read_text()
    assert "Traceback" not in text and "pw-a" not in text


def test_a_password_on_the_command_line_is_refused():
    out = subprocess.run([sys.executable, "-m", "collectors", "agent", "--device", "d1", "--redis",
                          "redis://agent-d1:s3cret-pw@127.0.0.1:1/0"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and "REDIS_URL" in out.stderr and "s3cret-pw" not in out.stderr


JUNK = {"a b": "{}", "x": "[]", "nul\x00": "{}", "toolong" * 20: "{}", "bad-json": "{not json",
        "list": "[1,2]", "num": "5", "huge": json.dumps({"notes": "n" * 20_000}),
        "board-junk": json.dumps({"board": [1, 2], "notes": {"x": 1}, "replay": "yes"})}


def test_registry_junk_is_skipped_and_reported(store, caplog):
    store.register_device("good-1", board={"model": "Orin", "cores": 8, "nested": {"x": 1}})
    store.publish("good-1", [{"ts": time.time(), "source": "s", "values": {"gpu_load_ratio": 0.5}}])
    store.r.hset(f"{store.prefix}devices", mapping=JUNK)
    reg = store.registry()
    assert set(reg.devices) == {"good-1", "board-junk"}
    assert reg.devices["board-junk"]["board"] == {} and "notes" not in reg.devices["board-junk"]
    assert reg.devices["good-1"]["board"] == {"model": "Orin", "cores": 8}
    assert len(reg.problems) == len(JUNK) - 1
    assert sorted(store.devices()) == ["board-junk", "good-1"]
    assert sorted(store.fleet()) == ["board-junk", "good-1"]
    assert store.device_ids() == ["board-junk", "good-1"]
    assert sorted(store.latest_all()) == store.device_ids()
    assert "device registry: skipped" in caplog.text
    from thoxdash.selfmetrics import SelfCollector  # and Prometheus hears of them

    gauge = next(m for m in SelfCollector(store).collect() if m.name == "thoxdash_registry_problems")
    assert [(s.name, s.value) for s in gauge.samples] == [("thoxdash_registry_problems", len(JUNK) - 1)]


def test_a_deleted_registry_entry_is_restored_by_enrollment(store):
    registry.enroll(store.r, store.prefix, "dev-x", now=1.0)
    store.r.hdel(f"{store.prefix}devices", "dev-x")
    assert "dev-x" not in store.devices()
    registry.enroll(store.r, store.prefix, "dev-x", now=2.0)
    assert store.devices()["dev-x"]["enrolled"] is True


# -- per-device action keys ------------------------------------------------------------------------

def _executor(store, device: str, root: Path, key: str, **kw) -> Executor:
    return Executor(store, device, root, key=key, consumer="t", **kw)


def _request(device: str, key: str, **kw) -> dict[str, str]:
    message = signing.build(device, "thp", {"mode": "madvise"}, **kw)
    return signing.sign(message, key)


def test_a_device_key_cannot_sign_for_another_device(store, tmp_path):
    key_a, key_b = signing.derive_key(MASTER, "dev-a"), signing.derive_key(MASTER, "dev-b")
    assert key_a != key_b and len(key_a) == 64
    root = fake_device.build(tmp_path / "b")
    victim = _executor(store, "dev-b", root, key_b)
    forged = _request("dev-b", key_a)  # a stolen device A signs a request for B
    result = victim.handle(forged, time.time())
    assert result["status"] == "rejected" and "bad signature" in result["reason"]
    good = victim.handle(_request("dev-b", key_b), time.time())
    assert good["status"] != "rejected", good
    # the master key itself is no device's key either
    assert victim.handle(_request("dev-b", MASTER), time.time())["status"] == "rejected"


def test_a_replayed_request_is_refused_after_its_log_entry_is_deleted(store, tmp_path):
    key = signing.derive_key(MASTER, "dev-r")
    root = fake_device.build(tmp_path / "r")
    seen = tmp_path / "state" / "dev-r.seen-requests.json"
    seen.parent.mkdir()
    executor = _executor(store, "dev-r", root, key, seen_path=seen)
    fields = _request("dev-r", key)
    first = executor.handle(fields, time.time())
    assert first["status"] in ("applied", "failed", "partial"), first
    rid = first["request_id"]
    log_key = f"{store.prefix}dev:dev-r:action_log"
    assert store.r.hdel(log_key, rid) == 1  # someone with write access to the device's keys
    again = executor.handle(fields, time.time())
    assert again["status"] == "rejected" and "replayed" in again["reason"]
    # and after an agent restart: the ids are kept in a 0600 file
    assert stat.S_IMODE(seen.stat().st_mode) == 0o600
    store.r.hdel(log_key, rid)
    restarted = _executor(store, "dev-r", root, key, seen_path=seen)
    assert restarted.handle(fields, time.time())["status"] == "rejected"


def test_key_rotation_accepts_the_previous_key_only_within_its_window(store, tmp_path):
    old, new = signing.derive_key("old-master-key-0123456789", "dev-k"), signing.derive_key(MASTER, "dev-k")
    now = time.time()
    env = {"THOXDASH_AGENT_KEY": new, "THOXDASH_AGENT_KEY_PREVIOUS": old,
           "THOXDASH_AGENT_KEY_PREVIOUS_UNTIL": str(now + 3600)}
    assert signing.agent_keys(env, now) == [new, old]
    assert signing.agent_keys(env, now + 7200) == [new]
    assert signing.agent_keys({**env, "THOXDASH_AGENT_KEY_PREVIOUS_UNTIL": ""}, now) == [new]
    root = fake_device.build(tmp_path / "k")
    during = _executor(store, "dev-k", root, new, previous_keys=(old,))
    assert during.handle(_request("dev-k", old), now)["status"] != "rejected"
    after = _executor(store, "dev-k", root, new)
    assert after.handle(_request("dev-k", old), now)["status"] == "rejected"


def test_key_from_file(tmp_path):
    path = tmp_path / "key"
    path.write_text("from-a-file-0123456789\n")
    assert signing.agent_keys({"THOXDASH_AGENT_KEY_FILE": str(path)}) == ["from-a-file-0123456789"]
    with pytest.raises(ValueError, match="THOXDASH_AGENT_KEY_FILE"):
        signing.agent_keys({"THOXDASH_AGENT_KEY_FILE": str(tmp_path / "missing")})


@pytest.mark.django_db
def test_enroll_device_command(settings, store, tmp_path):
    from django.core.management import call_command

    from advisors.telemetry import store as web_store

    settings.AGENT_KEY = MASTER
    web_store.cache_clear()
    settings.REDIS_PREFIX = store.prefix
    try:
        call_command("enroll_device", "orin-9", "--key-file", str(tmp_path / "k" / "orin-9"),
                     "--redis-password-file", str(tmp_path / "k" / "orin-9.redis"), "--notes", "lab")
    finally:
        web_store.cache_clear()
    key_file = tmp_path / "k" / "orin-9"
    assert key_file.read_text().strip() == signing.derive_key(MASTER, "orin-9")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "k" / "orin-9.redis").stat().st_mode) == 0o600
    assert store.devices()["orin-9"]["notes"] == "lab"


def test_tools_resolve_on_the_real_root_and_must_be_trusted(tmp_path):
    """A planted `usr/bin/systemctl` in the --root tree is never run: the agent looks tools up on `/`
    (THOXDASH_AGENT_TOOLS_ROOT for test trees), and a tool writable by others is refused."""
    from collectors.actions.context import ActionContext, ToolError

    tree = tmp_path / "tree"
    planted = tree / "usr/bin/systemctl"
    planted.parent.mkdir(parents=True)
    planted.write_text("#!/bin/sh\necho planted\n")
    planted.chmod(0o755)
    on_root = ActionContext(root=tree, tools_root=Path("/"))
    try:
        assert on_root.tool("systemctl") != planted
    except ToolError as exc:  # no systemctl on this machine: still never the planted one
        assert "not found" in str(exc)
    in_tree = ActionContext(root=tree)  # what tests do: tools from the tree itself
    assert in_tree.tool("systemctl") == planted
    planted.chmod(0o777)
    with pytest.raises(ToolError, match="writable by group or others"):
        in_tree.tool("systemctl")
    planted.chmod(0o755)
    planted.parent.chmod(0o777)
    with pytest.raises(ToolError, match="writable by group or others"):
        in_tree.tool("systemctl")
    planted.parent.chmod(0o755)
