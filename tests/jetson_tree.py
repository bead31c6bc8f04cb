"""Fake Jetson sysfs/procfs trees on disk, driven by real recordings.

`JetsonTree(root, board).build()` writes the static part of a board (CPUs, GPU devfreq, EMC clock,
INA3221 rails, thermal zones, fan, devicetree model, nvpmodel config); `apply(values)` then writes
one sample of real telemetry (a parsed tegrastats line or a Power GUI CSV row, series in base units)
into the files the readers (ours and jetson-stats') read, and advances /proc/stat so per-core load
comes out as recorded. Boards:
  orin-nano-jp6  6 cores, devfreq 17000000.gpu, rails VDD_IN / VDD_CPU_GPU_CV / VDD_SOC (one INA3221)
  agx-orin-jp5   12 cores, devfreq 17000000.ga10b, rails VDD_GPU_SOC / VDD_CPU_CV / VIN_SYS_5V0 ...
  thor-jp7       14 cores, devfreq gpu-gpc-0 without a load file, rails VDD_GPU / VDD_CPU_SOC_MSS ...
Values the recording lacks (GPU clock in the Orin Nano log, EMC without sudo) get fixed defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from collectors.importers import power_gui_csv
from collectors.series import parse_series_key
from collectors.sources.tegrastats import parse_line

FIXTURES = Path(__file__).parent / "fixtures/real"
ORIN_NANO_LOG = next(FIXTURES.glob("joshua41057__*tegrastats*.log"))
AGX_ORIN_CSV = FIXTURES / "bkubwimana__tegra_inference__tegrastats.csv"

BOARDS = {
    "orin-nano-jp6": {
        "model": "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super",
        "ncpu": 6, "gpu": "17000000.gpu", "of_name": "gpu", "gpu_load_file": True,
        "gpu_min": 306_000_000, "gpu_max": 1_020_000_000, "cpu_max_khz": 1_728_000,
        "rails": {"1-0040": ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]},
        "zones": ["cpu", "gpu", "cv0", "soc0", "soc1", "soc2", "tj"],
        "modes": ["15W", "25W", "MAXN_SUPER", "7W"], "mode": 2,
        "release": "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic,"
                   " EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025",
    },
    "agx-orin-jp5": {
        "model": "Jetson AGX Orin", "ncpu": 12, "gpu": "17000000.ga10b", "of_name": "ga10b",
        "gpu_load_file": True, "gpu_min": 306_000_000, "gpu_max": 1_300_500_000, "cpu_max_khz": 2_201_600,
        "rails": {"1-0040": ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"], "1-0041": ["NC", "VDDQ_VDD2_1V8AO", "NC"]},
        "zones": ["CPU", "GPU", "CV0", "CV1", "CV2", "SOC0", "SOC1", "SOC2", "Tj"],
        "modes": ["MAXN", "15W", "30W", "50W"], "mode": 0,
        "release": "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref,"
                   " EABI: aarch64, DATE: Tue Aug  1 19:57:35 UTC 2023",
    },
    "thor-jp7": {
        "model": "NVIDIA Jetson AGX Thor Developer Kit", "ncpu": 14, "gpu": "gpu-gpc-0", "of_name": None,
        "gpu_load_file": False, "gpu_min": 300_000_000, "gpu_max": 1_575_000_000, "cpu_max_khz": 2_601_000,
        "rails": {"2-0040": ["VDD_GPU", "VDD_CPU_SOC_MSS", "VIN_SYS_5V0"]},
        "zones": ["cpu", "gpu", "soc", "tj"],
        "modes": ["MAXN", "120W", "90W"], "mode": 0,
        "release": "# R38 (release), REVISION: 2.0, GCID: 41844464, BOARD: generic,"
                   " EABI: aarch64, DATE: Fri Aug 22 00:00:00 UTC 2025",
    },
}
RAIL_MV = 5000  # the INA3221 inputs sit near 5 V on these modules


def orin_nano_frames() -> list[dict[str, float]]:
    """Every line of the real Orin Nano tegrastats log, parsed (series in base units)."""
    frames = []
    for line in ORIN_NANO_LOG.read_text(encoding="utf-8").splitlines():
        sample = parse_line(line)
        assert sample is not None
        frames.append(sample.values)
    return frames


def agx_orin_frames(limit: int = 50) -> list[dict[str, float]]:
    """The first `limit` rows of the real AGX Orin Power GUI CSV."""
    import csv

    with AGX_ORIN_CSV.open(newline="", encoding="utf-8") as fh:
        return [power_gui_csv.row_values(row) for _, row in zip(range(limit), csv.DictReader(fh), strict=False)]


def _write(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = str(value)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + ("\n" if text else ""))
    os.replace(tmp, path)  # readers never see a half-written file


def _link(target: str, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(target)


@dataclass
class JetsonTree:
    root: Path
    board: str = "orin-nano-jp6"
    jiffies: list[list[int]] = field(default_factory=list)  # per core [busy, idle]
    processes: dict[int, tuple[str, int]] = field(default_factory=dict)  # pid -> (name, gpu kB)

    @property
    def spec(self) -> dict:
        return BOARDS[self.board]

    @property
    def sys(self) -> Path:
        return self.root / "sys"

    @property
    def proc(self) -> Path:
        return self.root / "proc"

    @property
    def devfreq(self) -> Path:
        return self.sys / "class/devfreq" / self.spec["gpu"]

    def gpu_device(self) -> Path:
        return self.sys / "devices/platform/bus@0" / self.spec["gpu"].replace("gpu-gpc-0", "gpu")

    def build(self) -> JetsonTree:
        spec = self.spec
        ncpu = spec["ncpu"]
        _write(self.sys / "devices/system/cpu/online", f"0-{ncpu - 1}")
        _write(self.sys / "devices/system/cpu/present", f"0-{ncpu - 1}")
        for c in range(ncpu):
            base = self.sys / f"devices/system/cpu/cpu{c}"
            _write(base / "online", 1)
            for kind, low in (("scaling", 729_600), ("cpuinfo", 115_200)):
                _write(base / f"cpufreq/{kind}_min_freq", low)
                _write(base / f"cpufreq/{kind}_max_freq", spec["cpu_max_khz"])
                _write(base / f"cpufreq/{kind}_cur_freq", spec["cpu_max_khz"])
            _write(base / "cpufreq/scaling_governor", "schedutil")
            for i, state in enumerate(("WFI", "c7")):
                _write(base / f"cpuidle/state{i}/name", state)
                _write(base / f"cpuidle/state{i}/disable", 0)
        self.jiffies = [[1000, 15000] for _ in range(ncpu)]
        self._write_stat()
        _write(self.proc / "cpuinfo", "\n".join(
            f"processor\t: {c}\nmodel name\t: ARMv8 Processor rev 1 (v8l)\nBogoMIPS\t: 62.50\n"
            f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd42\nCPU revision\t: 1\n"
            for c in range(ncpu)))
        # GPU: the platform device, its devfreq node and the class link
        dev = self.gpu_device()
        node = dev / "devfreq" / spec["gpu"]
        if spec["of_name"]:
            _write(dev / "of_node/name", spec["of_name"])
        if spec["gpu_load_file"]:
            _write(dev / "load", 0)
        _write(dev / "railgate_enable", 0)
        _write(dev / "tpc_pg_mask", 0)
        _write(dev / "enable_3d_scaling", 1)
        _write(dev / "power/control", "auto")
        for name, value in (("cur_freq", spec["gpu_min"]), ("min_freq", spec["gpu_min"]),
                            ("max_freq", spec["gpu_max"]), ("governor", "nvhost_podgov")):
            _write(node / name, value)
        _link("../../../" + dev.name, node / "device")
        _link(os.path.relpath(node, self.devfreq.parent), self.devfreq)
        _write(self.sys / "kernel/debug/bpmp/debug/clk/nafll_gpc0/pto_counter", spec["gpu_min"])
        # EMC
        emc = self.sys / "kernel/debug/bpmp/debug/clk/emc"
        _write(emc / "rate", 2_133_000_000)
        _write(emc / "max_rate", 3_199_000_000)
        _write(emc / "min_rate", 204_000_000)
        _write(emc / "mrq_rate_locked", 0)
        _write(self.sys / "kernel/debug/cactmon/mc_all", 2_133_000 * 12)
        for name, rate, on in (("ape", 200_000_000, 0), ("nvdec", 524_800_000, 1), ("nvjpg", 499_200_000, 0),
                               ("ofa", 537_600_000, 0), ("se", 307_200_000, 0), ("vic", 435_200_000, 1),
                               ("nvenc", 0, 0)):
            _write(self.sys / f"kernel/debug/clk/{name}/clk_enable_count", on)
            _write(self.sys / f"kernel/debug/clk/{name}/clk_rate", rate)
        # INA3221 rails
        for bus, labels in spec["rails"].items():
            hw = self.sys / f"bus/i2c/devices/{bus}/hwmon/hwmon{1 + list(spec['rails']).index(bus)}"
            _write(self.sys / f"bus/i2c/devices/{bus}/name", "ina3221")
            for i, label in enumerate(labels, 1):
                _write(hw / f"in{i}_label", label)
                _write(hw / f"in{i}_input", RAIL_MV)
                _write(hw / f"curr{i}_input", 200)
                _write(hw / f"curr{i}_max", 32760)
                _write(hw / f"curr{i}_crit", 32760)
            _write(hw / "in7_label", "sum of shunt voltages")
            _write(hw / "in7_input", 0)
        # thermal zones (cv* are powered off: empty/-256 C)
        for i, zone in enumerate(spec["zones"]):
            z = self.sys / f"devices/virtual/thermal/thermal_zone{i}"
            _write(z / "type", f"{zone}-thermal")
            _write(z / "temp", -256000 if zone.lower().startswith("cv") else 45000)
            _link(os.path.relpath(z, self.sys / "class/thermal"), self.sys / f"class/thermal/thermal_zone{i}")
        # fan: pwmfan (pwm) and pwm_tach (rpm) as separate hwmon nodes
        _write(self.sys / "class/hwmon/hwmon2/name", "pwmfan")
        _write(self.sys / "class/hwmon/hwmon2/pwm1", 67)
        _write(self.sys / "class/hwmon/hwmon3/name", "pwm_tach")
        _write(self.sys / "class/hwmon/hwmon3/rpm", 1145)
        # identity, release, nvpmodel
        _write(self.sys / "firmware/devicetree/base/model", spec["model"])
        _write(self.sys / "firmware/devicetree/base/serial-number", "1421123049835")
        _write(self.proc / "device-tree/model", spec["model"])
        _write(self.root / "etc/nv_tegra_release", spec["release"])
        _write(self.root / "etc/nvpmodel.conf", "\n".join(
            f"< POWER_MODEL ID={i} NAME={name} >" for i, name in enumerate(spec["modes"])))
        _write(self.root / "var/lib/nvpmodel/status", f"pmode:{spec['mode']:04d} fmode:quiet")
        # procfs odds and ends
        _write(self.proc / "uptime", "931.41 5000.00")
        _write(self.proc / "loadavg", "0.10 0.20 0.30 1/100 4242")
        _write(self.proc / "vmstat", "pswpin 0\npswpout 0")
        _write(self.proc / "swaps", "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
                                    "/dev/zram0                              partition\t635000\t\t0\t\t5")
        _write(self.proc / "buddyinfo",
               "Node 0, zone      DMA     10      8      5      3      2      1      1      0      1      1     12")
        self.set_memory(total=7620 * 1024 * 1024, used=2400 * 1024 * 1024, swap_total=0, swap_used=0)
        self.set_processes({})
        return self

    def reload(self) -> JetsonTree:
        """Attach to a tree built earlier (by another process): pick up its /proc/stat counters."""
        self.jiffies = []
        for line in (self.proc / "stat").read_text().splitlines():
            parts = line.split()
            if parts and parts[0].startswith("cpu") and parts[0] != "cpu":
                self.jiffies.append([int(parts[1]), int(parts[4])])
        return self

    # -- dynamic state -------------------------------------------------------------------------
    def _write_stat(self) -> None:
        busy = sum(b for b, _ in self.jiffies)
        idle = sum(i for _, i in self.jiffies)
        lines = [f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0"]
        lines += [f"cpu{c} {b} 0 0 {i} 0 0 0 0 0 0" for c, (b, i) in enumerate(self.jiffies)]
        lines += ["intr 1", "ctxt 1", "btime 1", "processes 1", "procs_running 1", "procs_blocked 0"]
        _write(self.proc / "stat", "\n".join(lines))

    def set_cpu_loads(self, loads: dict[int, float], online: dict[int, bool] | None = None) -> None:
        """Advance /proc/stat by 100 jiffies per core, split busy/idle by each core's load."""
        for c, load in loads.items():
            if c < len(self.jiffies):
                busy = round(max(0.0, min(1.0, load)) * 100)
                self.jiffies[c][0] += busy
                self.jiffies[c][1] += 100 - busy
        for c, on in (online or {}).items():
            _write(self.sys / f"devices/system/cpu/cpu{c}/online", 1 if on else 0)
        self._write_stat()

    def set_memory(self, total: float, used: float, swap_total: float, swap_used: float,
                   swap_cached: float = 0.0) -> None:
        total_kb, used_kb = int(total // 1024), int(used // 1024)
        buffers, cached = 100_000, max(0, min(1_900_000, total_kb - used_kb - 200_000))
        free = max(0, total_kb - used_kb - buffers - cached)
        nvmap_kb = sum(kb for _, kb in self.processes.values())
        _write(self.proc / "meminfo", "\n".join([
            f"MemTotal:       {total_kb} kB", f"MemFree:        {free} kB",
            f"MemAvailable:   {total_kb - used_kb} kB", f"Buffers:        {buffers} kB",
            f"Cached:         {cached} kB", f"SwapCached:     {int(swap_cached // 1024)} kB",
            "SReclaimable:     0 kB", f"SwapTotal:      {int(swap_total // 1024)} kB",
            f"SwapFree:       {int((swap_total - swap_used) // 1024)} kB", "Shmem:          40000 kB",
            f"NvMapMemUsed:   {nvmap_kb} kB"]))

    def set_processes(self, processes: dict[int, tuple[str, int]]) -> None:
        """nvmap iovmm clients: pid -> (name, GPU memory in kB); also their /proc/<pid> files."""
        self.processes = dict(processes)
        rows = ["CLIENT                        PROCESS      PID        SIZE"]
        rows += [f"user {name:>24} {pid:8d} {kb:9d}K" for pid, (name, kb) in processes.items()]
        rows.append(f"total {sum(kb for _, kb in processes.values()):43d}K")
        _write(self.sys / "kernel/debug/nvmap/iovmm/maps", "\n".join(rows))
        for pid, (name, _kb) in processes.items():
            _write(self.proc / f"{pid}/stat", f"{pid} ({name}) S 1 {pid} {pid} 0 -1 4194560 1 0 0 0 5000 1000 0 0 "
                   "20 0 12 0 100 1000000 2000 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0")
            _write(self.proc / f"{pid}/statm", "100000 50000 1000 10 0 2000 0")
            _write(self.proc / f"{pid}/comm", name)
            _write(self.proc / f"{pid}/loginuid", 0)

    def set_gpu(self, load: float | None = None, freq_hz: float | None = None,
                min_hz: float | None = None, max_hz: float | None = None) -> None:
        node = self.gpu_device() / "devfreq" / self.spec["gpu"]
        if load is not None and self.spec["gpu_load_file"]:
            _write(self.gpu_device() / "load", round(max(0.0, min(1.0, load)) * 1000))
        if freq_hz is None and load is not None:
            freq_hz = self.spec["gpu_max"] if load > 0.5 else self.spec["gpu_min"]
        if freq_hz is not None:
            _write(node / "cur_freq", int(freq_hz))
            _write(self.sys / "kernel/debug/bpmp/debug/clk/nafll_gpc0/pto_counter", int(freq_hz))
        if min_hz is not None:
            _write(node / "min_freq", int(min_hz))
        if max_hz is not None:
            _write(node / "max_freq", int(max_hz))

    def set_rail(self, label: str, watts: float) -> None:
        for bus, labels in self.spec["rails"].items():
            if label in labels:
                i = labels.index(label) + 1
                hw = self.sys / f"bus/i2c/devices/{bus}/hwmon/hwmon{1 + list(self.spec['rails']).index(bus)}"
                _write(hw / f"curr{i}_input", round(watts * 1e6 / RAIL_MV))

    def set_temperature(self, zone: str, celsius: float) -> None:
        for i, name in enumerate(self.spec["zones"]):
            if name.lower() == zone.lower():
                _write(self.sys / f"devices/virtual/thermal/thermal_zone{i}/temp", round(celsius * 1000))

    def lock_clocks(self, locked: bool) -> None:
        """What jetson_clocks does (or undoes): CPU and GPU minimum = maximum."""
        spec = self.spec
        for c in range(spec["ncpu"]):
            _write(self.sys / f"devices/system/cpu/cpu{c}/cpufreq/scaling_min_freq",
                   spec["cpu_max_khz"] if locked else 729_600)
        self.set_gpu(min_hz=spec["gpu_max"] if locked else spec["gpu_min"])

    def apply(self, values: dict[str, float]) -> None:
        """Write one recorded sample (series in base units) into the tree."""
        loads: dict[int, float] = {}
        online: dict[int, bool] = {}
        for key, value in values.items():
            name, labels = parse_series_key(key)
            if name == "cpu_load_ratio":
                loads[int(labels["cpu"])] = value
            elif name == "cpu_online":
                online[int(labels["cpu"])] = bool(value)
            elif name == "cpu_freq_hz":
                _write(self.sys / f"devices/system/cpu/cpu{labels['cpu']}/cpufreq/scaling_cur_freq", int(value / 1000))
            elif name == "power_watts":
                self.set_rail(labels["rail"], value)
            elif name == "temperature_celsius":
                self.set_temperature(labels["zone"], value)
        self.set_cpu_loads(loads, online)
        if "gpu_load_ratio" in values or "gpu_freq_hz" in values:
            self.set_gpu(load=values.get("gpu_load_ratio"), freq_hz=values.get("gpu_freq_hz"))
        if "emc_freq_hz" in values:
            _write(self.sys / "kernel/debug/bpmp/debug/clk/emc/rate", int(values["emc_freq_hz"]))
        if "ram_total_bytes" in values and "ram_used_bytes" in values:
            self.set_memory(values["ram_total_bytes"], values["ram_used_bytes"],
                            values.get("swap_total_bytes", 0.0), values.get("swap_used_bytes", 0.0),
                            values.get("swap_cached_bytes", 0.0))
