"""cgroup memory: the real cgroup v1 memory controller of this machine, v2 trees on disk, PSI."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.agent import Agent
from collectors.sources.cgroup import CgroupSource, _keyed, parse_psi, read_v1, read_v2
from tests.procfs import add_process, write

V1 = Path("/sys/fs/cgroup/memory")

CHILD = """
import os, sys
open(sys.argv[1] + "/cgroup.procs", "w").write(str(os.getpid()))
held = []
print("in", flush=True)
for line in sys.stdin:
    mb = int(line)
    block = bytearray(mb * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    held.append(block)
    print("ok", flush=True)
"""


@pytest.fixture
def v1_cgroup():
    """A fresh memory cgroup under the real v1 hierarchy, removed afterwards."""
    assert (V1 / "memory.usage_in_bytes").exists() and os.access(V1, os.W_OK), \
        "these tests need the writable cgroup v1 memory controller of the development machine"
    name = f"thoxtest_{uuid.uuid4().hex[:8]}"
    path = V1 / name
    path.mkdir()
    children: list[subprocess.Popen] = []
    try:
        yield name, path, children
    finally:
        for child in children:
            with contextlib.suppress(OSError):
                child.kill()
            child.wait(timeout=10)
        for _ in range(100):
            try:
                path.rmdir()
                break
            except OSError:
                time.sleep(0.05)
        assert not path.exists()


def child_in(path: Path, children: list) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    children.append(proc)
    assert proc.stdout.readline().strip() == "in"
    return proc


def values(records):
    return records[0]["values"]


def test_real_v1_cgroup_usage_limit_and_oom_kill(v1_cgroup):
    name, path, children = v1_cgroup
    source = CgroupSource(root=Path("/"), cgroups=[name])
    hog = child_in(path, children)
    hog.stdin.write("40\n")
    hog.stdin.flush()
    assert hog.stdout.readline().strip() == "ok"
    key = f'{{cgroup="/{name}"}}'
    v = values(source.collect(time.time()))
    assert v["cgroup_memory_bytes" + key] >= 40 * 1024 * 1024
    assert "cgroup_memory_max_bytes" + key not in v  # no limit yet
    assert v["cgroup_oom_kills_total" + key] == 0
    assert 0.0 <= v["memory_pressure_some_ratio"] <= 1.0

    (path / "memory.limit_in_bytes").write_text(str(96 * 1024 * 1024))
    v = values(source.collect(time.time()))
    assert v["cgroup_memory_max_bytes" + key] == 96 * 1024 * 1024
    hog.stdin.write("200\n")
    hog.stdin.flush()
    assert hog.wait(timeout=60) == -9  # the kernel's OOM killer, inside the cgroup
    records = source.collect(time.time())
    v = values(records)
    assert v["cgroup_oom_kills_total" + key] >= 1
    assert v["cgroup_memory_limit_hits_total" + key] >= 1
    kills = [r["event"] for r in records if "event" in r and r["event"].get("cgroup") == f"/{name}"]
    assert kills and kills[0]["kind"] == "oom_kill" and kills[0]["count"] >= 1


def test_v2_tree_runtime_discovery_limits_and_oom_event(tmp_path, monkeypatch):
    monkeypatch.delenv("THOXDASH_AGENT_RUNTIMES", raising=False)
    root = tmp_path
    cg = "sys/fs/cgroup"
    write(root, f"{cg}/cgroup.controllers", "cpuset cpu io memory pids\n")
    svc = f"{cg}/system.slice/ollama.service"
    write(root, f"{svc}/memory.current", "5100000000\n")
    write(root, f"{svc}/memory.max", "5500000000\n")
    write(root, f"{svc}/memory.high", "max\n")
    write(root, f"{svc}/memory.events", "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n")
    write(root, f"{svc}/memory.stat", "anon 4900000000\nfile 150000000\nkernel 1000\n")
    write(root, f"{svc}/memory.pressure", "some avg10=12.50 avg60=3.00 avg300=1.00 total=123\n"
                                          "full avg10=2.00 avg60=1.00 avg300=0.00 total=45\n")
    write(root, "proc/pressure/memory", "some avg10=7.25 avg60=1.00 avg300=0.10 total=999\n"
                                        "full avg10=1.50 avg60=0.50 avg300=0.00 total=99\n")
    write(root, "proc/vmstat", "nr_free_pages 1000\noom_kill 3\n")
    add_process(root, 4242, "ollama", ["/usr/local/bin/ollama", "serve"],
                cgroup="0::/system.slice/ollama.service")
    source = CgroupSource(root=root, cgroups=[])
    assert source.available() and source.tree[0].version == 2
    v = values(source.collect(100.0))
    key = '{cgroup="/system.slice/ollama.service"}'
    assert v["cgroup_memory_bytes" + key] == 5.1e9
    assert v["cgroup_memory_max_bytes" + key] == 5.5e9
    assert "cgroup_memory_high_bytes" + key not in v
    assert v["cgroup_oom_kills_total" + key] == 1 and v["cgroup_memory_limit_hits_total" + key] == 12
    assert v["cgroup_memory_anon_bytes" + key] == 4.9e9
    assert v["cgroup_memory_pressure_some_ratio" + key] == 0.125
    assert v["memory_pressure_some_ratio"] == 0.0725 and v["memory_pressure_full_ratio"] == 0.015
    assert v["host_oom_kills_total"] == 3
    write(root, f"{svc}/memory.events", "max 13\noom 2\noom_kill 2\n")
    write(root, "proc/vmstat", "oom_kill 4\n")
    records = source.collect(101.0)
    evs = [r["event"] for r in records if "event" in r]
    assert {"kind": "oom_kill", "cgroup": "/system.slice/ollama.service", "count": 1, "runtime": "ollama"} in evs
    assert {"kind": "oom_kill", "scope": "host", "count": 1} in evs


@pytest.mark.parametrize("garbage", ["", "max", "-5", "NaN", "1e400", "99999999999999999999999999", "\x00\xff",
                                     "12 34"])
def test_v2_garbage_numbers_are_unknown_not_errors(tmp_path, garbage):
    write(tmp_path, "memory.current", "1000\n")
    write(tmp_path, "memory.max", garbage)
    write(tmp_path, "memory.events", garbage)
    write(tmp_path, "memory.stat", "anon\nfile x\n" + garbage)
    data = read_v2(tmp_path)
    assert data["usage"] == 1000
    assert data["max"] in (None, 12)
    write(tmp_path, "memory.current", garbage)
    assert read_v2(tmp_path) is None or garbage == "12 34"


def test_v1_unlimited_and_truncated(tmp_path):
    write(tmp_path, "memory.usage_in_bytes", "4096\n")
    write(tmp_path, "memory.limit_in_bytes", "9223372036854771712\n")
    write(tmp_path, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_ki")  # truncated
    data = read_v1(tmp_path)
    assert data["usage"] == 4096 and data["max"] is None and data["oom_kills"] is None
    (tmp_path / "memory.usage_in_bytes").unlink()
    assert read_v1(tmp_path) is None


def test_missing_and_garbage_trees_keep_the_agent_running(tmp_path, store):
    write(tmp_path, "proc/pressure/memory", "some avg10=abc\nfull avg10=250.0 total=1\n")
    write(tmp_path, "sys/fs/cgroup/cgroup.controllers", "memory\n")
    write(tmp_path, "sys/fs/cgroup/weird/memory.current", "-1\n")
    source = CgroupSource(root=tmp_path, cgroups=["weird", "absent/*"])
    agent = Agent("cg", [source], store)
    agent.tick()
    agent.close()
    assert agent.status["cgroup"].ok
    assert not any(k.startswith("cgroup_") or k.startswith("memory_pressure") for k in store.latest("cg")["values"])


def test_real_psi_file_is_read():
    psi = parse_psi(Path("/proc/pressure/memory").read_text())
    assert psi is not None and set(psi) == {"some", "full"}
    assert all(0.0 <= v <= 1.0 for v in psi.values())


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_psi_and_keyed_parsers(text):
    psi = parse_psi(text)
    assert psi is None or all(0.0 <= v <= 1.0 for v in psi.values())
    assert all(isinstance(v, int) and v >= 0 for v in _keyed(text).values())
