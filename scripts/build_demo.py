"""Build the demo Jetson recording replayed by `make run` on machines without a Jetson.

SoC telemetry: the real AGX Orin 64 GB session in tests/fixtures/real/bkubwimana__tegra_inference__tegrastats.csv
(MIT, (c) 2024 Benjamin Kubwimana; see tests/fixtures/real/LICENSES.md).
Runtimes, their memory, requests and events are SIMULATED on top of it (seeded, deterministic),
following the figures in the project's seed documents: Ollama/TensorRT-LLM/cuQuantum ceilings of
5.5/6/2.5 GB, gpt-oss:20b falling from 37 to 5.2 tok/s after a reload, a 24 Hz Triton loop.

    python scripts/build_demo.py  ->  collectors/demo/agx-orin-demo.jsonl
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collectors.importers import power_gui_csv  # noqa: E402
from collectors.recording import write  # noqa: E402
from collectors.series import series_key  # noqa: E402

SOURCE = ROOT / "tests/fixtures/real/bkubwimana__tegra_inference__tegrastats.csv"
OUT = ROOT / "collectors/demo/agx-orin-demo.jsonl"
START = 1_786_000_000.0
GB = 1e9


def build() -> int:
    rng = random.Random(42)
    samples = list(power_gui_csv.read(SOURCE, START))
    records: list[dict] = []
    duration = len(samples)
    reload_at = 600           # ollama unload/reload of gpt-oss:20b
    recover_at = 960          # operator restarts the container: speed returns
    oom_at = 1100             # cuquantum OOM-killed, back 40 s later
    irq_from = 300            # IRQ 143 starts landing on isolated CPU 10
    irq_total = {"0": 1_250_000.0, "10": 4_000.0}
    for i, sample in enumerate(samples):
        ts = sample["ts"]
        values = dict(sample["values"])
        # Ollama climbs towards its 5.5 GB ceiling (KV cache growth), dips at the reload.
        ollama = 3.9 * GB + (1.25 * GB) * min(i, 900) / 900 + rng.uniform(-0.02, 0.02) * GB
        if reload_at <= i < reload_at + 12:
            ollama = 0.6 * GB
        if i >= 900:
            ollama = 5.15 * GB + (i - 900) * 0.0016 * GB
        trt = 4.2 * GB + rng.uniform(-0.05, 0.05) * GB
        cuq = (1.2 + 0.8 * ((i // 60) % 2)) * GB
        for runtime, used, ceiling in (("ollama", ollama, 5.5 * GB), ("tensorrt_llm", trt, 6.0 * GB),
                                       ("cuquantum", cuq, 2.5 * GB), ("triton", 1.1 * GB, None)):
            values[series_key("runtime_memory_bytes", runtime=runtime)] = round(used)
            values[series_key("runtime_up", runtime=runtime)] = 1.0
            if ceiling:
                values[series_key("runtime_ceiling_bytes", runtime=runtime)] = ceiling
        # cuQuantum is OOM-killed at `oom_at` and restarted 40 s later (runtime_down meanwhile).
        if oom_at <= i < oom_at + 40:
            values[series_key("runtime_memory_bytes", runtime="cuquantum")] = 0
            values[series_key("runtime_up", runtime="cuquantum")] = 0.0
        values[series_key("cgroup_oom_kills_total", cgroup="/system.slice/cuquantum.service")] = \
            1.0 if i >= oom_at else 0.0
        # Memory pressure once Ollama sits over its ceiling: tasks stall (PSI some ~45%).
        values["memory_pressure_some_ratio"] = round(0.02 + (0.42 if i > 1000 else 0.0) + rng.uniform(0, 0.02), 4)
        values["memory_pressure_full_ratio"] = round(0.0 + (0.05 if i > 1000 else 0.0), 4)
        # The NVMe interrupt (IRQ 143) lands on CPU 10, isolated for inference, from `irq_from` on.
        irq_rate = {"0": 35.0, "10": 22.0 if i >= irq_from else 0.0}
        for cpu, rate in irq_rate.items():
            irq_total[cpu] += rate * rng.uniform(0.8, 1.2)
            values[series_key("irq_interrupts_total", cpu=cpu, irq="143")] = round(irq_total[cpu])
        records.append({**sample, "values": values})
        if i % 30 == 0:
            records.append({"ts": ts, "source": "tuning", "state": {
                "preempt_rt": False, "thp": "always", "nvpmodel": "MAXN", "jetson_clocks": False,
                "isolated_cpus": "", "swap_enabled": True, "cpu_governor": {"0-11": "schedutil"}}})
        if i == reload_at:
            records.append({"ts": ts, "source": "event", "event": {
                "kind": "model_unloaded", "runtime": "ollama", "model": "gpt-oss:20b"}})
        if i == reload_at + 12:
            records.append({"ts": ts, "source": "event", "event": {
                "kind": "model_loaded", "runtime": "ollama", "model": "gpt-oss:20b", "load_s": 11.8}})
        if i == oom_at:
            records.append({"ts": ts, "source": "event", "event": {
                "kind": "oom_kill", "runtime": "cuquantum", "process": "python3", "pid": 31337,
                "cgroup": "/system.slice/cuquantum.service"}})
        if i == oom_at + 40:
            records.append({"ts": ts, "source": "event", "event": {"kind": "runtime_started", "runtime": "cuquantum"}})
        if i == recover_at:
            records.append({"ts": ts, "source": "event", "event": {
                "kind": "runtime_started", "runtime": "ollama", "note": "container restarted"}})
        # Ollama requests every 8 s: 37 tok/s, 5.2 tok/s after the reload until the restart.
        if i % 8 == 3 and not (reload_at <= i < reload_at + 12):
            slow = reload_at + 12 <= i < recover_at
            rate = (5.23 if slow else 37.0) * rng.uniform(0.95, 1.05)
            tokens = rng.randint(150, 260)
            completion_s = tokens / rate
            load_s = 11.8 if i == reload_at + 13 else 0.0
            records.append({"ts": ts, "source": "request", "request": {
                "runtime": "ollama", "model": "gpt-oss:20b", "endpoint": "/api/generate", "status": 200,
                "queue_s": round(rng.uniform(0.005, 0.03), 4), "load_s": load_s,
                "ttft_s": round(load_s + rng.uniform(0.2, 0.4), 4), "prompt_tokens": 26,
                "prompt_s": round(rng.uniform(0.15, 0.3), 4), "completion_tokens": tokens,
                "completion_s": round(completion_s, 4), "total_s": round(load_s + completion_s + 0.3, 4)}})
        # Triton perception at 24 Hz, summarised as 2 requests/s; jitter spikes mid-session.
        for k in range(2):
            spike = 700 <= i < 760 and rng.random() < 0.2
            latency = rng.uniform(0.018, 0.028) + (rng.uniform(0.03, 0.06) if spike else 0.0)
            records.append({"ts": round(ts + k * 0.5, 3), "source": "request", "request": {
                "runtime": "triton", "model": "yolo26n", "endpoint": "/v2/models/yolo26n/infer", "status": 200,
                "queue_s": round(latency * 0.1, 5), "total_s": round(latency, 5)}})
    records.sort(key=lambda r: r["ts"])
    first = power_gui_csv.throttle_points(next(iter(_rows())))
    header = {
        "device": "demo-agx-orin",
        "board": {"kind": "jetson", "model": "NVIDIA Jetson AGX Orin 64GB (recorded)", "l4t": "36.x",
                  "nvpmodel": "MAXN"},
        "config": {
            "runtimes": [
                {"name": "ollama", "kind": "ollama", "url": "http://127.0.0.1:11434",
                 "ceiling_bytes": 5_500_000_000, "priority": "background"},
                {"name": "tensorrt_llm", "kind": "tensorrt_llm", "url": "http://127.0.0.1:8000",
                 "ceiling_bytes": 6_000_000_000, "priority": "essential"},
                {"name": "cuquantum", "kind": "cuquantum", "ceiling_bytes": 2_500_000_000, "priority": "background"},
                {"name": "triton", "kind": "triton", "url": "http://127.0.0.1:8001", "priority": "critical"},
            ],
            "slos": [{"runtime": "triton", "model": "yolo26n", "deadline_s": 0.0417, "target_ratio": 0.999,
                      "window_s": 60}],
            "isolated_cpus": "10-11",
            "want_locked_clocks": True,
            "throttle_celsius": first,
        },
        "notes": ("SoC telemetry (CPU, GPU, EMC, memory, thermal, power, fan) is a real 20-minute Jetson AGX Orin "
                  "64 GB session running Janus-Pro VLM inference (bkubwimana/tegra_inference, MIT (c) 2024 Benjamin "
                  "Kubwimana). Runtimes, their memory against ceilings, requests, events, PSI, the cgroup OOM counter "
                  "and IRQ counters are SIMULATED for the demo."),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as fh:
        count = write(fh, header, records)
    print(f"wrote {count} records over {duration} s to {OUT.relative_to(ROOT)}")
    return 0


def _rows():
    import csv

    with SOURCE.open(newline="", encoding="utf-8") as fh:
        yield from csv.DictReader(fh)


if __name__ == "__main__":
    sys.exit(build())
