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
