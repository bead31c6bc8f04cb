"""Recommendations are plain functions of (state, values, alerts, config): no database here."""

from __future__ import annotations

from advisors.config import merged
from advisors.recommend import last_used_from_requests, recommend, safe_set
from collectors.actions.registry import ACTIONS

UNTUNED = {
    "preempt_rt": False,
    "cpu_governor": {str(c): "schedutil" for c in range(6)},
    "clocks_locked": {"cpu": False, "gpu": False, "emc": None},
    "nvpmodel": {"id": 1, "name": "7W"},
    "isolcpus": None, "isolated_cpus": "4-5", "nohz_full_cpus": "",
    "irq_affinity": {"isolated": "4-5", "irqs_on_isolated": ["24", "57"]},
    "thp": "always",
    "swap": {"enabled": True, "total_bytes": 8 << 30, "used_bytes": 300 << 20, "devices": []},
    "desktop": {"running": True, "processes": ["gnome-shell"]},
    "rt_sched": {"ollama": {"policies": {"SCHED_OTHER": 12}, "max_rt_priority": 0}},
    "mlock": {"ollama": 0},
    "gpu_runtime_pm": {"17000000.gpu": "auto"},
}
CONFIG = merged({"runtimes": [
    {"name": "triton", "kind": "triton", "priority": "critical", "container": "triton"},
    {"name": "ollama", "kind": "ollama", "priority": "background", "ceiling_bytes": 5.5e9, "service": "ollama.service"},
    {"name": "llama", "kind": "llamacpp", "priority": "background"},
    {"name": "trt", "kind": "tensorrt_llm", "priority": "essential"},
]})


def by_id(recs):
    return {r["id"]: r for r in recs}


def test_every_tuning_recommendation_has_evidence_why_risk_and_a_valid_action():
    recs = by_id(recommend(UNTUNED, {"ram_available_bytes": 2e9}, [], CONFIG))
    expected = {"preempt_rt", "cpu_governor", "clocks_locked", "nvpmodel", "isolcpus", "irq_affinity", "thp",
                "swap", "desktop", "rt_sched", "mlock", "gpu_runtime_pm"}
    assert expected <= set(recs)
    for rec in recs.values():
        assert rec["evidence"]["where"] and rec["why"].endswith(".") and rec["risk"]
        assert isinstance(rec["needs_reboot"], bool)
        if rec["action"]:
            # what the advisor proposes must pass the agent's own context-free validation
            ACTIONS[rec["action"]["action"]].validate(rec["action"]["params"], None)
    assert recs["preempt_rt"]["needs_reboot"] and recs["preempt_rt"]["action"] is None
    assert recs["isolcpus"]["needs_reboot"]
    # governor only on the inference (isolated) cores
    assert recs["cpu_governor"]["action"] == {"action": "set_governor",
                                              "params": {"cpus": "4-5", "value": "performance"}}
    assert recs["irq_affinity"]["action"] == {"action": "irq_affinity", "params": {"irq": "all", "cpus": "0-3"}}
    assert recs["thp"]["evidence"]["value"] == "always" and recs["thp"]["status"] == "fail"
    assert recs["clocks_locked"]["action"] == {"action": "jetson_clocks", "params": {"on": True}}
    assert recs["desktop"]["action"]["params"] == {"op": "stop", "name": "gdm3.service"}
    assert recs["nvpmodel"]["action"] == {"action": "nvpmodel", "params": {"mode": "MAXN"}}


def test_safe_set_is_reversible_tuning_only():
    recs = recommend(UNTUNED, {"ram_available_bytes": 2e9}, [], CONFIG)
    steps = safe_set(recs)
    names = [s["action"] for s in steps]
    assert names == ["set_governor", "jetson_clocks", "irq_affinity", "thp", "swapoff",
                     "gpu_runtime_pm"]
    assert all(ACTIONS[n].safe for n in names)
    # swap: with little free RAM, swapoff is not "safe" (it can wake the OOM killer)
    tight = safe_set(recommend(UNTUNED, {"ram_available_bytes": 400e6}, [], CONFIG))
    assert "swapoff" not in [s["action"] for s in tight]


def test_a_tuned_device_gets_no_tuning_advice():
    tuned = {**UNTUNED, "preempt_rt": True, "cpu_governor": {str(c): "performance" for c in range(6)},
             "clocks_locked": {"cpu": True, "gpu": True, "emc": True}, "nvpmodel": {"id": 0, "name": "MAXN"},
             "nohz_full_cpus": "4-5", "irq_affinity": {"isolated": "4-5", "irqs_on_isolated": []}, "thp": "never",
             "swap": {"enabled": False}, "desktop": {"running": False}, "gpu_runtime_pm": {"gpu": "on"},
             "rt_sched": {"ollama": {"policies": {"SCHED_FIFO": 4}, "max_rt_priority": 80}}, "mlock": {"ollama": 4096}}
    assert recommend(tuned, {}, [], CONFIG) == []


VALUES = {
    'runtime_model_bytes{model="gpt-oss:20b",runtime="ollama"}': 3.2e9,
    'runtime_model_bytes{model="llama3.2:3b",runtime="ollama"}': 2.0e9,
    'runtime_model_vram_bytes{model="llama3.2:3b",runtime="ollama"}': 2.0e9,
    'runtime_model_vram_bytes{model="gpt-oss:20b",runtime="ollama"}': 1.6e9,
    'runtime_model_bytes{model="yolo",runtime="triton"}': 0.4e9,
}
REQUESTS = [{"ts": 100.0, "source": "request", "request": {"runtime": "ollama", "model": "llama3.2:3b"}},
            {"ts": 200.0, "source": "request", "request": {"runtime": "ollama", "model": "gpt-oss:20b"}},
            {"ts": 150.0, "source": "request", "request": {"runtime": "triton", "model": "yolo"}}]


def test_ceiling_breach_evicts_the_lru_background_model():
    last = last_used_from_requests(REQUESTS)
    alerts = [{"rule": "runtime_memory_over_ceiling", "labels": {"runtime": "ollama"},
               "summary": "ollama 5.6 GB > 5.5 GB"}]
    recs = by_id(recommend({}, VALUES, alerts, CONFIG, last))
    rec = recs["evict:ollama:llama3.2:3b"]  # used at 100, before gpt-oss (200): the LRU one
    assert rec["action"] == {"action": "evict", "params": {"runtime": "ollama", "model": "llama3.2:3b"}}
    assert rec["auto_ok"] is True and "ollama 5.6 GB" in rec["evidence"]["value"]


def test_critical_runtime_is_never_the_eviction_target():
    last = last_used_from_requests(REQUESTS)
    alerts = [{"rule": "runtime_memory_near_ceiling", "labels": {"runtime": "triton"}}]
    recs = recommend({}, VALUES, alerts, CONFIG, last)
    targets = [r["action"]["params"]["runtime"] for r in recs if r["action"] and r["action"]["action"] == "evict"]
    assert targets and "triton" not in targets
    assert all(not r["auto_ok"] for r in recs)  # near (not over) ceiling: advice, not automatic


def test_slo_breach_of_critical_runtime_throttles_a_background_one():
    alerts = [{"rule": "latency_slo_breach", "labels": {"runtime": "triton", "model": "yolo"},
               "summary": "97% < 99.9%"}]
    recs = by_id(recommend({}, {}, alerts, CONFIG, last_used_from_requests(REQUESTS)))
    rec = recs["throttle:ollama"]
    assert rec["action"]["action"] == "throttle" and rec["action"]["params"]["runtime"] == "ollama"
    assert rec["auto_ok"] is False
    # a background runtime missing its own SLO does not throttle anything
    assert not [r for r in recommend({}, {}, [{"rule": "latency_slo_breach", "labels": {"runtime": "ollama"}}],
                                     CONFIG) if r["id"].startswith("throttle")]


def test_reload_degradation_restarts_service_or_container():
    alerts = [{"rule": "reload_degradation", "labels": {"runtime": "ollama", "model": "gpt-oss:20b"}},
              {"rule": "reload_degradation", "labels": {"runtime": "triton", "model": "yolo"}},
              {"rule": "reload_degradation", "labels": {"runtime": "llama", "model": "q"}}]
    recs = by_id(recommend({}, {}, alerts, CONFIG))
    assert recs["restart:ollama"]["action"] == {"action": "service",
                                                "params": {"op": "restart", "name": "ollama.service"}}
    assert recs["restart:triton"]["action"] == {"action": "restart_container", "params": {"name": "triton"}}
    assert recs["restart:llama"]["action"] is None


def test_spilled_model_gets_memory_freed():
    recs = by_id(recommend({}, VALUES, [], CONFIG, last_used_from_requests(REQUESTS)))
    rec = recs["spill:ollama:gpt-oss:20b"]
    assert rec["evidence"]["value"].startswith("50% on GPU")
    assert rec["action"] == {"action": "evict", "params": {"runtime": "ollama", "model": "llama3.2:3b"}}
    assert "spill:ollama:llama3.2:3b" not in recs


def test_fan_advice_when_hot_and_slow():
    values = {'temperature_celsius{zone="tj"}': 78.0, 'fan_speed_ratio{fan="pwmfan0"}': 0.2}
    assert "fan" in by_id(recommend({}, values, [], CONFIG))
    values['fan_speed_ratio{fan="pwmfan0"}'] = 0.9
    assert "fan" not in by_id(recommend({}, values, [], CONFIG))


def test_older_simpler_state_shapes_are_understood():
    demo = {"preempt_rt": False, "thp": "always", "nvpmodel": "MAXN", "jetson_clocks": False, "isolated_cpus": "",
            "swap_enabled": True, "cpu_governor": {"0-11": "schedutil"}}
    recs = by_id(recommend(demo, {}, [], CONFIG))
    assert recs["cpu_governor"]["action"]["params"] == {"cpus": "0-11", "value": "performance"}
    assert recs["clocks_locked"]["action"] == {"action": "jetson_clocks", "params": {"on": True}}
    assert "nvpmodel" not in recs and recs["swap"]["status"] == "warn"
