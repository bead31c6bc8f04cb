"""Host extras: load, process counts, top processes by RSS (names as data), /proc/PID readers."""

from __future__ import annotations

import os
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.agent import Agent
from collectors.sources import procs
from collectors.sources.host import HostSource, loadavg, top_processes
from tests.procfs import add_process, stat_line, write


def test_real_loadavg_and_top_processes():
    values = loadavg(Path("/"))
    assert values["host_processes"] >= 1 and values["load_average_15m"] >= 0
    assert 0 <= values["host_processes_running"] <= values["host_processes"]
    top = top_processes(Path("/"), 5)
    assert 1 <= len(top) <= 5
    assert top == sorted(top, key=lambda p: -p["rss_bytes"])
    mine = procs.rss_bytes(Path("/"), os.getpid())
    assert mine and mine > 10 * 1024 * 1024


def test_host_source_emits_processes_state_every_few_seconds():
    source = HostSource(root=Path("/"), processes_every=5.0)
    first = source.collect(1000.0)
    assert first[0]["values"]["load_average_1m"] >= 0
    assert "processes" in first[1]["state"]
    assert len(source.collect(1001.0)) == 1  # not again within processes_every
    assert len(source.collect(1005.5)) == 2


def test_hostile_process_names_are_data(tmp_path):
    write(tmp_path, "proc/loadavg", "0.50 0.40 0.30 2/345 6789\n")
    add_process(tmp_path, 10, 'a) S 1 1 1 (b\n\x1b[31m"}', ["x"], rss_pages=9000)
    add_process(tmp_path, 11, "normal", ["y"], rss_pages=10)
    write(tmp_path, "proc/12/statm", "garbage\n")
    write(tmp_path, "proc/13/statm", "1 -5 0\n")
    write(tmp_path, "proc/14/stat", "14 (nocloseparen S 1")
    write(tmp_path, "proc/14/statm", "10 20 0\n")
    top = top_processes(tmp_path, 10)
    assert [p["pid"] for p in top] == [10, 11]
    name = top[0]["name"]
    assert name.isprintable() and "\n" not in name and "\x1b" not in name
    assert name.startswith("a) S 1 1 1 (b")
    assert loadavg(tmp_path) == {"load_average_1m": 0.5, "load_average_5m": 0.4, "load_average_15m": 0.3,
                                 "host_processes_running": 2.0, "host_processes": 345.0}


def test_bad_loadavg_is_unknown(tmp_path):
    for text in ("", "nan nan nan 1/2 3", "1 2", "1 2 3 x/y 4", "1e999 1 1 1/1 1", "-1 0 0 1/1 1"):
        write(tmp_path, "proc/loadavg", text)
        assert loadavg(tmp_path) is None, text


def test_host_source_on_empty_tree_keeps_agent_running(tmp_path, store):
    agent = Agent("empty", [HostSource(root=tmp_path)], store)
    agent.tick(time.time())
    agent.close()
    assert agent.status["host"].ok
    assert "host_logical_cpus" in store.latest("empty")["values"]


def test_stat_parser_on_real_and_tricky_lines():
    st_ = procs.stat(Path("/"), os.getpid())
    assert st_.pid == os.getpid() and st_.ppid == os.getppid() and st_.policy == 0
    parsed = procs.parse_stat(5, stat_line(5, "x) (y", ppid=3, start=77, rt_priority=80, policy=1))
    assert (parsed.comm, parsed.ppid, parsed.starttime, parsed.rt_priority, parsed.policy) == ("x) (y", 3, 77, 80, 1)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_stat_parser(text):
    out = procs.parse_stat(1, text)
    assert out is None or isinstance(out.ppid, int)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_safe_name(text):
    out = procs.safe_name(text)
    assert out.isprintable() and len(out) <= 128


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["MemTotal", "MemAvailable", "MemFree", "SwapTotal", "SwapFree", "x"]),
                          st.one_of(st.integers(-10, 2**62).map(str), st.text(max_size=8))), max_size=8))
def test_fuzz_meminfo(lines):
    import tempfile

    from collectors.sources.host import memory

    with tempfile.TemporaryDirectory() as tmp:
        write(Path(tmp), "proc/meminfo", "".join(f"{k}: {v} kB\n" for k, v in lines))
        out = memory(Path(tmp))
    if out is not None:
        assert out["ram_used_bytes"] + out["ram_available_bytes"] == out["ram_total_bytes"]
        assert all(v >= 0 for v in out.values())
