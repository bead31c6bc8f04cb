"""One config resolution live and offline: what the device publishes (agent, replay, recording
header) overridden field by field by Settings; the lifecycle's pure `transitions`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from advisors.alerting import device_config, evaluate_batch
from advisors.config import resolve
from advisors.engine import transitions
from advisors.models import Alert, DeviceSettings
from advisors.rules import Finding, Window
from advisors.rules.thermal import thermal_throttling
from collectors.agent import Agent
from collectors.device_config import agent_state, trip_points
from collectors.recording import load
from collectors.replay import replay

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "collectors/demo/agx-orin-demo.jsonl"
OLLAMA = 'runtime_memory_bytes{runtime="ollama"}'


def test_settings_override_the_device_config_field_by_field():
    device = {"runtimes": [{"name": "ollama", "kind": "ollama", "ceiling_bytes": 3e9, "priority": "background"}],
              "slos": [{"runtime": "triton", "model": "y", "deadline_s": 0.04}],
              "isolated_cpus": "4-7", "want_locked_clocks": True, "thresholds": {"window_s": 120},
              "throttle_celsius": {"gpu": 95.0}}
    # a Settings row that only raises one ceiling and one threshold leaves everything else the device's
    row = DeviceSettings(device="d", runtimes=[{"name": "ollama", "ceiling_bytes": 4e9}],
                         thresholds={"swap_in_use_bytes": 1}).config()
    cfg = resolve(device, row)
    assert [(r["name"], r["ceiling_bytes"], r["priority"]) for r in cfg["runtimes"]] == [("ollama", 4e9, "background")]
    assert cfg["slos"] == device["slos"] and cfg["isolated_cpus"] == "4-7" and cfg["want_locked_clocks"] is True
    assert cfg["thresholds"]["window_s"] == 120 and cfg["thresholds"]["swap_in_use_bytes"] == 1
    assert cfg["throttle_celsius"] == {"gpu": 95.0}
    # a new runtime or SLO in Settings is added beside the device's
    cfg = resolve(device, {"runtimes": [{"name": "triton", "kind": "triton"}], "isolated_cpus": "2-3"})
    assert [r["name"] for r in cfg["runtimes"]] == ["ollama", "triton"] and cfg["isolated_cpus"] == "2-3"
    # junk from a device is dropped field by field, never raised
    cfg = resolve({"runtimes": "ollama", "slos": [1, {"runtime": "t", "model": "m", "deadline_s": 1}],
                   "isolated_cpus": 7}, None)
    assert cfg["slos"] == [{"runtime": "t", "model": "m", "deadline_s": 1}] and cfg["isolated_cpus"] == ""
    assert resolve("not a dict", ["nor this"])["runtimes"]  # the defaults


def test_the_agent_reads_trip_points_and_isolated_cpus_from_its_tree(tmp_path):
    zone = tmp_path / "sys/class/thermal/thermal_zone1"
    zone.mkdir(parents=True)
    (zone / "type").write_text("gpu-thermal\n")
    for n, (kind, temp) in enumerate([("active", 50000), ("passive", 99000), ("passive", 97000), ("critical", 105000)]):
        (zone / f"trip_point_{n}_type").write_text(kind + "\n")
        (zone / f"trip_point_{n}_temp").write_text(f"{temp}\n")
    hot = tmp_path / "sys/class/thermal/thermal_zone2"
    hot.mkdir()
    (hot / "type").write_text("cpu-thermal\n")
    (hot / "trip_point_0_type").write_text("hot\n")
    (hot / "trip_point_0_temp").write_text("not a number\n")
    cpu = tmp_path / "sys/devices/system/cpu"
    cpu.mkdir(parents=True)
    (cpu / "isolated").write_text("4-5\n")
    assert trip_points(tmp_path) == {"gpu-thermal": 97.0}
    state = agent_state(tmp_path, [], {"kind": "jetson", "model": "NVIDIA Jetson Orin Nano"})
    assert state["throttle_celsius"] == {"gpu-thermal": 97.0}
    assert state["config"] == {"isolated_cpus": "4-5", "board": {"kind": "jetson", "model": "NVIDIA Jetson Orin Nano"}}
    # the board-reported point wins over the board default, under the device config
    w = Window(now=100, state={"throttle_celsius": state["throttle_celsius"]})
    w.series['temperature_celsius{zone="gpu"}'] = [(100, 98.0)]
    found = thermal_throttling(w, resolve(state["config"], None), set())
    assert "97 °C board-reported throttle point" in found[0].summary and found[0].severity == "critical"


@pytest.mark.django_db
def test_live_rules_use_the_config_the_agent_publishes(store, tmp_path):
    """An agent publishes its config (a 3 GB Ollama ceiling) into its state: the live rules use it,
    a Settings row overrides it field by field, and device_config() (pages, doctor) agrees."""
    class Mem:
        name, interval = "mem", 1.0

        def collect(self, now):
            return [{"ts": now, "source": "mem", "values": {OLLAMA: 3.2e9}}]

        def close(self):
            pass

    agent = Agent("cfg-1", [Mem()], store)
    agent.device_state = {"config": {"runtimes": [{"name": "ollama", "kind": "ollama", "ceiling_bytes": 3e9}]}}
    now = agent.tick()[0]["ts"]
    agent.close()
    assert store.latest("cfg-1")["state"]["config"]["runtimes"][0]["ceiling_bytes"] == 3e9
    assert device_config("cfg-1", store)["runtimes"][0]["ceiling_bytes"] == 3e9
    result = evaluate_batch(store, ["cfg-1"], now).results["cfg-1"]
    assert [a.rule for a in result["fired"]] == ["runtime_memory_over_ceiling"]
    DeviceSettings.objects.create(device="cfg-1", runtimes=[{"name": "ollama", "ceiling_bytes": 8e9}])
    assert device_config("cfg-1", store)["runtimes"][0]["ceiling_bytes"] == 8e9
    assert [a.rule for a in evaluate_batch(store, ["cfg-1"], now + 0.5).results["cfg-1"]["resolved"]] == [
        "runtime_memory_over_ceiling"]


@pytest.mark.django_db
def test_the_demo_fires_live_what_evaluate_prints(store):
    """Issue 13: `evaluate` on the demo recording fired 10 alerts where the live demo fired 1 (the
    live path ignored the recording's config). Replayed at once and evaluated once at its end, the
    live path now fires the same rules on the same labels as evaluate at the same instant."""
    recording = load(DEMO)
    out = io.StringIO()
    call_command("evaluate", str(DEMO), "--json", stdout=out)
    offline = {(a["rule"], json.dumps(a["labels"], sort_keys=True)) for a in json.loads(out.getvalue())
               if a["ends_at"] is None}
    replay(recording, store, "demo-live", speed=0)
    now = store.latest("demo-live")["ts"]
    evaluate_batch(store, ["demo-live"], now)
    evaluate_batch(store, ["demo-live"], now + 3.0)  # rules with a `for` (3 s) confirm on a later cycle
    live = {(a.rule, json.dumps(a.labels, sort_keys=True))
            for a in Alert.objects.filter(device="demo-live", state=Alert.FIRING)}
    assert len(offline) >= 3 and live >= {k for k in offline if not k[0].endswith("degradation")}


class A:
    def __init__(self, rule: str, severity: str = "warning", summary: str = "s") -> None:
        self.rule, self.severity, self.summary = rule, severity, summary


def test_transitions_is_the_lifecycle():
    f = Finding("swap_in_use", "warning", {}, "s")
    plan = transitions({}, [f], 10.0)
    assert [fp for fp, _ in plan.fire] and not plan.resolve
    fp = plan.fire[0][0]
    # escalation (news) vs a changed summary (not news)
    assert transitions({fp: A("swap_in_use")}, [Finding("swap_in_use", "critical", {}, "s")], 11).escalate
    assert transitions({fp: A("swap_in_use")}, [Finding("swap_in_use", "warning", {}, "t")], 11).update
    assert transitions({fp: A("swap_in_use")}, [], 12).resolve == [fp]
    # `for`: pending first, fired once held; a blip leaves nothing behind
    held = transitions({}, [f], 10.0, for_s={"swap_in_use": 3})
    assert not held.fire and held.pending == {fp: 10.0}
    assert transitions({}, [f], 13.0, pending=held.pending, for_s={"swap_in_use": 3}).fire
    assert transitions({}, [], 11.0, pending=held.pending, for_s={"swap_in_use": 3}).pending == {}
    # device_down freezes the rest: nothing resolves, nothing new fires
    down = Finding("device_down", "critical", {}, "silent")
    plan = transitions({fp: A("swap_in_use")}, [down, Finding("oom_kill", "critical", {}, "x")], 20.0)
    assert [x.rule for _, x in plan.fire] == ["device_down"] and plan.resolve == []


def test_settings_thresholds_override_throttle_points_and_for_per_key():
    device = {"throttle_celsius": {"gpu": 95.0, "cpu": 96.0}, "for_s": {"thermal_throttling": 10}}
    cfg = resolve(device, {"thresholds": {"throttle_celsius": {"gpu": 90.0}, "for_s": {"swap_in_use": 5}}})
    assert cfg["throttle_celsius"] == {"gpu": 90.0, "cpu": 96.0}
    assert cfg["for_s"]["thermal_throttling"] == 10 and cfg["for_s"]["swap_in_use"] == 5


def test_junk_numbers_from_a_device_are_dropped_not_fatal():
    cfg = resolve({"thresholds": {"window_s": "abc", "stale_after_s": 20, "irq_ignore": "LOC"},
                   "throttle_celsius": {"gpu": "hot", "cpu": 95}, "for_s": {"swap_in_use": None}}, None)
    assert cfg["thresholds"]["window_s"] == 300 and cfg["thresholds"]["stale_after_s"] == 20
    assert isinstance(cfg["thresholds"]["irq_ignore"], list)
    assert cfg["throttle_celsius"] == {"cpu": 95} and cfg["for_s"]["swap_in_use"] == 0.0


def test_settings_can_switch_off_locked_clocks_a_device_asks_for():
    """Locked GPU clocks in Settings: "as the device says" (None) keeps the device's own, "not
    required" (False) switches off the demand a device's config makes, "required" (True) adds it."""
    device = {"want_locked_clocks": True}
    assert resolve(device, DeviceSettings(device="d").config())["want_locked_clocks"] is True
    assert resolve(device, DeviceSettings(device="d", want_locked_clocks=False).config())["want_locked_clocks"] is False
    assert resolve({}, DeviceSettings(device="d", want_locked_clocks=True).config())["want_locked_clocks"] is True
    assert "want_locked_clocks" not in DeviceSettings(device="d").config()
