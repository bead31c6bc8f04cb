"""The agent under stress: a real Redis server killed and restarted, per-source intervals, bad roots."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from collectors.agent import Agent, default_sources
from collectors.buffer import OutboxBuffer
from collectors.sources.base import Source
from collectors.sources.registry import AgentConfigError, extra_sources, parse_intervals
from collectors.store import TelemetryStore, connect
from tests.procfs import write


@dataclass
class Counter(Source):
    """Emits seq = 0, 1, 2, ... one per collect."""

    name: str = "counter"
    seq: int = 0

    def collect(self, now: float) -> list[dict[str, Any]]:
        self.seq += 1
        return [{"ts": now, "source": self.name, "values": {"seq": float(self.seq - 1)}}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, port: int, workdir: Path):
        self.port, self.workdir, self.proc = port, workdir, None

    def start(self) -> None:
        self.proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if connect(self.url).ping():
                    return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(free_port(), tmp_path)
    server.start()
    yield server
    if server.proc.poll() is None:
        server.kill()


def test_real_redis_outage_loses_nothing_within_the_bound(redis_server, tmp_path):
    store = TelemetryStore(connect(redis_server.url, socket_connect_timeout=0.5, socket_timeout=1), prefix="t:")
    buffer = OutboxBuffer(memory_records=20, spill_path=tmp_path / "spill.jsonl", spill_records=1000)
    source = Counter(interval=1.0)
    agent = Agent("edge1", [source], store, buffer=buffer)
    now = 1_800_000_000.0
    for _ in range(3):
        agent.tick(now)
        now += 1.0
    assert [r["values"]["seq"] for r in store.read("edge1", "telemetry") if r["source"] == "counter"] == [0, 1, 2]

    redis_server.kill()
    for _ in range(60):  # 60 samples while Redis is gone
        agent.tick(now)
        now += 1.0
    assert len(buffer) >= 60 and buffer.spilled > 0 and buffer.dropped == 0

    redis_server.start()  # empty: a fresh server
    deadline = time.monotonic() + 30
    while len(buffer) and time.monotonic() < deadline:
        agent.tick(now)
        now += 1.0
        time.sleep(0.2)
    agent.close()
    assert len(buffer) == 0 and not (tmp_path / "spill.jsonl").exists()
    seqs = [r["values"]["seq"] for r in store.read("edge1", "telemetry") if r["source"] == "counter"]
    assert seqs == list(range(3, int(seqs[-1]) + 1))  # every outage sample, in order
    assert seqs[-1] >= 62
    assert "edge1" in store.devices()  # registered again on the new server
    assert store.latest("edge1")["values"]["agent_dropped_records_total"] == 0


def test_outage_beyond_the_bound_is_counted(redis_server, tmp_path):
    store = TelemetryStore(connect(redis_server.url, socket_connect_timeout=0.5, socket_timeout=1), prefix="t:")
    buffer = OutboxBuffer(memory_records=5, spill_path=tmp_path / "spill.jsonl", spill_records=10)
    agent = Agent("edge2", [Counter(interval=1.0)], store, buffer=buffer)
    redis_server.kill()
    now = 1_800_000_000.0
    for _ in range(20):  # 20 counter + 20 agent-status records; room for 15
        agent.tick(now)
        now += 1.0
    assert buffer.dropped == 40 - 15
    redis_server.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        agent.tick(now)
        now += 1.0
        if len(buffer) == 0:
            break
        time.sleep(0.2)
    agent.close()
    reported = store.latest("edge2")["values"]["agent_dropped_records_total"]
    assert 25 <= reported <= buffer.dropped  # ticks during the reconnect backoff may drop more


def test_default_intervals_and_overrides(monkeypatch):
    monkeypatch.delenv("THOXDASH_AGENT_INTERVALS", raising=False)
    by_name = {s.name: s.interval for s in extra_sources(Path("/"), None)}
    assert by_name["cgroup"] == 1.0 and by_name["runtimes"] == 5.0 and by_name["irq"] == 5.0
    assert by_name["tuning"] == 30.0
    monkeypatch.setenv("THOXDASH_AGENT_INTERVALS", "cgroup=2, runtimes=7.5,host=0.5")
    by_name = {s.name: s.interval for s in default_sources(Path("/"), None)}
    assert by_name["cgroup"] == 2.0 and by_name["runtimes"] == 7.5 and by_name["host"] == 0.5
    assert by_name["tuning"] == 30.0
    assert {s.interval for s in default_sources(Path("/"), 3.0)} == {3.0}


@pytest.mark.parametrize("spec, message", [("cgroup", "not name=seconds"), ("cgroup=x", "not a number"),
                                           ("irq=0", "must be > 0"), ("irq=nan", "must be > 0"),
                                           ("=5", "not name=seconds")])
def test_bad_intervals_are_clear_errors(spec, message):
    with pytest.raises(AgentConfigError, match=message):
        parse_intervals(spec)


def test_agent_command_reports_bad_intervals():
    env = {**os.environ, "THOXDASH_AGENT_INTERVALS": "tuning=-1"}
    out = subprocess.run([sys.executable, "-m", "collectors", "agent", "--device", "x", "--once"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 2
    assert "THOXDASH_AGENT_INTERVALS: tuning='-1' must be > 0 seconds" in out.stderr
    assert "Traceback" not in out.stderr


def test_agent_once_includes_every_source_of_this_machine():
    out = subprocess.run([sys.executable, "-m", "collectors", "agent", "--device", "t2", "--once"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    sources = {r["source"] for r in records}
    assert {"host", "cgroup", "runtimes", "irq", "tuning", "agent"} <= sources
    status = next(r for r in records if r["source"] == "agent")["values"]
    assert status['agent_source_up{source="irq"}'] == 1.0
    tuning = next(r for r in records if r["source"] == "tuning")["state"]
    assert {"preempt_rt", "cpu_governor", "clocks_locked", "nvpmodel", "isolcpus", "irq_affinity", "thp",
            "swap", "desktop", "rt_sched", "mlock", "gpu_runtime_pm"} <= set(tuning)


def test_every_source_on_a_garbage_root_keeps_the_agent_running(tmp_path, store, monkeypatch):
    monkeypatch.delenv("THOXDASH_AGENT_RUNTIMES", raising=False)
    junk = "\x00\xff garbage ) ( 99999999999999999999999 NaN -1 {\n"
    for rel in ("proc/stat", "proc/meminfo", "proc/loadavg", "proc/interrupts", "proc/pressure/memory",
                "proc/vmstat", "proc/swaps", "proc/cmdline", "proc/7/stat", "proc/7/statm", "proc/7/cmdline",
                "sys/fs/cgroup/cgroup.controllers", "sys/fs/cgroup/memory.current", "sys/kernel/realtime",
                "sys/devices/system/cpu/isolated", "sys/kernel/mm/transparent_hugepage/enabled",
                "sys/kernel/debug/nvmap/iovmm/clients", "etc/nvpmodel.conf", "var/lib/nvpmodel/status"):
        write(tmp_path, rel, junk)
    write(tmp_path, "proc/pressure/memory", "some avg10=NaN\nfull avg10=-3\n")
    agent = Agent("junk", default_sources(tmp_path, 0.5), store, source_timeout=5)
    for _ in range(3):
        agent.tick()
        time.sleep(0.1)
    agent.close()
    latest = store.latest("junk")
    assert latest["values"]["agent_buffered_records"] == 0
    ups = {k: v for k, v in latest["values"].items() if k.startswith("agent_source_up")}
    assert 'agent_source_up{source="tuning"}' in ups and ups['agent_source_up{source="host"}'] == 1.0
    failed = {n: s.message for n, s in agent.status.items() if not s.ok}
    assert "irq" in failed and all(m for m in failed.values())  # a clear status for each failure
    assert not {"host", "cgroup", "runtimes", "tuning"} & set(failed)


@dataclass
class Sleeper(Source):
    name: str = "sleeper"
    seconds: float = 4.0

    def collect(self, now: float) -> list[dict[str, Any]]:
        time.sleep(self.seconds)
        return []


def test_a_hung_source_is_waited_for_once_not_every_tick():
    counter = Counter(interval=0.01)
    agent = Agent("slow", [Sleeper(interval=0.01), counter], store=None, source_timeout=10.0)
    agent.wait_s = 0.5
    start = time.monotonic()
    for _ in range(8):
        agent.tick()
        time.sleep(0.05)
    elapsed = time.monotonic() - start
    agent.close()
    # the sleeper holds its worker for 4 s; only the tick that started it waited (0.5 s) for it
    assert elapsed < 3.0, elapsed
    assert counter.seq >= 6
    assert agent.status["sleeper"].ok  # not yet past source_timeout: still just running


def test_executor_recreates_its_consumer_group_after_redis_restarts_empty(redis_server, tmp_path):
    """A Redis without persistence comes back with neither the actions stream nor its group: the
    executor answered NOGROUP forever; now it makes the group again and the next action runs."""
    from collectors.actions import signing
    from collectors.actions.executor import Executor, ExecutorHook
    from tests import fake_device

    key = "k"
    store = TelemetryStore(connect(redis_server.url, socket_connect_timeout=0.5, socket_timeout=1), prefix="t:")
    root = fake_device.build(tmp_path / "root")
    executor = Executor(store, "edge3", root, key=key, consumer="c")

    def ask() -> str:
        message = signing.build("edge3", "set_governor", {"cpus": "4-7", "value": "performance"})
        store.action_queue("edge3").submit(signing.sign(message, key))
        return message["id"]

    first = ask()
    assert [(r["request_id"], r["status"]) for r in executor.poll()] == [(first, "applied")]
    redis_server.kill()
    hook = ExecutorHook(executor)
    hook(None, 0.0)
    assert hook.running.exception(timeout=10) is not None  # the poll met the outage
    hook(None, 0.0)  # the failure is noticed: backing off, no new poll started
    assert hook.running is None and hook.backoff == 1.0
    redis_server.start()  # empty
    second = ask()
    (result,) = executor.poll()
    assert result["request_id"] == second and result["status"] == "applied", result
    assert store.action_queue("edge3").results()[-1]["request_id"] == second
    # Again, with no poll during the outage: the first read after it gets NOGROUP and recovers.
    redis_server.kill()
    redis_server.start()
    third = ask()
    assert [r["request_id"] for r in executor.poll()] == [third]


def test_replay_rides_out_an_outage_and_registers_again(redis_server):
    import threading

    from collectors.recording import Recording
    from collectors.replay import replay

    store = TelemetryStore(connect(redis_server.url, socket_connect_timeout=0.5, socket_timeout=1), prefix="t:")
    recording = Recording({"board": {"model": "demo"}},
                          [{"ts": 100.0 + i * 0.1, "source": "s", "values": {"seq": float(i)}} for i in range(40)])
    stop = threading.Event()
    sent: list[int] = []
    thread = threading.Thread(target=lambda: sent.append(replay(recording, store, "rep", speed=1.0, loop=True,
                                                                stop=stop)), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not store.read("rep") and time.monotonic() < deadline:
        time.sleep(0.05)
    redis_server.kill()
    time.sleep(2.0)
    assert thread.is_alive()  # waiting, not dead
    redis_server.start()  # empty: the device entry is gone too
    deadline = time.monotonic() + 20
    while not (store.read("rep") and "rep" in store.devices()) and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    thread.join(10)
    assert not thread.is_alive() and sent and sent[0] > 0
    assert store.read("rep") and "rep" in store.devices()
