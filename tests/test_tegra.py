"""Jetson platform facts (collectors/tegra): the GPU devfreq matcher on every board's node names,
the clock test, power models, nvmap tables and zone labels, and that sources, tuning checks and
actions all answer from them (one definition, so they cannot disagree)."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors import tegra
from collectors.actions.context import ActionContext
from collectors.actions.knobs import gpu_power_controls
from collectors.actions.tools import clocks_locked as action_clocks_locked
from collectors.actions.tools import nvpmodel_modes
from collectors.sources import tegra_sysfs, tuning
from tests.jetson_tree import JetsonTree

GPU_NODES = ["17000000.gpu", "57000000.gpu", "17000000.ga10b", "17000000.gv11b", "17000000.gp10b",
             "57000000.gm20b", "9000000.gb10b", "gpu-gpc-0", "gpu-gpc-1", "gpu.0", "17000000.GA10B"]
OTHER_NODES = ["13e40000.host1x", "15880000.nvdla0", "16000000.pva0", "15340000.vic", "154c0000.nvenc",
               "emc", "cpufreq", "gpufreq-debug", "17000000.gpu-pm", "mygpu", "gpu-gpc-x", "ga10b-helper"]


@pytest.mark.parametrize("name", GPU_NODES)
def test_every_jetson_gpu_node_name_matches(name):
    assert tegra.is_gpu_devfreq(name)


@pytest.mark.parametrize("name", OTHER_NODES)
def test_other_devfreq_nodes_do_not_match(name):
    assert not tegra.is_gpu_devfreq(name)


def _devfreq(root: Path, name: str, lo: int, hi: int) -> Path:
    node = root / "sys/class/devfreq" / name
    node.mkdir(parents=True)
    (node / "min_freq").write_text(f"{lo}\n")
    (node / "max_freq").write_text(f"{hi}\n")
    (node / "device/power").mkdir(parents=True)
    (node / "device/power/control").write_text("auto\n")
    return node


def _cpu(root: Path, index: int, lo: int, hi: int, online: int | None = None) -> None:
    base = root / f"sys/devices/system/cpu/cpu{index}"
    (base / "cpufreq").mkdir(parents=True)
    (base / "cpufreq/scaling_min_freq").write_text(f"{lo}\n")
    (base / "cpufreq/scaling_max_freq").write_text(f"{hi}\n")
    if online is not None:
        (base / "online").write_text(f"{online}\n")


@pytest.mark.parametrize("gpu", ["17000000.gp10b", "9000000.gb10b", "17000000.gv11b"])
def test_sources_tuning_and_actions_agree_on_boards_the_old_matchers_missed(tmp_path, gpu):
    """tools.py knew only gpu/ga10b/gv11b, tegra_sysfs no gb10b: now one answer everywhere."""
    _devfreq(tmp_path, "15340000.vic", 100, 900)  # not the GPU: never read
    _devfreq(tmp_path, gpu, 1_000, 1_000)
    _cpu(tmp_path, 0, 5, 5)
    _cpu(tmp_path, 1, 1, 9, online=0)  # offline cores do not count
    assert tegra.gpu_devfreq(tmp_path).name == gpu
    assert tegra.clocks_locked(tmp_path) is True
    assert tuning.clocks_locked(tmp_path) == {"cpu": True, "gpu": True, "emc": None}
    assert action_clocks_locked(ActionContext(root=tmp_path)) is True
    assert set(gpu_power_controls(tmp_path)) == {gpu}
    assert set(tuning.gpu_runtime_pm(tmp_path, []) or {}) == {gpu}
    (tmp_path / "sys/class/devfreq" / gpu / "min_freq").write_text("500\n")
    assert tegra.clocks_locked(tmp_path) is False
    assert tuning.clocks_locked(tmp_path)["gpu"] is False
    assert action_clocks_locked(ActionContext(root=tmp_path)) is False


def test_clock_pins_cover_emc_and_unknowns(tmp_path):
    assert tegra.clock_pins(tegra.clock_files(tmp_path)) == {"cpu": None, "gpu": None, "emc": None}
    assert tegra.clocks_locked(tmp_path) is None  # nothing readable: unknown, not "unlocked"
    _cpu(tmp_path, 0, 5, 5)
    assert tegra.clocks_locked(tmp_path) is None  # no GPU node: jetson_clocks cannot be judged
    emc = tmp_path / tegra.clocks.EMC
    emc.mkdir(parents=True)
    (emc / "min_rate").write_text("204000000\n")
    (emc / "max_rate").write_text("3199000000\n")
    assert tegra.clock_pins(tegra.clock_files(tmp_path))["emc"] is False
    (emc / "mrq_rate_locked").write_text("1\n")
    assert tegra.clock_pins(tegra.clock_files(tmp_path))["emc"] is True
    assert tegra.jetson_clocks_active({"cpu": True, "gpu": False, "emc": True}) is False


def test_jetson_tree_clocks_agree_across_readers(tmp_path):
    tree = JetsonTree(tmp_path / "nano", "orin-nano-jp6").build()
    for locked in (False, True):
        tree.lock_clocks(locked)
        assert tegra.clocks_locked(tree.root) is locked
        assert tegra_sysfs.sysfs_values(tree.root)["jetson_clocks_active"] == float(locked)
        assert action_clocks_locked(ActionContext(root=tree.root)) is locked
        pins = tuning.clocks_locked(tree.root)
        assert pins["cpu"] is locked and pins["gpu"] is locked


CONF = "< POWER_MODEL ID=0 NAME=15W >\nCPU_ONLINE CORE_0 1\n< POWER_MODEL ID=2 NAME=MAXN_SUPER >\n" \
       "< POWER_MODEL ID=3 NAME=" + "X" * 80 + " >\n<POWER_MODEL ID=9 NAME=broken\n"


def test_power_models_one_parser_for_source_tuning_and_action(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nvpmodel.conf").write_text(CONF)
    (tmp_path / "var/lib/nvpmodel").mkdir(parents=True)
    (tmp_path / "var/lib/nvpmodel/status").write_text("pmode:0002 fmode:quiet\n")
    assert tegra.parse_power_models(CONF) == {0: "15W", 2: "MAXN_SUPER", 3: "X" * 64}
    assert tegra.nvpmodel(tmp_path) == (2, "MAXN_SUPER")
    assert tuning.nvpmodel(tmp_path) == {"id": 2, "name": "MAXN_SUPER"}
    assert nvpmodel_modes(ActionContext(root=tmp_path))["MAXN_SUPER"] == 2
    for status in ("", "pmode:", "pmode:abc", "garbage"):
        assert tegra.parse_status(status) is None
    assert tegra.parse_status("pmode: 7") == 7


def test_nvmap_maps_preferred_over_clients_and_rows_parsed(tmp_path):
    assert tegra.nvmap_memory_by_pid(tmp_path) is None
    base = tmp_path / "sys/kernel/debug/nvmap/iovmm"
    base.mkdir(parents=True)
    (base / "clients").write_text("CLIENT PROCESS PID SIZE\nuser a 5 1K\n")
    assert tegra.nvmap_memory_by_pid(tmp_path) == {5: 1024}
    (base / "maps").write_text("CLIENT PROCESS PID SIZE\nuser gnome shell 900 1024K\nuser py 7 2K\n"
                               "user py 7 3K\nuser bad abc 1K\nuser zero 0 1K\ntotal 1029K\n")
    assert tegra.nvmap_file(tmp_path) == base / "maps"
    assert tegra.parse_nvmap((base / "maps").read_text())[0] == (900, "gnome shell", 1024 * 1024)
    assert tegra.nvmap_memory_by_pid(tmp_path) == {900: 1024 * 1024, 7: 5 * 1024}


@pytest.mark.parametrize(("raw", "label"), [("cpu-thermal", "cpu"), ("GPU", "gpu"), ("Tj", "tj"),
                                            ("soc0_thermal", "soc0"), ("CV0-thermal", "cv0")])
def test_zone_labels_match_jtop_names(raw, label):
    assert tegra.zone_label(raw) == label


def test_tegrastats_and_sysfs_write_the_same_zone_labels(tmp_path):
    from collectors.sources.tegrastats import parse_line

    tree = JetsonTree(tmp_path / "agx", "agx-orin-jp5").build()  # zone types "CPU-thermal", "Tj-thermal"
    sysfs = {k for k in tegra_sysfs.sysfs_values(tree.root) if k.startswith("temperature_celsius")}
    sample = parse_line("RAM 2448/30536MB CPU [0%@729] CPU@45.4C Tj@46.1C GPU@40C")
    stats = {k for k in sample.values if k.startswith("temperature_celsius")}
    assert stats and stats <= sysfs
