"""Whether the clocks are pinned (min == max), the test jetson_clocks' effect is judged by.

Files: every CPU's /sys/devices/system/cpu/cpuN/cpufreq/scaling_{min,max}_freq (offline CPUs, whose
`online` file reads 0, are left out), every GPU devfreq node's {min,max}_freq, and the EMC's
/sys/kernel/debug/bpmp/debug/clk/emc/{min_rate,max_rate} or mrq_rate_locked (debugfs: root only).
`clock_pins` gives {"cpu", "gpu", "emc"}: True when every readable pair is pinned, False when one
is not, None when none could be read. `jetson_clocks_active` is what jetson_clocks does: CPU and
GPU pinned (None when either cannot be read).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from collectors.files import read_int
from collectors.tegra.devfreq import gpu_devfreq_nodes
from collectors.text import is_uint

EMC = "sys/kernel/debug/bpmp/debug/clk/emc"


@dataclass(frozen=True)
class ClockFiles:
    """The files the clock test reads on one tree (found once per boot; read every sample)."""

    cpus: list[tuple[str, str, str]] = field(default_factory=list)  # online, min, max
    gpus: list[tuple[str, str]] = field(default_factory=list)  # min, max
    emc: tuple[str, str, str] | None = None  # mrq_rate_locked, min_rate, max_rate


def clock_files(root: Path, emc: bool = True) -> ClockFiles:
    cpus: list[tuple[int, tuple[str, str, str]]] = []
    try:
        cpu_dirs = [p for p in (root / "sys/devices/system/cpu").glob("cpu[0-9]*") if is_uint(p.name[3:])]
    except OSError:
        cpu_dirs = []
    for cpu in cpu_dirs:
        cpus.append((int(cpu.name[3:]), (str(cpu / "online"), str(cpu / "cpufreq/scaling_min_freq"),
                                         str(cpu / "cpufreq/scaling_max_freq"))))
    gpus = [(str(node / "min_freq"), str(node / "max_freq")) for node in gpu_devfreq_nodes(root)]
    emc_files = None
    if emc:
        base = root / EMC
        emc_files = (str(base / "mrq_rate_locked"), str(base / "min_rate"), str(base / "max_rate"))
    return ClockFiles([files for _, files in sorted(cpus)], gpus, emc_files)


def _pinned(pairs: list[tuple[str, str]]) -> bool | None:
    known = []
    for lo_file, hi_file in pairs:
        lo, hi = read_int(lo_file), read_int(hi_file)
        if lo is not None and hi is not None:
            known.append(lo == hi)
    return all(known) if known else None


def clock_pins(files: ClockFiles) -> dict[str, bool | None]:
    """{"cpu", "gpu", "emc"}: pinned (True), not pinned (False) or unreadable (None)."""
    online = [(lo, hi) for on, lo, hi in files.cpus if read_int(on) != 0]
    emc: bool | None = None
    if files.emc is not None:
        locked_file, lo, hi = files.emc
        emc = True if read_int(locked_file) == 1 else _pinned([(lo, hi)])
    return {"cpu": _pinned(online), "gpu": _pinned(files.gpus), "emc": emc}


def jetson_clocks_active(pins: dict[str, bool | None]) -> bool | None:
    """jetson_clocks pins every online CPU and the GPU: both pinned -> True."""
    if pins.get("cpu") is None or pins.get("gpu") is None:
        return None
    return bool(pins["cpu"] and pins["gpu"])


def clocks_locked(root: Path) -> bool | None:
    """jetson_clocks_active for the tree at `root` (one-shot: finds the files, then reads them)."""
    return jetson_clocks_active(clock_pins(clock_files(root, emc=False)))
