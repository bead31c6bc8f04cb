"""NVML source: a real H100 recording replayed into Redis, value sanitising, and this machine
(no NVIDIA driver) reporting a clear status instead of crashing."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from collectors.recording import load, validate_record
from collectors.replay import replay
from collectors.series import parse_series_key
from collectors.sources import nvml
from collectors.sources.nvml import GpuSample, NvmlSource, NvmlUnavailable, sample_values

FIXTURE = Path(__file__).parent / "fixtures/nvml/h100-torch-alloc.jsonl"
GIB = 2**30


def _process_series(values: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in values.items() if k.startswith("gpu_process_memory_bytes")}


def test_h100_recording_replays_with_memory_rise_and_fall(store):
    recording = load(FIXTURE)
    assert "H100" in recording.header["board"]["gpu"]
    started = time.time()
    replay(recording, store, "h100", speed=0)
    back = store.read("h100", since=started - 3600)
    nvml_records = [r for r in back if r.get("source") == "nvml" and "values" in r]
    assert len(nvml_records) >= 90
    used = [r["values"]["gpu_memory_used_bytes"] for r in nvml_records]
    peak = max(range(len(used)), key=used.__getitem__)
    assert used[0] < 1 * GIB and used[-1] < 1 * GIB  # idle before and after
    assert used[peak] > 16 * GIB  # 6 GiB + 10 GiB + the CUDA context
    assert 0 < peak < len(used) - 1
    # the rise and the fall are both visible, not one sample's spike
    assert sum(1 for u in used[:peak] if u > 6 * GIB) >= 4
    assert sum(1 for u in used[peak:] if u < 2 * GIB) >= 10
    # the workload's process appears with its memory and then disappears
    with_proc = [i for i, r in enumerate(nvml_records) if _process_series(r["values"])]
    assert with_proc and with_proc[0] > 0 and with_proc[-1] < len(nvml_records) - 1
    proc_peak = max(max(_process_series(nvml_records[i]["values"]).values()) for i in with_proc)
    assert proc_peak > 16 * GIB
    name, labels = parse_series_key(next(iter(_process_series(nvml_records[with_proc[0]]["values"]))))
    assert name == "gpu_process_memory_bytes" and labels["process"] == "python3" and labels["pid"].isdigit()
    # busy while computing, and the load/power that go with it
    assert max(r["values"]["gpu_load_ratio"] for r in nvml_records) > 0.9
    assert max(r["values"]['power_watts{rail="gpu"}'] for r in nvml_records) > 300
    latest = store.latest("h100")
    assert latest["values"]["gpu_memory_used_bytes"] < 1 * GIB
    assert latest["state"]["gpu_name"].startswith("NVIDIA H100")
    phases = [e["event"]["phase"] for e in store.read("h100", "events", since=started - 3600)]
    assert phases == ["start", "allocated", "compute", "freeing", "freed", "exit"]


def test_every_fixture_value_is_base_units():
    for record in load(FIXTURE).records:
        for key, value in record.get("values", {}).items():
            name, _ = parse_series_key(key)
            if name.endswith("_ratio"):
                assert 0.0 <= value <= 1.0, key
            if name.endswith("_hz"):
                assert 1e8 <= value <= 1e10, key  # MHz would be < 1e4


def test_sample_values_maps_units():
    s = GpuSample(index=0, name="GPU", util_gpu=97, util_mem=40, mem_total=80 * GIB, mem_used=17 * GIB,
                  mem_free=63 * GIB, clock_graphics=1500, clock_graphics_max=1980, clock_mem=2619,
                  power_mw=690_372, power_limit_mw=700_000, energy_mj=2_872_458, temperature=51,
                  fan_percent=30, throttle_mask=0x4, processes={4242: 17 * GIB}, process_names={4242: "python3"})
    v = sample_values([s])
    assert v["gpu_load_ratio"] == pytest.approx(0.97)
    assert v["gpu_freq_hz"] == 1.5e9 and v["gpu_freq_max_hz"] == 1.98e9
    assert v['power_watts{rail="gpu"}'] == pytest.approx(690.372)
    assert v["gpu_energy_joules_total"] == pytest.approx(2872.458)
    assert v['fan_speed_ratio{fan="gpu"}'] == pytest.approx(0.30)
    assert v["gpu_throttle_active"] == 1.0  # sw_power_cap
    assert v['gpu_process_memory_bytes{gpu="0",pid="4242",process="python3"}'] == 17 * GIB
    assert "gpu" not in "".join(k for k in v if k.startswith("gpu_load_ratio{"))  # one GPU: no label


def test_sample_values_drops_nonsense_and_escapes_hostile_names():
    hostile = 'evil"}\nup{x="1'
    s = GpuSample(index=0, util_gpu=math.nan, util_mem=-5, mem_total=2**64 - 1, mem_used=10**30,
                  mem_free="12", clock_graphics=math.inf, power_mw=-1, temperature=9999,
                  fan_percent=None, throttle_mask=2**64 - 1, processes={7: 2**64 - 1, 8: 5 * GIB, -1: 10},
                  process_names={8: hostile})
    v = sample_values([s])
    for gone in ("gpu_load_ratio", "gpu_memory_busy_ratio", "gpu_memory_total_bytes",
                 "gpu_memory_used_bytes", "gpu_freq_hz", "gpu_throttle_active"):
        assert gone not in v
    assert v["gpu_memory_free_bytes"] == 12.0
    assert not any(k.startswith(("power_watts", "temperature_celsius")) for k in v)
    procs = _process_series(v)
    assert len(procs) == 1
    (key,) = procs
    assert parse_series_key(key)[1] == {"gpu": "0", "pid": "8", "process": hostile}
    validate_record({"ts": 1.0, "source": "nvml", "values": v})  # finite numbers, valid keys


def test_two_gpus_get_labels():
    v = sample_values([GpuSample(index=0, util_gpu=10, temperature=40),
                       GpuSample(index=1, util_gpu=90, temperature=70)])
    assert v["gpu_load_ratio"] == pytest.approx(0.10)
    assert v['gpu_load_ratio{gpu="1"}'] == pytest.approx(0.90)
    assert v['temperature_celsius{zone="gpu1"}'] == 70.0


def test_this_machine_either_reads_a_gpu_or_says_clearly_why_not():
    source = NvmlSource(root=Path("/"), interval=1.0)
    try:
        if source.available():  # a machine with an NVIDIA driver: real values
            records = source.collect(time.time())
            values = records[0]["values"]
            validate_record(records[0])
            assert values["gpu_memory_total_bytes"] > 0 and 0 <= values["gpu_load_ratio"] <= 1
            assert isinstance(nvml.gpu_memory_by_pid(), dict)
        else:  # CI and development boxes without one: a clear status, backing off
            with pytest.raises(NvmlUnavailable,
                               match=r"NVML unavailable: .*(Not Found|not installed|no GPU|Driver).*retry in"):
                source.collect(time.time())
            assert nvml.gpu_memory_by_pid() is None
    finally:
        source.close()


def test_throttle_reason_names():
    assert nvml.throttle_reason_names(0x41) == ["gpu_idle", "hw_thermal_slowdown"]
    assert nvml.throttle_reason_names(0x4 | 0x20) == ["sw_power_cap", "sw_thermal_slowdown"]
    assert nvml.throttle_reason_names(2**64 - 1) == [] and nvml.throttle_reason_names(None) == []
