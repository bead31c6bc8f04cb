"""Jetson (Tegra) telemetry read straight from sysfs/procfs: the fallback when jtop is absent or
broken. Every reader takes the tree's root and returns a value or None (missing file, garbage).

Sources and units:
- GPU: /sys/class/devfreq/<gpu>/{cur_freq,max_freq,min_freq} (Hz); the GPU node is the devfreq
  device named *.gpu (JP6), *.ga10b / *.gv11b / *.gp10b (JP5 and older) or gpu-gpc-0 (Thor, JP7);
  load from <devfreq>/device/load (per-mille; absent on Thor) -> gpu_load_ratio 0..1.
- EMC: /sys/kernel/debug/bpmp/debug/clk/emc/{rate,max_rate,min_rate} (Hz); load from
  /sys/kernel/actmon_avg_activity/mc_all or /sys/kernel/debug/cactmon/mc_all, which counts
  kHz x percent (load % = mc_all / rate_kHz) -> emc_load_ratio.
- Shared GPU memory: /proc/meminfo NvMapMemUsed (kB) -> gpu_shared_memory_bytes. Per process:
  /sys/kernel/debug/nvmap/iovmm/maps (or clients), rows `user <name> <pid> <size>K`.
- Power: INA3221 hwmon (/sys/bus/i2c/devices/*/hwmon/hwmon*/in<N>_label, in<N>_input mV,
  curr<N>_input mA) or the older iio driver (rail_name_<N>, in_power<N>_input mW) -> power_watts{rail}.
- Temperatures: /sys/class/thermal and /sys/devices/virtual/thermal thermal_zone*/{type,temp}
  (m C; -256 C = no sensor) -> temperature_celsius{zone}, zone named as jtop does ("cpu", "tj").
- Fan: hwmon named pwmfan (pwm<N>, 0..255) -> fan_speed_ratio{fan}; pwm_tach / pwmfan rpm -> fan_rpm{fan}.
- jetson_clocks hint: jetson_clocks_active 1 when the GPU devfreq min == max and every online
  CPU's scaling_min_freq == scaling_max_freq (what jetson_clocks does), else 0.
- nvpmodel: /var/lib/nvpmodel/status (`pmode:0002 ...`) with names from /etc/nvpmodel.conf
  (`< POWER_MODEL ID=2 NAME=MAXN_SUPER >`) -> state nvpmodel, nvpmodel_id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from collectors.files import read as _read_file
from collectors.files import read_int as _int
from collectors.series import series_key
from collectors.sources.base import Source
from collectors.sources.keys import key1
from collectors.tegra import (
    ClockFiles,
    clock_files,
    clock_pins,
    gpu_devfreq,
    jetson_clocks_active,
    nvmap_file,
    nvpmodel,
    parse_nvmap,
    zone_label,
)
from collectors.text import is_uint

_MAX_FILE = 1 << 20


# -- plain reads (os-level: these run every second on a small board) ------------------------------

def _read(path: str | None, limit: int = 65536) -> str | None:
    return _read_file(path, limit)


def _read_big(path: str) -> str | None:
    return _read_file(path, _MAX_FILE)


def _safe_glob(base: Path, pattern: str) -> list[Path]:
    try:
        return sorted(base.glob(pattern))
    except OSError:
        return []


def _finite(value: float | None, upper: float = math.inf) -> float | None:
    if value is None or not math.isfinite(value) or value < 0 or value > upper:
        return None
    return float(value)


# -- discovery: which files exist is fixed for a boot; found once, re-checked now and then -------

@dataclass
class Layout:
    """Paths (strings) of the files this module reads on one tree."""

    root: Path
    gpu_node: str | None = None
    gpu_load: str | None = None
    emc: str | None = None
    mc_all: str | None = None
    meminfo: str = ""
    nvmap: str | None = None
    rails: list[tuple[str, str, str]] = field(default_factory=list)  # label, mV file, mA file
    iio_rails: list[tuple[str, str]] = field(default_factory=list)  # label, mW file
    zones: list[tuple[str, str]] = field(default_factory=list)  # name, m C file
    fan_pwm: str | None = None
    fan_rpm: str | None = None
    clocks: ClockFiles = field(default_factory=ClockFiles)


def discover(root: Path) -> Layout:
    layout = Layout(root=root, meminfo=str(root / "proc/meminfo"))
    node = gpu_devfreq(root)
    if node is not None:
        layout.gpu_node = str(node)
        loads = (node / "device/load", root / "sys/devices/platform/gpu.0/load", root / "sys/devices/gpu.0/load")
        for candidate in loads:
            if candidate.is_file():
                layout.gpu_load = str(candidate)
                break
    emc = root / "sys/kernel/debug/bpmp/debug/clk/emc"
    if emc.is_dir():
        layout.emc = str(emc)
    for rel in ("sys/kernel/actmon_avg_activity/mc_all", "sys/kernel/debug/cactmon/mc_all"):
        if (root / rel).is_file():
            layout.mc_all = str(root / rel)
            break
    nvmap = nvmap_file(root)
    layout.nvmap = str(nvmap) if nvmap is not None else None
    for label_file in _safe_glob(root / "sys/bus/i2c/devices", "*/hwmon/hwmon*/in*_label"):
        label = (_read(str(label_file), 256) or "").strip()
        index = label_file.name[2:-len("_label")]
        if label and is_uint(index) and "sum of shunt" not in label.lower() and label.upper() != "NC":
            folder = label_file.parent
            layout.rails.append((label[:64], str(folder / f"in{index}_input"), str(folder / f"curr{index}_input")))
    for name_file in _safe_glob(root / "sys/bus/i2c/devices", "*/iio:device*/rail_name_*"):
        label = (_read(str(name_file), 256) or "").strip()
        index = name_file.name.rsplit("_", 1)[-1]
        if label and label.upper() != "NC":
            layout.iio_rails.append((label[:64], str(name_file.parent / f"in_power{index}_input")))
    for base in ("sys/class/thermal", "sys/devices/virtual/thermal"):
        for zone in _safe_glob(root / base, "thermal_zone*"):
            name = zone_label((_read(str(zone / "type"), 256) or "").strip())
            if name and name not in {n for n, _ in layout.zones}:
                layout.zones.append((name, str(zone / "temp")))
        if layout.zones:
            break
    for hwmon in _safe_glob(root / "sys/class/hwmon", "hwmon*"):
        name = (_read(str(hwmon / "name"), 256) or "").strip()
        if name == "pwmfan" and layout.fan_pwm is None:
            pwms = _safe_glob(hwmon, "pwm[0-9]")
            layout.fan_pwm = str(pwms[0]) if pwms else None
        if name in ("pwm_tach", "pwmfan") and (hwmon / "rpm").is_file() and layout.fan_rpm is None:
            layout.fan_rpm = str(hwmon / "rpm")
    if node is not None:  # jetson_clocks_active needs the GPU; the EMC (debugfs) is the tuning source's
        layout.clocks = clock_files(root, emc=False)
    return layout


# -- readers over a layout ------------------------------------------------------------------------

def _gpu(layout: Layout) -> dict[str, float]:
    if layout.gpu_node is None:
        return {}
    node = layout.gpu_node
    out = {
        "gpu_freq_hz": _finite(_int(node + "/cur_freq"), 1e11),
        "gpu_freq_max_hz": _finite(_int(node + "/max_freq"), 1e11),
        "gpu_freq_min_hz": _finite(_int(node + "/min_freq"), 1e11),
    }
    load = _int(layout.gpu_load)
    out["gpu_load_ratio"] = _finite(load / 1000.0, 1.0) if load is not None else None
    return {k: v for k, v in out.items() if v is not None}


def _emc(layout: Layout) -> dict[str, float]:
    if layout.emc is None:
        return {}
    rate = _finite(_int(layout.emc + "/rate"), 1e11)
    out = {"emc_freq_hz": rate, "emc_freq_max_hz": _finite(_int(layout.emc + "/max_rate"), 1e11)}
    mc_all = _int(layout.mc_all)
    if mc_all is not None and rate:
        out["emc_load_ratio"] = _finite(mc_all / (rate / 1000.0) / 100.0, 1.0)
    return {k: v for k, v in out.items() if v is not None}


def _meminfo_kb(path: str, field_name: str) -> int | None:
    text = _read_big(path)
    if text is None:
        return None
    start = text.find(field_name + ":")
    if start < 0 or (start > 0 and text[start - 1] != "\n"):
        return None
    try:
        value = int(text[start + len(field_name) + 1:].split(None, 1)[0])
    except (ValueError, IndexError):
        return None
    return value if 0 <= value < 2**40 else None


def _nvmap_rows(layout: Layout) -> list[tuple[int, str, int]]:
    return parse_nvmap(_read_big(layout.nvmap) if layout.nvmap else None)


def _rails(layout: Layout) -> dict[str, float]:
    out: dict[str, float] = {}
    for label, mv_file, ma_file in layout.rails:
        mv, ma = _int(mv_file), _int(ma_file)
        if mv is not None and ma is not None and 0 <= mv <= 100_000 and 0 <= ma <= 100_000:
            out[label] = mv * ma / 1e6
    for label, mw_file in layout.iio_rails:
        mw = _int(mw_file)
        if mw is not None and 0 <= mw < 10_000_000:
            out[label] = mw / 1000.0
    return out


def _temperatures(layout: Layout) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, temp_file in layout.zones:
        milli = _int(temp_file)
        if milli is not None and -100_000 < milli < 200_000:  # -256 C = no sensor
            out[name] = milli / 1000.0
    return out


def _fans(layout: Layout) -> dict[str, float]:
    out: dict[str, float] = {}
    pwm = _int(layout.fan_pwm)
    if pwm is not None and 0 <= pwm <= 255:
        out[key1("fan_speed_ratio", "fan", "pwmfan")] = pwm / 255.0
    rpm = _int(layout.fan_rpm)
    if rpm is not None and 0 <= rpm < 100_000:
        out[key1("fan_rpm", "fan", "pwmfan")] = float(rpm)
    return out


def _clocks_locked(layout: Layout) -> bool | None:
    return jetson_clocks_active(clock_pins(layout.clocks)) if layout.gpu_node is not None else None


def read_layout(layout: Layout) -> dict[str, float]:
    """Every numeric series readable through `layout`."""
    values: dict[str, float] = {}
    values.update(_gpu(layout))
    values.update(_emc(layout))
    shared = _meminfo_kb(layout.meminfo, "NvMapMemUsed")
    if shared is not None:
        values["gpu_shared_memory_bytes"] = float(shared * 1024)
    for rail, watts in _rails(layout).items():
        values[key1("power_watts", "rail", rail)] = watts
    for zone, celsius in _temperatures(layout).items():
        values[key1("temperature_celsius", "zone", zone)] = celsius
    values.update(_fans(layout))
    locked = _clocks_locked(layout)
    if locked is not None:
        values["jetson_clocks_active"] = 1.0 if locked else 0.0
    sizes: dict[tuple[int, str], float] = {}
    for pid, name, size in _nvmap_rows(layout):
        sizes[(pid, name)] = sizes.get((pid, name), 0.0) + size
    for (pid, name), total in sizes.items():
        values[series_key("gpu_process_memory_bytes", pid=pid, process=name)] = total
    return values


# -- one-shot readers (take the root; used by other sources, the doctor and tests) ----------------

def sysfs_values(root: Path) -> dict[str, float]:
    """Every numeric series this module can read."""
    return read_layout(discover(root))


def gpu(root: Path) -> dict[str, float] | None:
    """gpu_load_ratio, gpu_freq_hz, gpu_freq_max_hz, gpu_freq_min_hz."""
    return _gpu(discover(root)) or None


def emc(root: Path) -> dict[str, float] | None:
    """emc_freq_hz, emc_freq_max_hz, emc_load_ratio (debugfs: needs root)."""
    return _emc(discover(root)) or None


def shared_gpu_memory(root: Path) -> float | None:
    """NvMapMemUsed in bytes: memory the GPU (nvmap) holds out of the unified RAM."""
    kb = _meminfo_kb(str(root / "proc/meminfo"), "NvMapMemUsed")
    return float(kb * 1024) if kb is not None else None


def board_model(root: Path) -> str | None:
    for rel in ("sys/firmware/devicetree/base/model", "proc/device-tree/model"):
        text = _read(str(root / rel), 256)
        if text is not None and (text := text.rstrip("\0\n").strip()):
            return text
    return None


def is_tegra(root: Path) -> bool:
    return gpu_devfreq(root) is not None or (root / "etc/nv_tegra_release").exists() or \
        (root / "sys/kernel/debug/nvmap").exists() or "jetson" in (board_model(root) or "").lower()


@dataclass
class TegraSysfsSource(Source):
    name: str = "tegra_sysfs"
    board_wide: ClassVar[bool] = True
    state_every_s: float = 30.0
    rediscover_s: float = 60.0  # hot-plugged rails, a fan driver loaded late

    def __post_init__(self) -> None:
        self._state_due = 0.0
        self._layout: Layout | None = None
        self._discovered_at = -math.inf

    def available(self) -> bool:
        return is_tegra(self.root)

    def collect(self, now: float) -> list[dict[str, Any]]:
        if self._layout is None or now - self._discovered_at > self.rediscover_s or now < self._discovered_at:
            self._layout, self._discovered_at = discover(self.root), now
        values = read_layout(self._layout)
        if not values:
            self._layout = None
            raise RuntimeError("tegra sysfs: no GPU, power or thermal file readable under "
                               f"{self.root} (debugfs needs root)")
        records: list[dict[str, Any]] = [{"ts": now, "source": self.name, "values": values}]
        if now >= self._state_due:
            self._state_due = now + self.state_every_s
            state: dict[str, Any] = {"board_model": board_model(self.root)}
            mode = nvpmodel(self.root)
            if mode is not None:
                state["nvpmodel_id"], state["nvpmodel"] = mode
            locked = values.get("jetson_clocks_active")
            if locked is not None:
                state["jetson_clocks"] = bool(locked)
            records.append({"ts": now, "source": self.name, "state": {k: v for k, v in state.items() if v is not None}})
        return records
