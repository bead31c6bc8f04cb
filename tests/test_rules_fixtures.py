"""`manage.py evaluate --json` over the per-rule fixture recordings (tests/fixtures/rules/build.py):
each rule fires on its positive cases, with the contract's labels and severity, and stays quiet on
its negative ones."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from advisors.rules import RULE_NAMES
from collectors.recording import load

RULES_DIR = Path(__file__).resolve().parent / "fixtures/rules"
T0 = 1_790_000_000.0


def evaluate(name: str) -> list[dict]:
    out = io.StringIO()
    call_command("evaluate", str(RULES_DIR / f"{name}.jsonl"), "--json", stdout=out)
    alerts = json.loads(out.getvalue())
    for alert in alerts:
        assert set(alert) == {"rule", "severity", "labels", "starts_at", "ends_at", "summary"}
        assert alert["rule"] in RULE_NAMES and alert["severity"] in ("info", "warning", "critical")
    return alerts


def only(alerts: list[dict], rule: str) -> list[dict]:
    return [a for a in alerts if a["rule"] == rule]


# file -> (rule, labels, severity, fires no earlier/later than (s from start), resolves at (s) or None)
POSITIVE = {
    "runtime_memory_near_ceiling__pos":
        ("runtime_memory_near_ceiling", {"runtime": "ollama"}, "warning", (90, 130), None),
    "runtime_memory_near_ceiling__hysteresis":
        ("runtime_memory_near_ceiling", {"runtime": "ollama"}, "warning", (30, 31), (120, 121)),
    "runtime_memory_over_ceiling__pos":
        ("runtime_memory_over_ceiling", {"runtime": "tensorrt_llm"}, "critical", (70, 90), None),
    "oom_kill__pos": ("oom_kill", {"runtime": "ollama"}, "critical", (60, 61), None),
    "memory_pressure_high__pos": ("memory_pressure_high", {}, "critical", (50, 80), None),
    "swap_in_use__pos": ("swap_in_use", {}, "warning", (0, 1), None),
    "reload_degradation__pos_gpt_oss":
        ("reload_degradation", {"runtime": "ollama", "model": "gpt-oss:20b"}, "warning", (201, 234), (440, 470)),
    "reload_degradation__pos_phi4":
        ("reload_degradation", {"runtime": "ollama", "model": "phi4:14b"}, "warning", (297, 330), None),
    "throughput_degradation__pos":
        ("throughput_degradation", {"runtime": "ollama", "model": "phi4:14b"}, "warning", (300, 330), None),
    "thermal_throttling__pos": ("thermal_throttling", {"zone": "gpu"}, "warning", (70, 100), None),
    "latency_slo_breach__pos":
        ("latency_slo_breach", {"runtime": "triton", "model": "yolo26n"}, "warning", (40, 71), (100, 131)),
    "irq_on_isolated_cpu__pos": ("irq_on_isolated_cpu", {"irq": "143", "cpu": "4"}, "warning", (0, 5), None),
    "runtime_down__pos": ("runtime_down", {"runtime": "triton"}, "critical", (50, 51), (100, 101)),
    "gpu_clock_not_locked__pos": ("gpu_clock_not_locked", {}, "warning", (5, 12), None),
    "gpu_clock_not_locked__pos_flag": ("gpu_clock_not_locked", {}, "warning", (0, 1), None),
    # issue 13: silence, failing sources, heat without configured hints, slow drift
    "device_down__pos": ("device_down", {}, "critical", (64, 66), (90, 91)),
    "agent_source_down__pos": ("agent_source_down", {"source": "jtop"}, "warning", (89, 91), (120, 121)),
    "thermal_throttling__pos_orin_nano_no_hints": ("thermal_throttling", {"zone": "gpu"}, "warning", (70, 100), None),
    "thermal_throttling__pos_evidence": ("thermal_throttling", {"zone": "gpu"}, "warning", (70, 100), None),
    "throughput_degradation__pos_drift": (
        "throughput_degradation", {"runtime": "ollama", "model": "gpt-oss:20b"}, "warning", (2400, 3600), None),
}

NEGATIVE = {
    "runtime_memory_near_ceiling__neg": ["runtime_memory_near_ceiling", "runtime_memory_over_ceiling"],
    "runtime_memory_over_ceiling__neg": ["runtime_memory_over_ceiling"],
    "oom_kill__neg": ["oom_kill"],
    "memory_pressure_high__neg": ["memory_pressure_high"],
    "swap_in_use__neg": ["swap_in_use"],
    "reload_degradation__neg_noise": ["reload_degradation", "throughput_degradation"],
    "reload_degradation__neg_harmless_reload": ["reload_degradation", "throughput_degradation"],
    "reload_degradation__neg_real_llamacpp": ["reload_degradation", "throughput_degradation"],
    "throughput_degradation__neg": ["throughput_degradation", "reload_degradation"],
    "thermal_throttling__neg_cool_clock_drop": ["thermal_throttling"],
    "thermal_throttling__neg_hot_steady_clock": ["thermal_throttling"],
    "latency_slo_breach__neg": ["latency_slo_breach"],
    "irq_on_isolated_cpu__neg": ["irq_on_isolated_cpu"],
    "runtime_down__neg": ["runtime_down"],
    "gpu_clock_not_locked__neg_policy_off": ["gpu_clock_not_locked"],
    "gpu_clock_not_locked__neg_locked": ["gpu_clock_not_locked"],
    "device_down__neg": ["device_down"],
    "agent_source_down__neg": ["agent_source_down"],
    "thermal_throttling__neg_hot_idle": ["thermal_throttling"],
    "throughput_degradation__neg_noise_hour": ["throughput_degradation", "reload_degradation"],
    "memory_pressure_high__neg_blip": ["memory_pressure_high"],
}


def test_every_rule_has_a_positive_and_a_negative_fixture():
    assert {rule for rule, *_ in POSITIVE.values()} == set(RULE_NAMES)
    names = {p.stem for p in RULES_DIR.glob("*.jsonl")}
    assert set(POSITIVE) | set(NEGATIVE) == names
    for rule in RULE_NAMES:
        assert any(rule in rules for rules in NEGATIVE.values()), rule


@pytest.mark.parametrize("name", sorted(POSITIVE))
def test_positive_fixture_fires(name):
    rule, labels, severity, (earliest, latest), resolves = POSITIVE[name]
    hits = [a for a in only(evaluate(name), rule) if a["labels"] == labels]
    assert len(hits) == 1, hits
    alert = hits[0]
    assert alert["labels"] == labels and alert["severity"] == severity
    assert earliest <= alert["starts_at"] - T0 <= latest, alert
    assert alert["summary"]
    if resolves is None:
        assert alert["ends_at"] is None
    else:
        assert resolves[0] <= alert["ends_at"] - T0 <= resolves[1], alert


@pytest.mark.parametrize("name", sorted(NEGATIVE))
def test_negative_fixture_stays_quiet(name):
    alerts = evaluate(name)
    assert [a for a in alerts if a["rule"] in NEGATIVE[name]] == []


def test_reload_degradation_fires_within_three_requests_of_the_reload():
    rec = load(RULES_DIR / "reload_degradation__pos_gpt_oss.jsonl")
    reload_ts = next(r["ts"] for r in rec.records if r.get("event", {}).get("kind") == "model_loaded")
    after = [r["ts"] for r in rec.records if "request" in r and r["ts"] > reload_ts]
    alert = only(evaluate("reload_degradation__pos_gpt_oss"), "reload_degradation")[0]
    assert reload_ts < alert["starts_at"] <= after[2]
    assert "37." in alert["summary"] or "baseline" in alert["summary"]


def test_runtime_down_reports_a_runtime_that_stops_reporting():
    stale = [a for a in only(evaluate("runtime_down__pos"), "runtime_down") if a["labels"] == {"runtime": "ollama"}]
    assert len(stale) == 1 and stale[0]["severity"] == "warning"
    assert 54 <= stale[0]["starts_at"] - T0 <= 57 and "stopped reporting" in stale[0]["summary"]


def test_memory_near_ceiling_forecasts_time_to_ceiling():
    alert = only(evaluate("runtime_memory_near_ceiling__pos"), "runtime_memory_near_ceiling")[0]
    assert "ollama reaches its ceiling in ~" in alert["summary"]


def test_thresholds_come_from_the_config(tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"runtimes": [{"name": "ollama", "kind": "ollama"}],
                               "thresholds": {"degradation_drop_ratio": 0.9}}))
    out = io.StringIO()
    call_command("evaluate", str(RULES_DIR / "reload_degradation__pos_phi4.jsonl"), "--json", "--config", str(cfg),
                 stdout=out)
    assert only(json.loads(out.getvalue()), "reload_degradation") == []


def test_a_silent_device_freezes_its_other_alerts():
    """While device_down fires, swap_in_use keeps its last state (a 30 s window would otherwise
    have resolved it 30 s into the silence), and nothing else starts or ends."""
    alerts = evaluate("device_down__pos")
    swap = only(alerts, "swap_in_use")
    assert len(swap) == 1 and swap[0]["ends_at"] is None
    down = only(alerts, "device_down")[0]
    during = [a for a in alerts if down["starts_at"] < a["starts_at"] < down["ends_at"]]
    assert [a["rule"] for a in during] == []


def test_the_hint_less_orin_nano_uses_the_board_trip_point():
    alert = only(evaluate("thermal_throttling__pos_orin_nano_no_hints"), "thermal_throttling")[0]
    assert "99 °C board default throttle point" in alert["summary"]
    evidence = only(evaluate("thermal_throttling__pos_evidence"), "thermal_throttling")[0]
    assert "no throttle point known" in evidence["summary"] and "97% GPU load" in evidence["summary"]


def test_a_blip_does_not_page_but_the_same_level_sustained_does(tmp_path):
    """`for`: one PSI sample at thrashing levels fires nothing; held for the rule's `for` it fires."""
    from advisors.config import DEFAULT_FOR_S

    hold = DEFAULT_FOR_S["memory_pressure_high"]
    assert hold > 0
    records = [{"ts": T0 + i, "source": "psi", "values": {
        "memory_pressure_full_ratio": 0.3 if 10 <= i < 20 else 0.0}} for i in range(30)]
    rec = tmp_path / "held.jsonl"
    rec.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    out = io.StringIO()
    call_command("evaluate", str(rec), "--json", stdout=out)
    fired = only(json.loads(out.getvalue()), "memory_pressure_high")
    assert len(fired) == 1 and fired[0]["starts_at"] - T0 == 10 + hold


ALERTS_MD = Path(__file__).resolve().parent.parent / "advisors/ALERTS.md"


def test_every_summary_says_what_to_do_in_one_unit_convention():
    import re

    seen = set()
    for path in sorted(RULES_DIR.glob("*.jsonl")):
        for alert in evaluate(path.stem):
            seen.add(alert["rule"])
            summary = alert["summary"]
            assert "What to do: " in summary, summary
            assert summary.endswith(f"See advisors/ALERTS.md#{alert['rule']}"), summary
            assert not re.search(r"\d (GB|MB|KB)\b", summary), summary
    assert seen == set(RULE_NAMES)


def test_every_rule_has_its_alerts_md_section():
    text = ALERTS_MD.read_text(encoding="utf-8")
    for rule in RULE_NAMES:
        assert f"\n### {rule}\n" in text, rule
