"""The rules as plain functions (no Django, no database): hysteresis, counters, memory."""

from __future__ import annotations

from advisors.config import merged, parse_cpulist
from advisors.engine import Lifecycle
from advisors.rules import Finding, Window, run_rules
from advisors.rules.base import fingerprint
from advisors.rules.irq import irq_on_isolated_cpu
from advisors.rules.latency import latency_slo_breach, quantile
from advisors.rules.oom import counter_increase, oom_kill
from advisors.rules.pressure import memory_pressure_high, swap_in_use
from advisors.rules.runtime import runtime_down
from advisors.rules.thermal import thermal_throttling
from advisors.rules.throughput import decode_speed, degradation


def cfg(**config) -> dict:
    return merged(config)


def test_parse_cpulist():
    assert parse_cpulist("4-7,9") == {"4", "5", "6", "7", "9"}
    assert parse_cpulist("") == set() and parse_cpulist("x,2") == {"2"}


def test_counter_increase_survives_resets():
    assert counter_increase([(0, 5), (1, 7), (2, 1), (3, 2)], since=0) == 2 + 1 + 1
    assert counter_increase([(0, 5), (1, 7)], since=5) == 0


def test_oom_counter_maps_cgroup_to_runtime_and_holds():
    w = Window(now=100, series={'cgroup_oom_kills_total{cgroup="/docker/ollama-1"}': [(10, 0.0), (20, 1.0)]})
    [f] = oom_kill(w, cfg(), set())
    assert f.labels == {"runtime": "ollama"} and f.severity == "critical"
    w.now = 20 + 301
    assert oom_kill(w, cfg(), set()) == []


def test_pressure_hysteresis():
    w = Window(now=10, series={"memory_pressure_some_ratio": [(10, 0.45)]})
    [f] = memory_pressure_high(w, cfg(), set())
    assert f.severity == "warning"
    w.series["memory_pressure_some_ratio"] = [(11, 0.35)]
    assert memory_pressure_high(w, cfg(), {f.fingerprint}) != []  # still above 0.40 x 0.75
    assert memory_pressure_high(w, cfg(), set()) == []
    w.series["memory_pressure_full_ratio"] = [(11, 0.2)]
    assert memory_pressure_high(w, cfg(), set())[0].severity == "critical"


def test_swap_clears_below_half_the_threshold():
    w = Window(now=10, series={"swap_used_bytes": [(10, 50 * 2**20)]})
    probe = Finding("swap_in_use", "warning").fingerprint
    assert swap_in_use(w, cfg(), set()) == [] and swap_in_use(w, cfg(), {probe}) != []


def test_irq_ignores_per_cpu_interrupts_and_uses_state_when_config_is_silent():
    series = {'irq_interrupts_total{cpu="5",irq="LOC"}': [(0, 0.0), (30, 9000.0)],
              'irq_interrupts_total{cpu="5",irq="IPI1"}': [(0, 0.0), (30, 9000.0)],
              'irq_interrupts_total{cpu="5",irq="88"}': [(0, 0.0), (30, 300.0)]}
    w = Window(now=30, series=series, state={"isolated_cpus": "4-5"})
    [f] = irq_on_isolated_cpu(w, cfg(), set())
    assert f.labels == {"irq": "88", "cpu": "5"} and "10.0/s" in f.summary
    assert irq_on_isolated_cpu(Window(now=30, series=series), cfg(), set()) == []


def test_runtime_down_keeps_firing_after_its_series_leaves_the_window():
    w = Window(now=1000, series={"gpu_load_ratio": [(999, 0.5)]})
    probe = Finding("runtime_down", "critical", {"runtime": "ollama"}).fingerprint
    assert runtime_down(w, cfg(), set()) == []
    assert [f.labels for f in runtime_down(w, cfg(), {probe})] == [{"runtime": "ollama"}]
    w.series = {}  # the whole device went quiet: that is not this rule's business
    assert runtime_down(w, cfg(), {probe}) == []


def test_thermal_uses_per_zone_points_and_needs_falling_clocks():
    pts = [(t, 1.3e9) for t in range(0, 60)] + [(t, 0.7e9) for t in range(60, 75)]
    w = Window(now=74, series={'temperature_celsius{zone="gpu"}': [(74, 95.0)], "gpu_freq_hz": pts})
    assert thermal_throttling(w, cfg(), set()) == []  # no throttle point known
    [f] = thermal_throttling(w, cfg(throttle_celsius={"gpu": 100.0}), set())
    assert f.labels == {"zone": "gpu"} and f.severity == "warning" and "down 46%" in f.summary
    w.series['temperature_celsius{zone="gpu"}'] = [(74, 101.0)]
    assert thermal_throttling(w, cfg(throttle_celsius={"gpu": 100.0}), set())[0].severity == "critical"


def test_latency_needs_enough_requests_and_counts_failures():
    slo = {"runtime": "triton", "model": "m", "deadline_s": 0.04, "target_ratio": 0.99, "window_s": 60}
    reqs = [{"ts": t, "runtime": "triton", "model": "m", "total_s": 0.02, "status": 200} for t in range(50)]
    w = Window(now=50, requests=reqs[:10])
    assert latency_slo_breach(w, cfg(slos=[slo]), set()) == []
    reqs[5]["status"] = 503
    w.requests = reqs
    [f] = latency_slo_breach(w, cfg(slos=[slo]), set())
    assert "98.00% of 50" in f.summary
    assert quantile([1, 2, 3, 4], 0.5) == 2 and quantile([1.0], 0.99) == 1.0


def test_decode_speed_fallbacks():
    assert decode_speed({"completion_tokens": 100, "completion_s": 4.0}, 16) == 25.0
    assert decode_speed({"completion_tokens": 100, "total_s": 5.0, "ttft_s": 1.0}, 16) == 25.0
    assert decode_speed({"completion_tokens": 5, "completion_s": 1.0}, 16) is None
    assert decode_speed({"completion_tokens": 100, "completion_s": 4.0, "status": 500}, 16) is None


def test_degradation_baseline_outlives_the_window():
    config = cfg()
    memo: dict = {}
    lifecycle = Lifecycle()

    def step(now: float, speed: float | None, reload: bool = False) -> None:
        w = Window(now=now, memo=memo)
        if reload:
            w.events.append({"ts": now - 1, "kind": "model_loaded", "runtime": "ollama", "model": "m"})
        if speed:
            w.requests.append({"ts": now, "runtime": "ollama", "model": "m", "completion_tokens": 200,
                               "completion_s": 200 / speed})
        lifecycle.step(now, degradation(w, config, set(lifecycle.active)))

    for k in range(5):
        step(k * 10, 37.0)
    step(60, 5.2, reload=True)
    step(70, 5.3)
    assert [a.rule for a in lifecycle.active.values()] == ["reload_degradation"]
    for k in range(8, 400):  # an hour of slow requests, far past any window
        step(k * 10, 5.2)
    assert [a.rule for a in lifecycle.active.values()] == ["reload_degradation"]
    step(4010, 36.0)
    step(4020, 37.5)
    assert lifecycle.active == {} and lifecycle.history[0].ends_at == 4020


def test_a_broken_rule_does_not_silence_the_others(monkeypatch):
    import advisors.rules as rules

    def broken(window, config, active):
        raise RuntimeError("bug")

    monkeypatch.setattr(rules, "RULES", [broken, *rules.RULES])
    w = Window(now=1, series={"swap_used_bytes": [(1, 1e9)]})
    assert [f.rule for f in run_rules(w, cfg())] == ["swap_in_use"]


def test_fingerprint_is_stable_and_label_order_free():
    assert fingerprint("r", {"a": "1", "b": "2"}, "d") == fingerprint("r", {"b": "2", "a": "1"}, "d")
    assert fingerprint("r", {"a": "1"}, "d") != fingerprint("r", {"a": "1"}, "e")


def test_swap_is_one_reading_for_the_alert_and_the_checklist():
    """Issue 13's demo: the alert said 1937 MiB of 27396 MiB while the checklist said "enabled but
    unused" from the state's bare `swap_enabled`. Both now read the same series."""
    from advisors.recommend import recommend, run_checks
    from advisors.rules.pressure import swap_in_use

    mib = 1024 * 1024
    values = {"swap_used_bytes": 1937.0 * mib, "swap_total_bytes": 27396.0 * mib, "ram_available_bytes": 1.0e9}
    state = {"swap_enabled": True}
    check = next(c for c in run_checks(state, {}, values) if c["check"] == "swap")
    assert check["status"] == "fail" and check["value"] == {"total_bytes": 27396 * mib, "used_bytes": 1937 * mib}
    w = Window(now=1, series={k: [(1, v)] for k, v in values.items()}, state=state)
    finding = swap_in_use(w, cfg(), set())[0]
    assert finding.value == check["value"]["used_bytes"]
    assert "1.89 GiB of 26.75 GiB" in finding.summary
    # the advisor sees the same reading: 1.9 GiB swapped with 1 GB available is not a safe swapoff
    swap_rec = next(r for r in recommend(state, values, [], cfg()) if r["id"].endswith("swap"))
    assert swap_rec["safe"] is False
    # without the series, the state alone still answers
    assert next(c for c in run_checks(state, {}) if c["check"] == "swap")["evidence"].endswith("enabled but unused")


def test_a_discrete_gpu_throttling_for_heat_says_so_through_nvml():
    from advisors.rules.thermal import thermal_throttling

    w = Window(now=10, series={"gpu_throttle_active": [(10, 1.0)], 'temperature_celsius{zone="gpu"}': [(10, 83.0)]},
               state={"throttle_reasons": ["sw_thermal_slowdown", "sw_power_cap"]})
    found = thermal_throttling(w, cfg(), set())
    assert [(f.rule, f.labels) for f in found] == [("thermal_throttling", {"zone": "gpu"})]
    assert "sw_thermal_slowdown" in found[0].summary and "sw_power_cap" not in found[0].summary
    w.state["throttle_reasons"] = ["sw_power_cap"]  # a power cap is not heat
    assert thermal_throttling(w, cfg(), set()) == []


def test_clock_lock_reads_the_tuning_state_the_checklist_reads():
    from advisors.recommend import run_checks
    from advisors.rules.thermal import gpu_clock_not_locked

    state = {"clocks_locked": {"cpu": True, "gpu": False, "emc": True}}
    config = {**cfg(), "want_locked_clocks": True}
    found = gpu_clock_not_locked(Window(now=1, state=state), config, set())
    assert [f.rule for f in found] == ["gpu_clock_not_locked"] and "jetson_clocks is not active" in found[0].summary
    assert next(c for c in run_checks(state, {}) if c["check"] == "clocks_locked")["status"] != "ok"
    state["clocks_locked"]["gpu"] = True
    assert gpu_clock_not_locked(Window(now=1, state=state), config, set()) == []


def test_board_default_trip_points_follow_nvidias_device_trees():
    from advisors.rules.boards import board_points

    orin = board_points({"model": "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit"})
    assert orin["gpu"] == orin["cpu"] == 99.0 and "tj" not in orin  # tj has only a critical trip
    assert board_points({"model": "NVIDIA Jetson Xavier NX Developer Kit"}) == {
        "cpu": 90.5, "gpu": 91.5, "aux": 90.0}
    assert board_points("Jetson-AGX Xavier")["gpu"] == 92.5
    assert board_points({"model": "x86_64 host"}) == {}
