"""`manage.py doctor` over fake trees: the JSON contract, statuses, and a tuned tree reading ok."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from advisors.recommend.checks import CHECK_IDS
from tests import fake_device

ROOT = Path(__file__).resolve().parent.parent


def doctor(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "doctor", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def tune(root: Path) -> None:
    """Make the fake tree look like a device that followed Appendix A."""
    (root / "sys/kernel").mkdir(parents=True, exist_ok=True)
    (root / "sys/kernel/realtime").write_text("1\n")
    for cpu in range(fake_device.CPUS):
        base = root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
        (base / "scaling_governor").write_text("performance\n")
        (base / "scaling_min_freq").write_text("1510400\n")
    (root / "sys/class/devfreq/17000000.gpu/min_freq").write_text("624750000\n")
    (root / "sys/devices/system/cpu/isolated").write_text("4-7\n")
    (root / "sys/devices/system/cpu/nohz_full").write_text("4-7\n")
    (root / "proc/cmdline").write_text("root=/dev/mmcblk0p1 isolcpus=4-7 nohz_full=4-7 rcu_nocbs=4-7\n")
    for irq in (1, 9, 24, 57, 130):
        (root / f"proc/irq/{irq}/smp_affinity_list").write_text("0-3\n")
    (root / "sys/kernel/mm/transparent_hugepage/enabled").write_text("always madvise [never]\n")
    (root / "proc/swaps").write_text("Filename\tType\tSize\tUsed\tPriority\n")
    (root / "sys/devices/platform/gpu.0/power/control").write_text("on\n")
    (root / "var/lib/nvpmodel/status").write_text("pmode:0000 fmode:quiet\n")
    fake_device.add_process(root, 4242, "ollama", policy=1, rt_priority=80, vmlck_kb=2048)


def test_doctor_json_contract_on_an_untuned_tree(tmp_path):
    root = fake_device.build(tmp_path / "root")
    (root / "proc/swaps").write_text("Filename\tType\tSize\tUsed\tPriority\n/dev/zram0\tpartition\t1922080\t52000\t5\n")
    (root / "sys/kernel/mm/transparent_hugepage/enabled").write_text("[always] madvise never\n")
    fake_device.add_process(root, 777, "gnome-shell")
    fake_device.add_process(root, 4242, "ollama")
    out = doctor("--root", str(root), "--json")
    assert out.returncode == 1, out.stderr  # THP "always" and swap in use fail: the exit status says so
    checks = json.loads(out.stdout)
    assert [c["check"] for c in checks] == list(CHECK_IDS)
    for c in checks:
        assert set(c) == {"check", "status", "value", "recommended", "evidence"}
        assert c["status"] in ("ok", "warn", "fail", "unknown")
    by = {c["check"]: c for c in checks}
    assert by["preempt_rt"]["status"] == "warn" and by["preempt_rt"]["value"] is False
    assert by["cpu_governor"]["status"] == "warn" and by["cpu_governor"]["value"]["4"] == "schedutil"
    assert by["clocks_locked"]["status"] == "warn"
    assert by["nvpmodel"]["status"] == "warn" and by["nvpmodel"]["value"] == "2 (15W)"
    assert by["thp"]["status"] == "fail" and by["thp"]["value"] == "always"
    assert by["swap"]["status"] == "fail" and by["swap"]["value"]["used_bytes"] == 52000 * 1024
    assert by["desktop"]["status"] == "warn" and by["desktop"]["value"] == ["gnome-shell"]
    assert by["rt_sched"]["status"] == "warn" and "ollama" in by["rt_sched"]["evidence"]
    assert by["mlock"]["status"] == "warn"
    assert by["gpu_runtime_pm"]["status"] == "warn"
    assert by["irq_affinity"]["status"] == "unknown"  # nothing isolated: nothing to protect
    assert "/sys/kernel/mm/transparent_hugepage/enabled" in by["thp"]["evidence"]


def test_doctor_on_a_tuned_tree_is_all_ok(tmp_path):
    root = fake_device.build(tmp_path / "root")
    tune(root)
    checks = json.loads(doctor("--root", str(root), "--json").stdout)
    assert {c["check"]: c["status"] for c in checks} == dict.fromkeys(CHECK_IDS, "ok")


def test_doctor_irqs_on_isolated_cores_and_terminal_output(tmp_path):
    root = fake_device.build(tmp_path / "root")
    tune(root)
    (root / "proc/irq/57/smp_affinity_list").write_text("0-7\n")
    out = doctor("--root", str(root))
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if "irq_affinity" in line)
    assert "[WARN]" in line and "57" in line
    assert "IRQs kept off isolated cores" in line and "{" not in out.stdout and "null" not in out.stdout
    assert "11 ok, 1 warn" in out.stdout


@pytest.mark.django_db
def test_doctor_for_a_device_reads_its_published_state(store, monkeypatch, capsys):
    from django.core.management import call_command

    from advisors import telemetry

    monkeypatch.setattr(telemetry, "store", lambda: store)
    store.publish("orin1", [{"ts": 1763890000.0, "source": "tuning",
                             "state": {"thp": "never", "preempt_rt": True, "swap": {"enabled": False}}}])
    call_command("doctor", "--device", "orin1", "--json")
    by = {c["check"]: c["status"] for c in json.loads(capsys.readouterr().out)}
    assert by["thp"] == "ok" and by["preempt_rt"] == "ok" and by["swap"] == "ok"
    assert by["cpu_governor"] == "unknown"


def test_doctor_rejects_a_missing_root(tmp_path):
    out = doctor("--root", str(tmp_path / "nope"))
    assert out.returncode != 0 and "not a directory" in out.stderr


def test_doctor_exits_1_when_a_check_fails_and_says_so_in_words(tmp_path):
    root = fake_device.build(tmp_path / "root")
    (root / "sys/kernel/mm/transparent_hugepage/enabled").write_text("[always] madvise never\n")
    out = doctor("--root", str(root))
    assert out.returncode == 1
    line = next(line for line in out.stdout.splitlines() if "(cpu_governor)" in line)
    assert "schedutil on 8 of 8 CPUs" in line
    assert "exit status 1" in out.stdout


@pytest.mark.django_db
def test_doctor_names_an_unknown_device(store, monkeypatch):
    from django.core.management import CommandError, call_command

    from advisors import telemetry

    monkeypatch.setattr(telemetry, "store", lambda: store)
    with pytest.raises(CommandError, match="unknown device nosuch"):
        call_command("doctor", "--device", "nosuch")
