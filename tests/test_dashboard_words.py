"""Words, not data: every checklist value, recommendation and action in words and units; advice that
fits the host (its real CPUs, GRUB or extlinux); the confirmation's old -> new and its unticked risky
steps; an expired action naming its real cause."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

import pytest

from advisors.recommend import recommend, run_checks
from advisors.recommend.words import change, check_title, cpu_list, describe, describe_action, plain
from thoxdash.advisor_views import confirm_steps

RAW = re.compile(r'[{}\[\]]|"\s*:|\bTrue\b|\bFalse\b|\bNone\b|\bnull\b')

JETSON = {"preempt_rt": False, "thp": "always", "nvpmodel": {"id": 0, "name": "MAXN"},
          "clocks_locked": {"cpu": False, "gpu": False, "emc": False}, "isolated_cpus": "",
          "cpu_governor": {str(c): "schedutil" for c in range(12)},
          "swap": {"enabled": True, "total_bytes": 32 * 2**30, "used_bytes": 1937 * 2**20},
          "irq_affinity": {"isolated": "10-11", "irqs_on_isolated": ["143", "24"]},
          "rt_sched": {"ollama": {"policies": {"SCHED_OTHER": 4}, "max_rt_priority": 0}},
          "mlock": {"ollama": 0}, "gpu_runtime_pm": {"17000000.ga10b": "auto"},
          "desktop": {"running": True, "processes": ["gnome-shell"]}}
X86_VM = {"preempt_rt": False, "thp": "madvise", "isolated_cpus": "", "swap": {"enabled": False},
          "clocks_locked": {"cpu": None, "gpu": None, "emc": None}}


def test_every_check_reads_in_words():
    for check in run_checks(JETSON, {}):
        text = describe(check["check"], check["value"])
        assert not RAW.search(text), (check["check"], text)
        assert check_title(check["check"]) != check["check"]  # a title, not the snake_case id
    by = {c["check"]: describe(c["check"], c["value"]) for c in run_checks(JETSON, {})}
    assert by["cpu_governor"] == "schedutil on 12 of 12 CPUs"
    assert by["swap"] == "on: 1.9 GiB of 32.0 GiB used"
    assert by["clocks_locked"] == "not locked: CPU, EMC, GPU"
    assert by["preempt_rt"] == "stock kernel (not real-time)"
    assert by["irq_affinity"] == "2 IRQs (143, 24) may run on isolated CPUs 10-11"


def test_mixed_governors_are_summarised():
    assert describe("cpu_governor", {"0": "performance", "1": "performance", "2": "schedutil"}) == \
        "performance on 2 of 3 CPUs; schedutil on 1 of 3 CPUs"
    assert cpu_list([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert plain({"a_bytes": True, "b": None, "c": [1, 2]}) == "a: yes; b: —; c: 1, 2"


def test_actions_in_words():
    text = describe_action({"action": "batch", "params": {"steps": [
        {"action": "set_governor", "params": {"cpus": "0-11", "value": "performance"}},
        {"action": "thp", "params": {"mode": "never"}}, {"action": "swapoff", "params": {}}]}})
    assert text.startswith("3 tuning steps: set the CPU governor to performance on CPUs 0-11; ")
    assert not RAW.search(text)


def test_isolcpus_advice_fits_the_host():
    jetson = {c["check"]: c for c in run_checks(JETSON, {})}["isolcpus"]["recommended"]
    assert jetson.startswith("isolcpus=10,11 ") and "extlinux" in jetson
    vm = {c["check"]: c for c in run_checks(X86_VM, {"online_cpus": "0,1"})}["isolcpus"]["recommended"]
    assert "this host has 2" in vm and "extlinux" not in vm and "4,5" not in vm
    big = {c["check"]: c for c in run_checks(X86_VM, {"online_cpus": "0-15"})}["isolcpus"]["recommended"]
    assert big.startswith("isolcpus=14,15 ") and "GRUB_CMDLINE_LINUX" in big


def test_confirmation_lists_old_to_new_and_unticks_risky_steps():
    recs = recommend(JETSON, {"ram_available_bytes": 40e9}, [], {})
    steps = {s["id"]: s for s in confirm_steps([r for r in recs if r.get("action")], JETSON)}
    assert (steps["thp"]["old"], steps["thp"]["new"], steps["thp"]["checked"]) == ("always", "never", True)
    assert steps["cpu_governor"]["old"] == "schedutil on 12 of 12 CPUs"
    assert steps["swap"]["risk_level"] == "medium" and steps["swap"]["checked"] is False
    assert steps["swap"]["old"] == "on: 1.9 GiB of 32.0 GiB used" and steps["swap"]["new"] == "off"
    for step in steps.values():
        assert step["checked"] == (step["risk_level"] == "low")
    assert change({"action": "jetson_clocks", "params": {"on": True}}, JETSON)["new"] == "locked: CPU, EMC, GPU"


@pytest.mark.django_db
def test_an_expired_request_names_its_real_cause(store, monkeypatch, settings):
    from advisors import actions as act
    from advisors import telemetry

    settings.AGENT_KEY = "k"
    monkeypatch.setattr(telemetry, "store", lambda: store)
    store.register_device("replayed", board={}, replay=True)
    store.publish("replayed", [{"ts": time.time(), "source": "jtop", "values": {"gpu_load_ratio": 0.1}}])
    row = act.request_action(store, "replayed", "thp", {"mode": "never"})
    row.expires_at = datetime.now(tz=timezone.utc) - timedelta(seconds=act.GRACE_S + 5)
    row.save()
    reason = act.refresh(store, row).result["reason"]
    assert "replayed from a recording" in reason and "THOXDASH_AGENT_KEY" not in reason
    store.register_device("silent", board={})
    row = act.request_action(store, "silent", "thp", {"mode": "never"})
    row.expires_at = datetime.now(tz=timezone.utc) - timedelta(seconds=act.GRACE_S + 5)
    row.save()
    assert "no agent has ever read" in act.refresh(store, row).result["reason"]
