"""IRQ placement and the tuning checklist: fake Jetson trees on disk, and this machine's real /proc."""

from __future__ import annotations

import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.agent import Agent
from collectors.sources.irq import IrqSource, format_cpu_list, parse_cpu_list, parse_interrupts
from collectors.sources.tuning import TuningSource
from tests.procfs import add_process, write

ORIN_INTERRUPTS = """           CPU0       CPU1       CPU2       CPU3       CPU4       CPU5
 11:     123456      98765      45678      23456       1234        567     GICv3  30 Level     arch_timer
 14:          0          0          0          0          0          0     GICv3 217 Level     tegra-thermal
 57:       8812          0          0          0       4410          0     GICv3 195 Level     3610000.usb
 76:          0          0          0          0          0       9001     GICv3  64 Level     17000000.gpu
IPI0:      5000       4000       3000       2000       1000        900       Rescheduling interrupts
Err:          0
garbage line without colon
 99: notanumber
"""


def orin_tree(root: Path) -> None:
    write(root, "proc/interrupts", ORIN_INTERRUPTS)
    for irq, aff, eff in (("11", "0-5", "0"), ("14", "0-3", "0"), ("57", "0-5", "4"), ("76", "5", "5")):
        write(root, f"proc/irq/{irq}/smp_affinity_list", aff + "\n")
        write(root, f"proc/irq/{irq}/effective_affinity_list", eff + "\n")
    write(root, "proc/irq/99/smp_affinity_list", "garbage\n")
    write(root, "sys/devices/system/cpu/isolated", "4-5\n")
    write(root, "sys/devices/system/cpu/nohz_full", "4-5\n")
    write(root, "proc/cmdline", "root=/dev/mmcblk0p1 isolcpus=4,5 nohz_full=4-5 quiet\n")


def test_irq_counts_affinity_and_isolation_from_orin_tree(tmp_path):
    orin_tree(tmp_path)
    records = IrqSource(root=tmp_path).collect(10.0)
    v, state = records[0]["values"], records[1]["state"]
    assert v['irq_interrupts_total{cpu="4",irq="57"}'] == 4410
    assert v['irq_interrupts_total{cpu="5",irq="76"}'] == 9001
    assert v['irq_interrupts_total{cpu="0",irq="IPI0"}'] == 5000
    assert 'irq_interrupts_total{cpu="1",irq="14"}' not in v  # zero counts are left out
    assert not any('irq="99"' in k or 'irq="Err"' in k for k in v)
    assert v["irq_isolated_cpus"] == 2
    assert state["isolated_cpus"] == "4-5" and state["nohz_full_cpus"] == "4-5"
    assert state["irq_placement"]["57"] == {"affinity": "0-5", "effective": "4", "name": "GICv3 195 Level 3610000.usb"}
    assert "99" not in state["irq_placement"]


def test_irq_on_real_proc():
    records = IrqSource(root=Path("/")).collect(time.time())
    counts = {k: v for k, v in records[0]["values"].items() if k.startswith("irq_interrupts_total")}
    assert counts and all(v > 0 for v in counts.values())
    assert isinstance(records[1]["state"]["irq_placement"], dict)


def jetson_tuning_tree(root: Path) -> None:
    orin_tree(root)
    write(root, "sys/kernel/realtime", "1\n")
    for cpu in range(6):
        base = f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
        write(root, f"{base}/scaling_governor", "performance\n" if cpu < 4 else "schedutil\n")
        write(root, f"{base}/scaling_min_freq", "1510400\n")
        write(root, f"{base}/scaling_max_freq", "1510400\n")
    gpu = "sys/class/devfreq/17000000.gpu"
    write(root, f"{gpu}/min_freq", "1020000000\n")
    write(root, f"{gpu}/max_freq", "1020000000\n")
    write(root, f"{gpu}/device/power/control", "on\n")
    write(root, "sys/kernel/debug/bpmp/debug/clk/emc/min_rate", "204000000\n")
    write(root, "sys/kernel/debug/bpmp/debug/clk/emc/max_rate", "3199000000\n")
    write(root, "etc/nvpmodel.conf", "< POWER_MODEL ID=0 NAME=15W >\nCPU_ONLINE CORE_0 1\n"
                                     "< POWER_MODEL ID=2 NAME=MAXN_SUPER >\n< PM_CONFIG DEFAULT=2 >\n")
    write(root, "var/lib/nvpmodel/status", "pmode:0002 fmode:quiet\n")
    write(root, "sys/kernel/mm/transparent_hugepage/enabled", "always madvise [never]\n")
    write(root, "proc/swaps", "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
                              "/dev/zram0                              partition\t635172\t\t1024\t\t5\n")
    add_process(root, 800, "gnome-shell", ["/usr/bin/gnome-shell"])
    add_process(root, 900, "tritonserver", ["tritonserver"], threads={900: (0, 0), 901: (80, 1), 902: (50, 2)},
                vmlck_kb=2048)


def test_tuning_state_from_jetson_tree(tmp_path, monkeypatch):
    monkeypatch.delenv("THOXDASH_AGENT_RUNTIMES", raising=False)
    jetson_tuning_tree(tmp_path)
    [record] = TuningSource(root=tmp_path).collect(5.0)
    s = record["state"]
    assert s["preempt_rt"] is True
    assert s["cpu_governor"] == {"0": "performance", "1": "performance", "2": "performance", "3": "performance",
                                 "4": "schedutil", "5": "schedutil"}
    assert s["clocks_locked"] == {"cpu": True, "gpu": True, "emc": False}
    assert s["nvpmodel"] == {"id": 2, "name": "MAXN_SUPER"}
    assert s["isolcpus"] == "4,5" and s["isolated_cpus"] == "4-5"
    assert s["irq_affinity"] == {"isolated": "4-5", "irqs_on_isolated": ["11", "57", "76"]}
    assert s["thp"] == "never"
    assert s["swap"]["enabled"] is True and s["swap"]["used_bytes"] == 1024 * 1024
    assert s["desktop"] == {"running": True, "processes": ["gnome-shell"]}
    assert s["rt_sched"]["triton"] == {"policies": {"SCHED_OTHER": 1, "SCHED_FIFO": 1, "SCHED_RR": 1},
                                       "max_rt_priority": 80}
    assert s["mlock"] == {"triton": 2048 * 1024}
    assert s["gpu_runtime_pm"] == {"17000000.gpu": "on"}


def test_tuning_on_empty_tree_is_all_unknown(tmp_path):
    [record] = TuningSource(root=tmp_path).collect(1.0)
    s = record["state"]
    assert s["preempt_rt"] is False and s["cpu_governor"] is None and s["nvpmodel"] is None
    assert s["clocks_locked"] == {"cpu": None, "gpu": None, "emc": None}
    assert s["thp"] is None and s["swap"] is None and s["gpu_runtime_pm"] is None


def test_tuning_on_real_machine_matches_the_files():
    [record] = TuningSource(root=Path("/")).collect(time.time())
    s = record["state"]
    thp_text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    assert f"[{s['thp']}]" in thp_text
    swaps = Path("/proc/swaps").read_text().splitlines()[1:]
    assert s["swap"]["enabled"] is bool(swaps)
    assert s["preempt_rt"] is ("PREEMPT_RT" in Path("/proc/version").read_text())


def test_garbage_trees_do_not_stop_the_agent(tmp_path, store):
    write(tmp_path, "proc/interrupts", "\x00\xff garbage\n\n:::\n")
    write(tmp_path, "sys/kernel/realtime", "yes\n")
    write(tmp_path, "sys/kernel/mm/transparent_hugepage/enabled", "[")
    write(tmp_path, "proc/swaps", "Filename\n/dev/x partition -5 NaN 1\n")
    write(tmp_path, "var/lib/nvpmodel/status", "pmode:\n")
    write(tmp_path, "proc/12/stat", "12 (truncated")
    write(tmp_path, "proc/13/stat", "")
    agent = Agent("bad", [IrqSource(root=tmp_path), TuningSource(root=tmp_path)], store)
    agent.tick()
    agent.close()
    assert agent.status["irq"].ok is False and "no interrupt lines" in agent.status["irq"].message
    assert agent.status["tuning"].ok is True
    state = store.latest("bad")["state"]
    assert state["preempt_rt"] is False and state["thp"] is None and state["swap"]["enabled"] is False


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_fuzz_interrupts_parser(text):
    counts, names = parse_interrupts(text)
    for per_cpu in counts.values():
        assert all(isinstance(c, int) and c > 0 for c in per_cpu.values())
    assert all(name.isprintable() for name in names.values())


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(0, 300), max_size=40))
def test_cpu_list_round_trip(cpus):
    assert parse_cpu_list(format_cpu_list(cpus)) == cpus


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789-, x\n", max_size=30))
def test_fuzz_cpu_list(text):
    out = parse_cpu_list(text)
    assert out is None or all(0 <= c < 4096 for c in out)
