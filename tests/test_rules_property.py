"""Property: a healthy device whose readings only wobble fires nothing.

Hypothesis draws recordings of a device in good health: every series at a healthy level plus
bounded noise (memory under 80% of its ceiling, PSI and swap low, temperatures under 75 °C with
clocks that dip as DVFS does, decode speeds within ±10% of one level, with reloads that do not
slow anything, SLO latencies inside the deadline, runtimes and agent sources up), sampled with gaps
shorter than the stale limit. The whole rule set, run as `manage.py evaluate` runs it, must stay
quiet: no rule may mistake noise for a condition.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from advisors.engine import evaluate_recording
from collectors.recording import Recording
from collectors.series import series_key

T0 = 1_790_000_000.0
GB = 1e9
CEILING = 5.5 * GB
CONFIG = {
    "runtimes": [{"name": "ollama", "kind": "ollama", "ceiling_bytes": CEILING, "priority": "background"},
                 {"name": "triton", "kind": "triton", "priority": "critical"}],
    "slos": [{"runtime": "triton", "model": "yolo", "deadline_s": 0.05, "target_ratio": 0.99, "window_s": 60}],
    "isolated_cpus": "2-3",
    "want_locked_clocks": True,
    "throttle_celsius": {"gpu": 99.0, "cpu": 99.0},
}


@st.composite
def healthy_recordings(draw: st.DrawFn) -> Recording:
    seconds = draw(st.integers(60, 240))
    mem_level = draw(st.floats(0.3, 0.7)) * CEILING
    temp_level = draw(st.floats(40.0, 70.0))
    clock = draw(st.sampled_from([918e6, 1_020e6, 1_300e6]))
    speed = draw(st.floats(8.0, 60.0))
    seed = random.Random(draw(st.integers(0, 2**32)))  # the noise itself: seeded, so examples replay
    reloads = set(draw(st.lists(st.integers(20, seconds - 1), max_size=3)))
    records: list[dict] = []
    ts = T0
    irq_count = 1000.0
    while ts < T0 + seconds:
        i = ts - T0
        irq_count += seed.uniform(0, 30)  # a device IRQ on housekeeping CPU 0
        records.append({"ts": round(ts, 3), "source": "sim", "values": {
            series_key("runtime_memory_bytes", runtime="ollama"): mem_level * seed.uniform(0.97, 1.03),
            series_key("runtime_up", runtime="ollama"): 1.0,
            series_key("runtime_up", runtime="triton"): 1.0,
            series_key("agent_source_up", source="host"): 1.0,
            series_key("agent_source_up", source="jtop"): 1.0,
            "memory_pressure_some_ratio": seed.uniform(0.0, 0.2),
            "memory_pressure_full_ratio": seed.uniform(0.0, 0.04),
            "swap_used_bytes": seed.uniform(0, 20) * 2**20,
            "swap_total_bytes": 4 * 2**30,
            series_key("temperature_celsius", zone="gpu"): temp_level + seed.uniform(-3, 3),
            series_key("temperature_celsius", zone="cpu"): temp_level + seed.uniform(-3, 3),
            "gpu_freq_hz": clock * seed.choice([1.0, 1.0, 1.0, 0.6]),  # DVFS dips, cool
            "gpu_freq_max_hz": clock,
            "gpu_load_ratio": seed.uniform(0.2, 1.0),
            "jetson_clocks_active": 1.0,
            series_key("irq_interrupts_total", cpu="0", irq="143"): irq_count,
            series_key("irq_interrupts_total", cpu="2", irq="143"): 50.0,
        }})
        if int(i) % 12 == 5:
            if int(i) in reloads:
                records.append({"ts": round(ts - 0.5, 3), "source": "event", "event": {
                    "kind": "model_loaded", "runtime": "ollama", "model": "m", "load_s": 4.0}})
            tokens = seed.randint(150, 260)
            rate = speed * seed.uniform(0.9, 1.1)
            records.append({"ts": round(ts + 0.1, 3), "source": "request", "request": {
                "runtime": "ollama", "model": "m", "status": 200, "completion_tokens": tokens,
                "completion_s": tokens / rate, "total_s": tokens / rate + 0.3, "ttft_s": 0.3}})
        for k in range(4):  # the SLO'd loop, all inside its deadline
            records.append({"ts": round(ts + 0.2 + k * 0.2, 3), "source": "request", "request": {
                "runtime": "triton", "model": "yolo", "status": 200, "total_s": seed.uniform(0.01, 0.045)}})
        ts += seed.uniform(0.5, 10.0)  # irregular sampling, never silent for the stale limit
    records.sort(key=lambda r: r["ts"])
    return Recording(header={"device": "noise", "config": CONFIG}, records=records)


@settings(max_examples=60, deadline=None)
@given(healthy_recordings())
def test_noise_only_recordings_fire_nothing(recording):
    alerts = evaluate_recording(recording)
    assert alerts == [], [(a["rule"], a["labels"], a["summary"][:120]) for a in alerts]
