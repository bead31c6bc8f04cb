"""Host telemetry: per-core CPU load and frequency, RAM, swap, temperatures, load, processes.

Sources (all under `root`, read directly -- no global state, so trees on disk work in threads):
- /proc/stat `cpuN` lines: busy = total - idle - iowait (guest time is already inside user);
  cpu_load_ratio{cpu} 0..1 over the interval since the previous call.
- /sys/devices/system/cpu/cpuN/cpufreq/scaling_cur_freq (kHz) -> cpu_freq_hz{cpu} in Hz.
- /proc/meminfo (kB): ram_total_bytes = MemTotal, ram_available_bytes = MemAvailable,
  ram_used_bytes = total - available, swap_total_bytes, swap_used_bytes = SwapTotal - SwapFree.
- /sys/class/hwmon/hwmonN/temp*_input (millidegrees; label from temp*_label, else the chip name)
  and /sys/class/thermal/thermal_zone*/temp -> temperature_celsius{zone}; the file list is found
  once a minute, the values read every call.
- /proc/loadavg: load_average_1m/5m/15m, host_processes_running, host_processes.
- one owner per series: a name another running source also writes (jtop or tegrastats: RAM, swap,
  per-core CPU, thermal zones, each with its own definition and labels) is left to that source;
  `defer_to` lists those sources (collectors/sources/registry.py) and each says what it writes now.
- every `processes_every` seconds a `processes` state entry: the top-N processes by RSS
  (/proc/PID/statm, /proc/PID/stat comm) as [{"pid", "name", "rss_bytes"}], names made safe to
  show (procs.safe_name).
"""

from __future__ import annotations

import heapq
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collectors.catalog import written_by
from collectors.series import series_key
from collectors.sources import procs
from collectors.sources.base import Source, values_record
from collectors.text import is_uint

MAX_BYTES = 2**56
HOST_NAMES = written_by("host")
CPU_LOAD = frozenset({"cpu_load_ratio", "cpu_total_load_ratio"})
MEMORY = frozenset({"ram_total_bytes", "ram_used_bytes", "ram_available_bytes", "swap_total_bytes", "swap_used_bytes"})


def cpu_times(root: Path) -> dict[int, tuple[int, int]] | None:
    """{cpu: (busy jiffies, total jiffies)} from /proc/stat."""
    text = procs.read(root / "proc/stat")
    if text is None:
        return None
    out: dict[int, tuple[int, int]] = {}
    for line in text.splitlines():
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        parts = line.split()
        try:
            cpu = int(parts[0][3:])
            ticks = [int(x) for x in parts[1:9]]
        except (ValueError, IndexError):
            continue
        if len(ticks) < 4 or min(ticks) < 0:
            continue
        total = sum(ticks)
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
        out[cpu] = (total - idle, total)
    return out or None


def cpu_loads(before: dict[int, tuple[int, int]] | None, after: dict[int, tuple[int, int]] | None
              ) -> dict[int, float] | None:
    """Per-core busy fraction between two cpu_times readings (0..1)."""
    if not before or not after:
        return None
    out = {}
    for cpu, (busy, total) in after.items():
        if cpu not in before:
            continue
        d_busy, d_total = busy - before[cpu][0], total - before[cpu][1]
        if d_total > 0 and d_busy >= 0:
            out[cpu] = min(1.0, d_busy / d_total)
        elif d_total == 0:
            out[cpu] = 0.0
    return out or None


def cpu_freq_files(root: Path) -> list[tuple[int, str]]:
    base = root / "sys/devices/system/cpu"
    try:
        cpus = [p for p in base.glob("cpu[0-9]*") if is_uint(p.name[3:])]
    except OSError:
        return []
    return sorted((int(p.name[3:]), str(p / "cpufreq/scaling_cur_freq")) for p in cpus)


def memory(root: Path) -> dict[str, float] | None:
    text = procs.read(root / "proc/meminfo")
    if text is None:
        return None
    kb: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and is_uint(parts[0]):
            kb[key] = int(parts[0]) * 1024
    total = kb.get("MemTotal")
    if not total or total > MAX_BYTES:
        return None
    available = kb.get("MemAvailable", kb.get("MemFree", 0) + kb.get("Buffers", 0) + kb.get("Cached", 0))
    available = min(available, total)
    out = {"ram_total_bytes": float(total), "ram_used_bytes": float(total - available),
           "ram_available_bytes": float(available)}
    if "SwapTotal" in kb and "SwapFree" in kb:
        out["swap_total_bytes"] = float(kb["SwapTotal"])
        out["swap_used_bytes"] = float(max(0, kb["SwapTotal"] - kb["SwapFree"]))
    return out


def temperature_files(root: Path) -> list[tuple[str, str]]:
    """(zone label, file) for every hwmon temperature input and thermal zone."""
    found: list[tuple[str, str]] = []
    try:
        hwmons = sorted((root / "sys/class/hwmon").glob("hwmon*"))
    except OSError:
        hwmons = []
    for hwmon in hwmons:
        chip = (procs.read(hwmon / "name") or hwmon.name).strip() or hwmon.name
        inputs = sorted(hwmon.glob("temp*_input"))
        for i, path in enumerate(inputs):
            label = (procs.read(str(path).replace("_input", "_label")) or "").strip()
            found.append((label or f"{chip}{i if len(inputs) > 1 else ''}", str(path)))
    seen = {label for label, _ in found}
    try:
        zones = sorted((root / "sys/class/thermal").glob("thermal_zone*"))
    except OSError:
        zones = []
    for zone in zones:
        name = (procs.read(zone / "type") or "").strip() or zone.name
        if name not in seen:
            found.append((name, str(zone / "temp")))
    return [(procs.safe_name(label, 64), path) for label, path in found]


def read_temperatures(files: list[tuple[str, str]]) -> dict[str, float]:
    """Degrees C; readings outside -100..200 C (Jetson's -256 for powered-off zones) left out."""
    out = {}
    for label, path in files:
        milli = procs.read_int(path)
        if milli is not None and -100.0 < milli / 1000.0 < 200.0:
            out[label] = milli / 1000.0
    return out


def loadavg(root: Path) -> dict[str, float] | None:
    """/proc/loadavg: `1m 5m 15m running/total lastpid` -> load averages and process counts."""
    text = procs.read(root / "proc/loadavg")
    try:
        parts = (text or "").split()
        running, total = parts[3].split("/")
        out = {"load_average_1m": float(parts[0]), "load_average_5m": float(parts[1]),
               "load_average_15m": float(parts[2]), "host_processes_running": float(int(running)),
               "host_processes": float(int(total))}
    except (ValueError, IndexError):
        return None
    if not all(math.isfinite(v) and 0 <= v < 1e9 for v in out.values()):
        return None
    return out


def top_processes(root: Path, count: int = 10) -> list[dict[str, Any]] | None:
    """The `count` largest processes by RSS, largest first."""
    sizes = []
    for pid in procs.pids(root):
        rss = procs.rss_bytes(root, pid)
        if rss:
            sizes.append((rss, pid))
    if not sizes:
        return None
    out = []
    for rss, pid in heapq.nlargest(count, sizes):
        st = procs.stat(root, pid)
        if st is not None:
            out.append({"pid": pid, "name": procs.safe_name(st.comm, 64), "rss_bytes": rss})
    return out


@dataclass
class HostSource(Source):
    name: str = "host"
    processes_every: float = 5.0
    rediscover_every: float = 60.0
    top_n: int = 10
    defer_to: list[Source] = field(default_factory=list)  # sources that own the names they share with host

    def __post_init__(self) -> None:
        self._times = cpu_times(self.root)  # primes the per-core counters
        self._next_processes = 0.0
        self._next_discovery = 0.0
        self._freq_files: list[tuple[int, str]] = []
        self._temp_files: list[tuple[str, str]] = []
        self._keys: dict[tuple[str, object], str] = {}

    def _key(self, metric: str, label: str, value: object) -> str:
        key = self._keys.get((metric, value))
        if key is None:
            key = self._keys[(metric, value)] = series_key(metric, **{label: value})
        return key

    def owned_elsewhere(self) -> frozenset[str]:
        """Host names another source writes right now: that source is their one owner."""
        owned: frozenset[str] = frozenset()
        for source in self.defer_to:
            owned |= source.writing() & HOST_NAMES
        return owned

    def collect(self, now: float) -> list[dict[str, Any]]:
        if now >= self._next_discovery:
            self._next_discovery = now + self.rediscover_every
            self._freq_files = cpu_freq_files(self.root)
            self._temp_files = temperature_files(self.root)
        values: dict[str, float | None] = {}
        owned = self.owned_elsewhere()  # what another source writes is not even read here
        if not owned >= CPU_LOAD:
            times = cpu_times(self.root)
            loads = cpu_loads(self._times, times)
            self._times = times or self._times
            if loads:
                for cpu, load in loads.items():
                    values[self._key("cpu_load_ratio", "cpu", cpu)] = load
                values["cpu_total_load_ratio"] = sum(loads.values()) / len(loads)
        if "cpu_freq_hz" not in owned:
            for cpu, path in self._freq_files:
                khz = procs.read_int(path)
                if khz is not None and 0 < khz < 10**8:
                    values[self._key("cpu_freq_hz", "cpu", cpu)] = khz * 1000.0
        if not owned >= MEMORY:
            values.update(memory(self.root) or {})
        if "temperature_celsius" not in owned:
            for zone, celsius in read_temperatures(self._temp_files).items():
                values[self._key("temperature_celsius", "zone", zone)] = celsius
        values.update(loadavg(self.root) or {})
        values["host_logical_cpus"] = float(os.cpu_count() or 0)
        if owned:
            values = {k: v for k, v in values.items() if k.partition("{")[0] not in owned}
        records = [values_record(now, self.name, values)]
        if now >= self._next_processes:
            self._next_processes = now + self.processes_every
            top = top_processes(self.root, self.top_n)
            if top is not None:
                records.append({"ts": now, "source": self.name, "state": {"processes": top}})
        return records
