"""Jetson sources: Tegra sysfs readers on fake trees written from real recordings (Orin Nano
tegrastats log, AGX Orin Power GUI CSV), Thor's layout and broken trees; the jtop mapping on the
recorded jetson-stats 7.2.2 dict; and the jtop source against the REAL jetson-stats 7.2.2 service
on a simulated Orin Nano (tests/jtop_sim/: needs root, `unshare` and overlayfs; pip fetches the
pinned jetson-stats into .run/jtop-sim/ on first use)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors import tegra
from collectors.agent import Agent
from collectors.recording import validate_record
from collectors.sources import tegra_sysfs as ts
from collectors.sources.tegra_sysfs import TegraSysfsSource
from tests.jetson_tree import JetsonTree, agx_orin_frames, orin_nano_frames


@pytest.fixture
def nano(tmp_path) -> JetsonTree:
    return JetsonTree(tmp_path / "nano", "orin-nano-jp6").build()


def test_orin_nano_replay_of_the_real_log_reads_back(nano):
    frames = orin_nano_frames()
    for frame in frames:
        nano.apply(frame)
        v = ts.sysfs_values(nano.root)
        validate_record({"ts": 1.0, "source": "tegra_sysfs", "values": v})
        assert v["gpu_load_ratio"] == pytest.approx(frame["gpu_load_ratio"])
        for rail in ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"):
            key = f'power_watts{{rail="{rail}"}}'
            assert v[key] == pytest.approx(frame[key], abs=0.005)  # mV x mA rounding
        for zone in ("cpu", "gpu", "tj", "soc0", "soc1", "soc2"):
            key = f'temperature_celsius{{zone="{zone}"}}'
            assert v[key] == pytest.approx(frame[key], abs=0.001)
        assert 'temperature_celsius{zone="cv0"}' not in v  # -256 C: no sensor
    assert v["gpu_freq_max_hz"] == 1.02e9 and v["jetson_clocks_active"] == 0.0
    assert v["emc_freq_hz"] == 2.133e9 and v["emc_load_ratio"] == pytest.approx(0.12)
    assert v['fan_speed_ratio{fan="pwmfan"}'] == pytest.approx(67 / 255)
    assert v['fan_rpm{fan="pwmfan"}'] == 1145.0


def test_nvmap_processes_shared_memory_and_state(nano):
    nano.set_processes({4242: ("python3", 812_340), 1907: ("gnome-shell", 5_704)})
    nano.set_memory(total=7620 * 2**20, used=3000 * 2**20, swap_total=0, swap_used=0)
    assert tegra.nvmap_memory_by_pid(nano.root) == {4242: 812_340 * 1024, 1907: 5_704 * 1024}
    assert ts.shared_gpu_memory(nano.root) == (812_340 + 5_704) * 1024
    source = TegraSysfsSource(root=nano.root)
    assert source.available()
    values_record, state_record = source.collect(100.0)
    assert values_record["values"]['gpu_process_memory_bytes{pid="4242",process="python3"}'] == 812_340 * 1024
    assert state_record["state"] == {"board_model": "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super",
                                     "nvpmodel_id": 2, "nvpmodel": "MAXN_SUPER", "jetson_clocks": False}
    assert len(source.collect(101.0)) == 1  # state only every 30 s
    nano.lock_clocks(True)
    assert tegra.clocks_locked(nano.root) is True
    assert source.collect(140.0)[1]["state"]["jetson_clocks"] is True


def test_agx_orin_jp5_from_the_real_power_gui_csv(tmp_path):
    tree = JetsonTree(tmp_path / "agx", "agx-orin-jp5").build()
    for frame in agx_orin_frames(20):
        tree.apply(frame)
        v = ts.sysfs_values(tree.root)
        assert v["gpu_load_ratio"] == pytest.approx(frame["gpu_load_ratio"])
        assert v["gpu_freq_hz"] == pytest.approx(frame["gpu_freq_hz"])
        for rail in ("VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"):
            key = f'power_watts{{rail="{rail}"}}'
            assert v[key] == pytest.approx(frame[key], abs=0.005)
        assert not any('rail="NC"' in k for k in v)
    assert tegra.gpu_devfreq(tree.root).name == "17000000.ga10b"
    assert tegra.nvpmodel(tree.root) == (0, "MAXN")


def test_thor_layout_has_no_load_file(tmp_path):
    tree = JetsonTree(tmp_path / "thor", "thor-jp7").build()
    tree.set_gpu(load=0.9, freq_hz=1.575e9)
    tree.set_rail("VDD_GPU", 41.5)
    v = ts.sysfs_values(tree.root)
    assert tegra.gpu_devfreq(tree.root).name == "gpu-gpc-0"
    assert "gpu_load_ratio" not in v and v["gpu_freq_hz"] == 1.575e9
    assert v['power_watts{rail="VDD_GPU"}'] == pytest.approx(41.5, abs=0.01)


@pytest.mark.parametrize("content", ["", "abc", "nan", "-5", "99999999999999999999999", "12\x00garbage", "\ufffd" * 50])
def test_garbage_in_gpu_and_rail_files_is_dropped(nano, content):
    nano.set_gpu(load=0.5)
    for rel in ("sys/devices/platform/bus@0/17000000.gpu/load",
                "sys/devices/platform/bus@0/17000000.gpu/devfreq/17000000.gpu/cur_freq",
                "sys/bus/i2c/devices/1-0040/hwmon/hwmon1/curr1_input",
                "sys/devices/virtual/thermal/thermal_zone0/temp",
                "var/lib/nvpmodel/status"):
        (nano.root / rel).write_text(content)
    v = ts.sysfs_values(nano.root)
    validate_record({"ts": 1.0, "source": "tegra_sysfs", "values": v})
    assert "gpu_freq_max_hz" in v  # the intact files still read
    if content not in ("12\x00garbage",):
        assert "gpu_load_ratio" not in v and "gpu_freq_hz" not in v
        assert 'power_watts{rail="VDD_IN"}' not in v
        if content != "-5":  # -5 m C is a real (cold) reading
            assert 'temperature_celsius{zone="cpu"}' not in v
    assert all(math.isfinite(x) for x in v.values())
    assert tegra.nvpmodel(nano.root) is None


def test_missing_files_and_hostile_nvmap_rows(nano):
    (nano.root / "sys/kernel/debug/bpmp/debug/clk/emc/rate").unlink()
    (nano.root / "proc/meminfo").write_text("MemTotal: 100 kB\nNvMapMemUsed: -5 kB\n")
    (nano.root / "sys/kernel/debug/nvmap/iovmm/maps").write_text(
        'CLIENT PROCESS PID SIZE\nuser evil"}{name 77 100K\nuser x 0 5K\nuser y 99999999999 5K\n'
        "garbage line\nuser z 12 notanumberK\ntotal 105K\n")
    assert ts.emc(nano.root) == {"emc_freq_max_hz": 3.199e9}  # no rate: no frequency, no load
    assert ts.shared_gpu_memory(nano.root) is None
    assert tegra.nvmap_memory_by_pid(nano.root) == {77: 100 * 1024}
    v = ts.sysfs_values(nano.root)
    validate_record({"ts": 1.0, "source": "tegra_sysfs", "values": v})
    assert v['gpu_process_memory_bytes{pid="77",process="evil\\"}{name"}'] == 100 * 1024


def test_empty_tree_is_a_clear_status_and_the_agent_keeps_running(tmp_path):
    source = TegraSysfsSource(root=tmp_path)
    assert not source.available()
    agent = Agent("t", [source], store=None)
    try:
        records = agent.collect_due(time.time())
        assert not agent.status["tegra_sysfs"].ok
        assert "no GPU, power or thermal file readable" in agent.status["tegra_sysfs"].message
        assert records[-1]["values"]['agent_source_up{source="tegra_sysfs"}'] == 0.0
    finally:
        agent.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=600))
def test_fuzz_nvmap_and_meminfo_text(tmp_path_factory, text):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "sys/kernel/debug/nvmap/iovmm").mkdir(parents=True)
    (root / "proc").mkdir()
    (root / "sys/kernel/debug/nvmap/iovmm/maps").write_text(text, errors="replace")
    (root / "proc/meminfo").write_text(text, errors="replace")
    by_pid = tegra.nvmap_memory_by_pid(Path(root))
    assert by_pid is not None and all(pid > 0 and size >= 0 for pid, size in by_pid.items())
    shared = ts.shared_gpu_memory(Path(root))
    assert shared is None or shared >= 0


# -- jtop ----------------------------------------------------------------------------------------

JTOP_FIXTURE = Path(__file__).parent / "fixtures/jtop/orin_nano_sim_jtop_7.2.2.json"


def test_jtop_raw_dict_maps_to_base_units():
    import json

    from collectors.sources.jtop import raw_values

    raw = json.loads(JTOP_FIXTURE.read_text())["raw"]
    values, state = raw_values(raw)
    validate_record({"ts": 1.0, "source": "jtop", "values": values})
    assert values["gpu_load_ratio"] == pytest.approx(0.48)
    assert values["gpu_freq_hz"] == 612e6 and values["gpu_freq_max_hz"] == 1.02e9
    assert values["ram_total_bytes"] == 7_620_000 * 1024 and values["ram_used_bytes"] == 2_520_000 * 1024
    assert values["gpu_shared_memory_bytes"] == 818_044 * 1024
    assert values["emc_load_ratio"] == pytest.approx(0.12) and values["emc_freq_hz"] == 2.133e9
    assert values['power_watts{rail="VDD_IN"}'] == pytest.approx(5.133)  # the `tot` entry, by name
    assert values['power_watts{rail="VDD_SOC"}'] == pytest.approx(1.540)
    assert values['temperature_celsius{zone="tj"}'] == 47.906 and 'temperature_celsius{zone="cv0"}' not in values
    assert values['fan_speed_ratio{fan="pwmfan"}'] == pytest.approx(0.26274509803921568)
    assert values['fan_rpm{fan="pwmfan"}'] == 1145.0
    assert values['gpu_process_memory_bytes{pid="4242",process="python3"}'] == 812_340 * 1024
    assert values['engine_active{engine="nvenc"}'] == 0.0 and values['engine_freq_hz{engine="vic"}'] == 435.2e6
    assert values["jetson_clocks_active"] == 0.0
    # the static /proc/stat of that tree: jtop reports idle 0, i.e. 100 % busy on every core
    assert values['cpu_load_ratio{cpu="5"}'] == 1.0 and values["cpu_total_load_ratio"] == 1.0
    assert state == {"jetson_clocks": False, "nvpmodel": "15W", "nvpmodel_id": 0}


def test_jtop_raw_dict_with_hostile_values_never_raises():
    from collectors.sources.jtop import raw_values

    raw = {"gpu": {"gpu": {"status": {"load": float("nan")}, "freq": {"cur": -5, "max": 1e300, "min": "x"}}},
           "mem": {"RAM": {"tot": 100, "used": 200, "shared": True}, "SWAP": [], "EMC": {"val": 250, "cur": 1}},
           "cpu": {"cpu": [{"online": True, "idle": -1, "freq": {"cur": float("inf")}}, "junk", {"online": False}]},
           "temperature": {'x"}\n': {"temp": 50, "online": True}, "bad": {"temp": 1e9}},
           "power": {"rail": {"R": {"power": "12", "avg": 5000}}, "tot": {"power": -1}},
           "fan": {"f": {"speed": [150, 50], "rpm": "fast"}},
           "processes": [[1, "u", "I", "G", 0, "S", 0, 0, 2**60, "big"], [0, "u", "I", "G", 0, "S", 0, 0, 5, "zero"],
                         ["pid", 1], None, [7, "u", "I", "G", 0, "S", 0, 0, 10, 'evil"}name']],
           "jc": "on", "nvp": {"model": {"name": 5, "id": "x"}}, "uptime": float("nan")}
    values, state = raw_values(raw)
    validate_record({"ts": 1.0, "source": "jtop", "values": values})
    assert values == {
        "emc_freq_hz": 1000.0, "ram_total_bytes": 102400.0, "ram_used_bytes": 204800.0,
        'cpu_online{cpu="0"}': 1.0, 'cpu_online{cpu="2"}': 0.0,
        'temperature_celsius{zone="x\\"}\\n"}': 50.0, 'power_avg_watts{rail="R"}': 5.0,
        'fan_speed_ratio{fan="f1"}': 0.5,
        'gpu_process_memory_bytes{pid="7",process="evil\\"}name"}': 10240.0,
    }
    assert state == {}
    assert raw_values("not a dict") == ({}, {})  # type: ignore[arg-type]


_json = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                     max_leaves=30)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["gpu", "mem", "cpu", "temperature", "power", "fan", "processes",
                                        "engines", "jc", "nvp", "uptime"]), _json))
def test_fuzz_jtop_raw_dict(raw):
    from collectors.sources.jtop import raw_values

    values, _state = raw_values(raw)
    validate_record({"ts": 1.0, "source": "jtop", "values": values})


def test_jtop_failure_messages_are_clear():
    from collectors.sources.jtop import JtopException, describe_failure

    cases = {
        "The jtop.service is not active. Please run:\nsudo jtop --install-service": ("not running", 5.0),
        "I can't access jtop.service.\nPlease logout or reboot this board.": ("permission denied", 30.0),
        "Mismatch version jtop service: [4.3.2] and client: [7.2.2]. Please run:\n\nsudo jtop --install-service":
            ("version mismatch (service 4.3.2, client 7.2.2)", 300.0),
        "Mismatch of Python versions between library and service": ("Python version mismatch", 300.0),
        "Lost connection with jtop server": ("lost connection", 2.0),
    }
    for text, (expected, wait) in cases.items():
        message, backoff = describe_failure(JtopException(text))
        assert message.startswith("jtop unavailable: ") and expected in message and backoff == wait
    assert describe_failure(EOFError())[0] == "jtop unavailable: lost connection with the jtop service"


def test_jtop_source_without_jetson_stats_installed():
    from collectors.sources.jtop import JtopSource, JtopUnavailable, jtop_importable

    assert not jtop_importable()  # jetson-stats (AGPL) is never installed into the project's venv
    source = JtopSource(root=Path("/"), interval=1.0)
    assert not source.available()
    with pytest.raises(JtopUnavailable, match="jetson-stats is not installed"):
        source.collect(time.time())
    with pytest.raises(JtopUnavailable, match=r"not installed.*reconnect in"):
        source.collect(time.time())  # backing off, not hammering


@pytest.fixture(scope="module")
def jtop_simulation(tmp_path_factory):
    """Run tests/jtop_sim/driver.py's scenario against the real jetson-stats, in a mount namespace."""
    import json
    import os
    import subprocess
    import sys

    from tests.jtop_sim import PROJECT, jetson_stats_site

    new, old = jetson_stats_site("7.2.2"), jetson_stats_site("4.3.2")
    sim = tmp_path_factory.mktemp("jtop-sim")
    JetsonTree(sim / "root", "orin-nano-jp6").build()
    env = {**os.environ, "SIM_DIR": str(sim), "PY_PREFIX": sys.base_prefix, "JTOP_SITE": str(new),
           "JTOP_OLD_SITE": str(old), "PYTHONPATH": f"{new}:{PROJECT}", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(["unshare", "-m", "bash", str(PROJECT / "tests/jtop_sim/ns.sh"), sys.executable,
                           "-m", "tests.jtop_sim.driver", "scenario"], cwd=PROJECT, env=env,
                          capture_output=True, text=True, timeout=300)
    steps: dict[str, list[dict]] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            obj = json.loads(line)
            steps.setdefault(obj["step"], []).append(obj)
    assert "done" in steps, f"scenario failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return steps


def test_real_jtop_no_service_then_sysfs_fallback(jtop_simulation):
    (no_service,) = jtop_simulation["no_service"]
    assert no_service["error"] == ("jtop unavailable: jtop.service is not running "
                                   "(install it: sudo jtop --install-service)")
    (fallback,) = jtop_simulation["no_service_fallback"]
    assert fallback["values"]["jtop_up"] == 0.0 and fallback["values"]["gpu_freq_max_hz"] == 1.02e9
    assert fallback["state"]["jtop_status"].endswith("; reading tegra_sysfs instead")


def test_real_jtop_reads_the_recorded_frames(jtop_simulation):
    samples = jtop_simulation["sample"]
    assert [s["index"] for s in samples] == [0, 1, 2]
    for sample in samples:
        v, frame, state = sample["values"], sample["frame"], sample["state"]
        validate_record({"ts": 1.0, "source": "jtop", "values": v})
        assert v["gpu_load_ratio"] == pytest.approx(frame["gpu_load_ratio"])
        for key in ('power_watts{rail="VDD_CPU_GPU_CV"}', 'power_watts{rail="VDD_SOC"}', 'power_watts{rail="VDD_IN"}'):
            assert v[key] == pytest.approx(frame[key], abs=0.01)
        for zone in ("cpu", "gpu", "tj", "soc0"):
            key = f'temperature_celsius{{zone="{zone}"}}'
            assert v[key] == pytest.approx(frame[key], abs=0.001)
        assert v["ram_total_bytes"] == frame["ram_total_bytes"]
        assert v["swap_total_bytes"] == frame["swap_total_bytes"]
        assert v['gpu_process_memory_bytes{pid="4242",process="llama-server"}'] == 3_145_728 * 1024
        assert v["gpu_shared_memory_bytes"] == (3_145_728 + 5_704) * 1024
        assert v["jtop_up"] == 1.0 and v["jtop_interval_seconds"] == 0.5 and v["jetson_clocks_active"] == 0.0
        assert state == {"jetson_clocks": False, "nvpmodel": "MAXN_SUPER", "nvpmodel_id": 2, "jtop_status": "jtop ok"}
    last = samples[-1]["values"]
    for cpu in range(6):  # per-core loads from the advancing /proc/stat: 10 %, 20 % ... 60 %
        assert last[f'cpu_load_ratio{{cpu="{cpu}"}}'] == pytest.approx(0.1 * (cpu + 1), abs=0.03)
    assert last["cpu_total_load_ratio"] == pytest.approx(0.35, abs=0.03)
    assert last["gpu_freq_hz"] == 1.02e9 and last['fan_speed_ratio{fan="pwmfan"}'] == pytest.approx(67 / 255)


def test_real_jtop_permission_lost_connection_and_reconnect(jtop_simulation):
    assert "permission denied on jtop.service" in jtop_simulation["permission"][0]["error"]
    (lost,) = jtop_simulation["lost"]
    assert lost["values"]["jtop_up"] == 0.0
    assert lost["values"]["gpu_load_ratio"] == pytest.approx(0.99)  # sysfs kept the data coming
    assert lost["state"]["jtop_status"] == ("jtop unavailable: lost connection with the jtop service; "
                                            "reading tegra_sysfs instead")
    assert jtop_simulation["lost_plain"][0]["error"] == "jtop unavailable: lost connection with the jtop service"
    (back,) = jtop_simulation["reconnected"]
    assert back["values"]["jtop_up"] == 1.0 and back["state"]["jtop_status"] == "jtop ok"


def test_real_jtop_interval_set_by_another_client(jtop_simulation):
    (interval,) = jtop_simulation["interval"]
    assert interval["other"] == "connected 2.0"
    assert interval["first_state"]["jtop_status"] == \
        "jtop ok; the service samples every 2 s, set by another client (asked for 0.5 s)"
    assert interval["values"]["jtop_interval_seconds"] == 2.0
    assert interval["later_values"]["jtop_up"] == 1.0  # still reading after > 3 of our intervals
    assert interval["later_state"] == {}  # unchanged state is not re-sent every sample


def test_real_jtop_version_mismatch(jtop_simulation):
    assert jtop_simulation["mismatch"][0]["error"] == (
        "jtop unavailable: version mismatch (service 4.3.2, client 7.2.2); install the same jetson-stats "
        "major.minor for the service and the agent")
