"""tegrastats parser on every line of the real logs, the documented JP5/JP6/JP7/Thor shapes,
hostile input (plus hypothesis fuzzing), and the source running a real child process."""

from __future__ import annotations

import math
import os
import stat
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.agent import Agent
from collectors.recording import validate_record
from collectors.series import parse_series_key
from collectors.sources.tegrastats import TegrastatsSource, TegrastatsUnavailable, parse_line

REAL = Path(__file__).parent / "fixtures/real"
ORIN_NANO_LOG = next(REAL.glob("joshua41057__*tegrastats*.log"))
MIB = 1024 * 1024

JP6_FULL = ("12-01-2025 10:00:00 RAM 6982/7620MB (lfb 5x1MB) SWAP 2640/16384MB (cached 202MB) "
            "CPU [97%@1984,off,93%@247,10%@1984,off,5%@1984] EMC_FREQ 18%@3199 GR3D_FREQ 84%@[713] "
            "NVENC 1%@115 NVDEC 40%@115 NVJPG off VIC 31%@115 OFA off NVDLA0 off APE 174 cv0@-256C "
            "cpu@65.562C soc2@61.4C tj@65.562C VDD_IN 17946mW/15710mW VDD_CPU_GPU_CV 8896mW/7585mW "
            "VDD_SOC 3923mW/3515mW")
JP5_AGX = ("RAM 2448/30536MB (lfb 6383x4MB) SWAP 0/15268MB (cached 0MB) CPU [0%@729,1%@729,off,off] "
           "EMC_FREQ 0%@2133 GR3D_FREQ 0%@[305,305] VIC_FREQ 729 APE 174 CV0@-256C CPU@45.406C "
           "Tboard@33C SOC2@42.125C Tdiode@35.25C VDD_GPU_SOC 2394mW/2394mW VDD_CPU_CV 399mW/399mW "
           "VIN_SYS_5V0 2820mW/2820mW NC 0mW/0mW VDDQ_VDD2_1V8AO 503mW/503mW")
JP7_ORIN = ("07-25-2026 09:08:28 RAM 20642/62817MB (lfb 1x2MB) CPU [23%@2201,10%@2201] EMC_FREQ 3%@3199 "
            "GR3D_FREQ 0%@[1300,1300] NVENC0 off NVDEC0 off APE 174 cpu@52.968C/52.968C tj@55.1C/55.2C "
            "VDD_GPU_SOC 4000mW/3500mW/5000mW")
THOR = ("11-02-2026 08:00:01 RAM 31000/125772MB (lfb 10x4MB) SWAP 0/0MB (cached 0MB) "
        "CPU [5%@2601,3%@2601,0%@2601,99%@2601] GR3D_FREQ @[1000,1000,1000] gpu@62.906C/62.906C "
        "cpu@50.2C/49.9C tj@63.1C/62.8C VDD_GPU 12000mW/9000mW/15000mW VDD_CPU_SOC_MSS 5000mW/4000mW/6000mW "
        "VIN_SYS_5V0 8000mW/7000mW/9000mW")
TX1 = ("RAM 3468/3983MB (lfb 48x4MB) SWAP 873/8192MB (cached 295MB) cpu [17%,13%,29%,5%]@408 "
       "EMC 1%@408 APE 25 GR3D 3%@76 POM_5V_IN 3211/3211 PLL@33.5C")


def _check_invariants(values: dict[str, float]) -> None:
    validate_record({"ts": 1.0, "source": "tegrastats", "values": values})  # finite, valid keys
    for key, value in values.items():
        name, _labels = parse_series_key(key)
        assert math.isfinite(value), key
        assert value >= 0 or name == "temperature_celsius", key
        if name.endswith("_ratio"):
            assert 0.0 <= value <= 1.0, key
        if name.endswith("_hz"):
            assert value <= 1e11, key
        if name == "temperature_celsius":
            assert -100 < value < 200, key


def test_every_line_of_the_real_orin_nano_log_parses():
    lines = ORIN_NANO_LOG.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 109
    last_ts = 0.0
    gpu_loads = []
    for number, line in enumerate(lines, 1):
        sample = parse_line(line)
        assert sample is not None, f"line {number}"
        v = sample.values
        _check_invariants(v)
        assert sample.ts is not None and sample.ts > last_ts, f"line {number}"
        last_ts = sample.ts
        assert v["ram_total_bytes"] == 7620 * MIB and 0 < v["ram_used_bytes"] < v["ram_total_bytes"]
        assert v["swap_total_bytes"] == 12002 * MIB
        assert sum(1 for k in v if k.startswith("cpu_load_ratio{")) == 6
        assert v['cpu_freq_hz{cpu="5"}'] == 1728e6
        assert {'power_watts{rail="VDD_IN"}', 'power_watts{rail="VDD_CPU_GPU_CV"}',
                'power_watts{rail="VDD_SOC"}'} <= v.keys()
        assert 5 < v['power_watts{rail="VDD_IN"}'] < 30
        assert {"cpu", "gpu", "tj", "soc0", "soc1", "soc2"} == {
            parse_series_key(k)[1]["zone"] for k in v if k.startswith("temperature_celsius")}
        gpu_loads.append(v["gpu_load_ratio"])
    assert min(gpu_loads) == 0.0 and max(gpu_loads) >= 0.99  # idle start, then sustained inference
    # the first line, field by field
    first = parse_line(lines[0])
    assert first.ts == pytest.approx(1788332625.682)
    assert first.values["ram_used_bytes"] == 3692 * MIB
    assert first.values['cpu_load_ratio{cpu="4"}'] == 1.0
    assert first.values['temperature_celsius{zone="tj"}'] == 54.562
    assert first.values['power_avg_watts{rail="VDD_SOC"}'] == 2.748


def test_orin_jp6_full_line():
    v = parse_line(JP6_FULL).values
    _check_invariants(v)
    assert v["gpu_load_ratio"] == 0.84 and v["gpu_freq_hz"] == 713e6
    assert v["emc_load_ratio"] == 0.18 and v["emc_freq_hz"] == 3199e6
    assert v['cpu_online{cpu="1"}'] == 0.0 and 'cpu_load_ratio{cpu="1"}' not in v
    assert v["cpu_total_load_ratio"] == pytest.approx((0.97 + 0.93 + 0.10 + 0.05) / 4)
    assert v['engine_load_ratio{engine="nvdec"}'] == 0.40
    assert v['engine_active{engine="nvjpg"}'] == 0.0 and v['engine_freq_hz{engine="ape"}'] == 174e6
    assert 'temperature_celsius{zone="cv0"}' not in v  # -256 = no sensor
    assert v["swap_cached_bytes"] == 202 * MIB and v["ram_largest_free_block_bytes"] == 1 * MIB


def test_orin_jp5_agx_line():
    v = parse_line(JP5_AGX).values
    _check_invariants(v)
    assert v["gpu_freq_hz"] == 305e6 and v["gpu_load_ratio"] == 0.0
    assert v['engine_freq_hz{engine="vic"}'] == 729e6
    assert v['temperature_celsius{zone="cpu"}'] == 45.406  # upper-case zone names normalised
    assert v['temperature_celsius{zone="tboard"}'] == 33.0
    assert v['power_watts{rail="VDD_GPU_SOC"}'] == 2.394 and v['power_watts{rail="NC"}'] == 0.0


def test_jetpack7_orin_and_thor_lines():
    orin = parse_line(JP7_ORIN).values
    _check_invariants(orin)
    assert orin["gpu_load_ratio"] == 0.0 and orin["gpu_freq_hz"] == 1300e6
    assert orin['temperature_celsius{zone="tj"}'] == 55.1  # first of the two values
    assert orin['power_watts{rail="VDD_GPU_SOC"}'] == 4.0 and orin['power_avg_watts{rail="VDD_GPU_SOC"}'] == 3.5
    thor = parse_line(THOR).values
    _check_invariants(thor)
    assert "gpu_load_ratio" not in thor and thor["gpu_freq_hz"] == 1000e6
    assert thor['power_watts{rail="VDD_GPU"}'] == 12.0 and thor['power_watts{rail="VDD_CPU_SOC_MSS"}'] == 5.0
    assert thor['cpu_load_ratio{cpu="3"}'] == 0.99 and thor["swap_total_bytes"] == 0.0


def test_old_tx1_line():
    v = parse_line(TX1).values
    _check_invariants(v)
    assert v['cpu_freq_hz{cpu="3"}'] == 408e6 and v['cpu_load_ratio{cpu="2"}'] == 0.29
    assert v["gpu_load_ratio"] == 0.03 and v["gpu_freq_hz"] == 76e6
    assert v['power_watts{rail="POM_5V_IN"}'] == 3.211


@pytest.mark.parametrize("line", [
    "", "   ", "hello world", "\x00\x00\x00", "RAM", "RAM abc/defMB", "CPU [", "GR3D_FREQ",
    "Segmentation fault (core dumped)", "tegrastats: Permission denied", "ÿþ\ufffd" * 100,
])
def test_garbage_lines_give_none(line):
    assert parse_line(line) is None


def test_nonsense_numbers_are_dropped_not_reported():
    v = parse_line("RAM 99999999999999999999/7620MB CPU [250%@1984,-3%@100,nan%@5] GR3D_FREQ 999%@[99999999] "
                   "EMC_FREQ 18%@99999999999 cpu@999.0C gpu@nanC tj@-300C VDD_IN 99999999999mW/1mW").values
    _check_invariants(v)
    assert "ram_used_bytes" not in v and v["ram_total_bytes"] == 7620 * MIB
    assert not any(k.startswith("cpu_load_ratio") for k in v)
    assert "gpu_load_ratio" not in v and "gpu_freq_hz" not in v and "emc_freq_hz" not in v
    assert not any(k.startswith("temperature_celsius") for k in v)
    assert 'power_watts{rail="VDD_IN"}' not in v and v['power_avg_watts{rail="VDD_IN"}'] == 0.001


def test_truncated_line_keeps_what_is_complete():
    v = parse_line(JP6_FULL[:150]).values  # cut inside the CPU list
    assert v["ram_used_bytes"] == 6982 * MIB and v["swap_used_bytes"] == 2640 * MIB
    assert "gpu_load_ratio" not in v


def test_hostile_zone_and_rail_names_stay_valid_series():
    v = parse_line('RAM 1/2MB a"b@40C x\\y@41C VDD_"}{ 5mW/5mW ' + "z" * 5000 + "@42C").values
    _check_invariants(v)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_fuzz_arbitrary_text_never_raises(text):
    sample = parse_line(text)
    if sample is not None:
        _check_invariants(sample.values)


_token = st.sampled_from(JP6_FULL.split() + THOR.split() + JP5_AGX.split() + TX1.split()
                         + ["off", "@", "%", "[", "]", "/", "mW", "MB", "C", "-256C", "nan", "1e999"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_token, max_size=60), st.integers(0, 100), st.integers(0, 4000))
def test_fuzz_shuffled_real_tokens(tokens, load, mhz):
    line = " ".join(tokens) + f" GR3D_FREQ {load}%@[{mhz}]"
    sample = parse_line(line)
    assert sample is not None
    _check_invariants(sample.values)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.just("off"), st.tuples(st.integers(0, 100), st.integers(1, 5000))),
                min_size=1, max_size=32))
def test_fuzz_cpu_lists_round_trip(cores):
    text = ",".join(c if c == "off" else f"{c[0]}%@{c[1]}" for c in cores)
    v = parse_line(f"CPU [{text}]").values
    for i, core in enumerate(cores):
        if core == "off":
            assert v[f'cpu_online{{cpu="{i}"}}'] == 0.0
        else:
            assert v[f'cpu_load_ratio{{cpu="{i}"}}'] == core[0] / 100
            assert v[f'cpu_freq_hz{{cpu="{i}"}}'] == core[1] * 1e6


# -- the source, with a real child process -------------------------------------------------------

def _fake_tegrastats(root: Path, body: str) -> Path:
    binary = root / "usr/bin/tegrastats"
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_text("#!/bin/sh\n" + body)
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


def _poll(source: TegrastatsSource, timeout: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = source.collect(time.time())
        if records:
            return records
        time.sleep(0.05)
    raise AssertionError("no tegrastats sample in time")


def test_source_runs_tegrastats_and_reports_newest_line(tmp_path):
    log = tmp_path / "log.txt"
    log.write_text("garbage first\n" + ORIN_NANO_LOG.read_text(encoding="utf-8"))
    # like the real tool: honours --interval (ms), prints its date prefix, runs until killed
    _fake_tegrastats(tmp_path, (
        'ms=1000; [ "$1" = "--interval" ] && ms=$2\n'
        f'echo "$ms" > {tmp_path}/interval_seen\n'
        f'while :; do while IFS= read -r line; do printf "%s\\n" "${{line#*|}}"; sleep 0.05; done < {log}; done\n'))
    source = TegrastatsSource(root=tmp_path, interval=0.25)
    assert source.available()
    try:
        (record,) = _poll(source)
        assert record["source"] == "tegrastats"
        v = record["values"]
        _check_invariants(v)
        assert v["ram_total_bytes"] == 7620 * MIB and "gpu_load_ratio" in v
        assert (tmp_path / "interval_seen").read_text().strip() == "250"
        deadline = time.monotonic() + 30
        while source.collect(time.time()) == [] or source._unparsed < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        later = _poll(source)[0]["values"]
        assert later["tegrastats_lines_total"] > v["tegrastats_lines_total"]
        assert later["tegrastats_unparsed_lines_total"] >= 1.0  # the garbage line (once per loop of the log)
        pid = source._proc.pid
    finally:
        source.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the child is gone after close()


def test_source_reports_exits_and_restarts_with_backoff(tmp_path):
    runs = tmp_path / "runs"
    line = ORIN_NANO_LOG.read_text(encoding="utf-8").splitlines()[5].split("|", 1)[1]
    _fake_tegrastats(tmp_path, f'echo run >> {runs}\necho "{line}"\nexit 3\n')
    source = TegrastatsSource(root=tmp_path, interval=0.5, restart_backoff_s=0.3)
    agent = Agent("t", [source], store=None)
    try:
        deadline = time.monotonic() + 30
        messages = set()
        while time.monotonic() < deadline and not (runs.exists() and len(runs.read_text().split()) >= 2
                                                   and any("exited with status 3" in m for m in messages)):
            agent._next_due["tegrastats"] = 0.0
            agent.collect_due(time.time())
            if not agent.status["tegrastats"].ok:
                messages.add(agent.status["tegrastats"].message)
            time.sleep(0.05)
        assert len(runs.read_text().split()) >= 2  # restarted after the backoff
        assert any("TegrastatsUnavailable: tegrastats exited with status 3; restarting in" in m for m in messages)
    finally:
        agent.close()


def test_source_without_binary_is_unavailable_with_clear_status(tmp_path):
    source = TegrastatsSource(root=tmp_path)
    assert not source.available()
    with pytest.raises(TegrastatsUnavailable, match="binary not found"):
        source.collect(time.time())
    _fake_tegrastats(tmp_path, "exit 0\n").chmod(0o644)  # present but not executable
    assert not source.available()


def test_source_reports_a_silent_tegrastats(tmp_path):
    _fake_tegrastats(tmp_path, "exec sleep 600\n")
    source = TegrastatsSource(root=tmp_path, interval=0.1, stall_after_s=0.5)
    try:
        assert source.collect(time.time()) == []  # just started: nothing yet, not an error
        deadline = time.monotonic() + 30
        while True:
            try:
                source.collect(time.time())
            except TegrastatsUnavailable as exc:
                assert "tegrastats is running but printed nothing for" in str(exc)
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        source.close()
