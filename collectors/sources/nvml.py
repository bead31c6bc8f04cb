"""Discrete-GPU telemetry through NVML (the `pynvml` module of nvidia-ml-py).

Source: libnvidia-ml via pynvml (nvmlDeviceGet* calls), so `root` does not apply; the source is
available only where the library loads and at least one GPU answers.

Series (GPU 0 unlabelled, the core names; with more than one GPU every GPU also gets the same
series with a `gpu="<index>"` label):
  gpu_load_ratio                0..1   utilization.gpu / 100 (busy time over NVML's sample window)
  gpu_memory_busy_ratio         0..1   utilization.memory / 100 (memory controller busy)
  gpu_memory_used_bytes / gpu_memory_total_bytes / gpu_memory_free_bytes   bytes
  gpu_freq_hz, gpu_freq_max_hz  Hz     graphics clock (NVML MHz x 1e6)
  gpu_memory_freq_hz            Hz     memory clock
  power_watts{rail="gpu"}       W      board power (NVML mW / 1000); rail "gpu<i>" for GPU i > 0
  gpu_power_limit_watts         W      enforced power limit
  gpu_energy_joules_total       J      energy counter since driver load (NVML mJ / 1000)
  temperature_celsius{zone="gpu"}  C   core temperature; zone "gpu<i>" for GPU i > 0
  fan_speed_ratio{fan="gpu"}    0..1   where the board has a fan
  gpu_throttle_active           0/1    any clock-event reason other than idle/app-settings
  gpu_process_memory_bytes{gpu,pid,process}  bytes   GPU memory of each compute/graphics process
State (source "nvml"): gpu_name, driver_version, throttle_reasons (list of names).

`gpu_memory_by_pid()` gives pid -> bytes summed over every GPU, for the runtime-memory source.
Every number goes through `_clean`: NaN, negative, and NVML's "not available" sentinels are dropped.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collectors.lazy import lazy_module
from collectors.series import series_key
from collectors.sources.base import Source

# nvidia-ml-py is an optional extra (absent on Jetsons and CPU boxes), and imported lazily: pynvml
# loads ctypes and its whole API (~2 MiB RSS), which an agent without an NVIDIA driver never uses.
pynvml: Any = lazy_module("pynvml")
# Where an NVIDIA driver shows itself; none of them: NVML is not tried (nor pynvml loaded).
DRIVER_PATHS = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/nvidia0")


def driver_present() -> bool:
    return any(os.path.exists(p) for p in DRIVER_PATHS)

# NVML reports "value not available" as all-ones integers.
_SENTINELS = {2**64 - 1, 2**32 - 1, 2**63 - 1}
_MAX_BYTES = 2**50  # 1 PiB: anything larger on one GPU is garbage
_IGNORED_REASONS = {"gpu_idle", "applications_clocks_setting"}
_REASON_BITS = {
    0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap",
    0x8: "hw_slowdown", 0x10: "sync_boost", 0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown", 0x80: "hw_power_brake_slowdown", 0x100: "display_clock_setting",
}


class NvmlUnavailable(RuntimeError):
    """NVML cannot be used right now; the message says why."""


def _clean(value: Any, scale: float = 1.0, upper: float = math.inf) -> float | None:
    """A finite, non-negative number scaled by `scale`, or None."""
    if value is None or isinstance(value, bool) or (isinstance(value, int) and value in _SENTINELS):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or number < 0:
        return None
    number *= scale
    return number if number <= upper else None


def throttle_reason_names(mask: int | None) -> list[str]:
    if mask is None or mask < 0 or mask in _SENTINELS:
        return []
    return [name for bit, name in sorted(_REASON_BITS.items()) if mask & bit]


@dataclass
class GpuSample:
    """One GPU's raw NVML readings, units as NVML gives them (%, bytes, MHz, mW, mJ, C)."""

    index: int
    name: str = ""
    util_gpu: Any = None
    util_mem: Any = None
    mem_total: Any = None
    mem_used: Any = None
    mem_free: Any = None
    clock_graphics: Any = None
    clock_graphics_max: Any = None
    clock_mem: Any = None
    power_mw: Any = None
    power_limit_mw: Any = None
    energy_mj: Any = None
    temperature: Any = None
    fan_percent: Any = None
    throttle_mask: Any = None
    processes: dict[int, Any] = field(default_factory=dict)  # pid -> used bytes
    process_names: dict[int, str] = field(default_factory=dict)


def sample_values(samples: list[GpuSample]) -> dict[str, float]:
    """Turn raw samples into series (pure: no NVML call), dropping readings that make no sense."""
    out: dict[str, float] = {}
    many = len(samples) > 1
    for s in samples:
        label = {"gpu": s.index}
        suffix = "" if s.index == 0 else str(s.index)
        readings: dict[str, float | None] = {
            "gpu_load_ratio": _clean(s.util_gpu, 0.01, 1.0),
            "gpu_memory_busy_ratio": _clean(s.util_mem, 0.01, 1.0),
            "gpu_memory_total_bytes": _clean(s.mem_total, 1.0, _MAX_BYTES),
            "gpu_memory_used_bytes": _clean(s.mem_used, 1.0, _MAX_BYTES),
            "gpu_memory_free_bytes": _clean(s.mem_free, 1.0, _MAX_BYTES),
            "gpu_freq_hz": _clean(s.clock_graphics, 1e6, 1e11),
            "gpu_freq_max_hz": _clean(s.clock_graphics_max, 1e6, 1e11),
            "gpu_memory_freq_hz": _clean(s.clock_mem, 1e6, 1e11),
            "gpu_power_limit_watts": _clean(s.power_limit_mw, 1e-3, 1e5),
            "gpu_energy_joules_total": _clean(s.energy_mj, 1e-3),
        }
        power = _clean(s.power_mw, 1e-3, 1e5)
        temp = _clean(s.temperature, 1.0, 200.0)
        fan = _clean(s.fan_percent, 0.01, 1.0)
        if s.throttle_mask is not None and _clean(s.throttle_mask) is not None:
            names = set(throttle_reason_names(int(s.throttle_mask)))
            readings["gpu_throttle_active"] = 1.0 if names - _IGNORED_REASONS else 0.0
        if s.index == 0:
            out.update({k: v for k, v in readings.items() if v is not None})
            if power is not None:
                out[series_key("power_watts", rail="gpu")] = power
            if temp is not None:
                out[series_key("temperature_celsius", zone="gpu")] = temp
            if fan is not None:
                out[series_key("fan_speed_ratio", fan="gpu")] = fan
        else:
            if power is not None:
                out[series_key("power_watts", rail=f"gpu{suffix}")] = power
            if temp is not None:
                out[series_key("temperature_celsius", zone=f"gpu{suffix}")] = temp
            if fan is not None:
                out[series_key("fan_speed_ratio", fan=f"gpu{suffix}")] = fan
        if many:
            out.update({series_key(k, **label): v for k, v in readings.items() if v is not None})
        for pid, used in s.processes.items():
            size = _clean(used, 1.0, _MAX_BYTES)
            if size is None or pid <= 0:
                continue
            key = series_key("gpu_process_memory_bytes", gpu=s.index, pid=pid,
                             process=s.process_names.get(pid, "")[:64])
            out[key] = out.get(key, 0.0) + size
    return out


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _process_name(root: Path, pid: int) -> str:
    try:
        return (root / f"proc/{pid}/comm").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


class Nvml:
    """A lazily initialised NVML session that re-initialises after the GPU or driver goes away."""

    def __init__(self, root: Path = Path("/"), retry_s: float = 5.0, max_retry_s: float = 300.0):
        self.root = root
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self._ready = False
        self._next_try = 0.0
        self._failures = 0
        self.last_error = ""

    def _call(self, fn_name: str, *args: Any) -> Any:
        """Call pynvml.<fn_name>; None where the GPU does not support it."""
        fn = getattr(pynvml, fn_name, None)
        if fn is None:
            return None
        try:
            return fn(*args)
        except pynvml.NVMLError as exc:
            if _fatal(exc):
                self._ready = False
                raise NvmlUnavailable(f"NVML lost the GPU: {exc}") from None
            return None

    def ensure(self) -> None:
        if pynvml is None:
            raise NvmlUnavailable("nvidia-ml-py (pynvml) is not installed")
        if self._ready:
            return
        now = time.monotonic()
        if now < self._next_try:
            raise NvmlUnavailable(f"{self.last_error} (retry in {self._next_try - now:.0f} s)")
        if not driver_present():
            self._next_try = now + self.max_retry_s
            self.last_error = "NVML unavailable: no NVIDIA Driver loaded (" + ", ".join(DRIVER_PATHS) + " absent)"
            raise NvmlUnavailable(self.last_error)
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as exc:
            self._failures += 1
            self._next_try = now + min(self.max_retry_s, self.retry_s * 2 ** min(self._failures - 1, 8))
            self.last_error = f"NVML unavailable: {exc}"
            raise NvmlUnavailable(self.last_error) from None
        if count < 1:
            self._next_try = now + self.max_retry_s
            self.last_error = "NVML unavailable: no GPU found"
            raise NvmlUnavailable(self.last_error)
        self._ready = True
        self._failures = 0
        self.last_error = ""

    def shutdown(self) -> None:
        if self._ready and pynvml is not None:
            with contextlib.suppress(pynvml.NVMLError):
                pynvml.nvmlShutdown()
        self._ready = False

    def processes(self, handle: Any) -> dict[int, Any]:
        used: dict[int, Any] = {}
        for fn in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            for proc in self._call(fn, handle) or []:
                pid = getattr(proc, "pid", None)
                if not isinstance(pid, int):
                    continue
                size = getattr(proc, "usedGpuMemory", None)
                if _clean(size) is None:
                    used.setdefault(pid, None)
                    continue
                used[pid] = max(int(size), int(used.get(pid) or 0))  # type: ignore[arg-type]  # a pid in both lists: same memory
        return used

    def sample(self) -> list[GpuSample]:
        self.ensure()
        samples = []
        count = self._call("nvmlDeviceGetCount") or 0
        for index in range(count):
            handle = self._call("nvmlDeviceGetHandleByIndex", index)
            if handle is None:
                continue
            s = GpuSample(index=index, name=_text(self._call("nvmlDeviceGetName", handle) or ""))
            util = self._call("nvmlDeviceGetUtilizationRates", handle)
            if util is not None:
                s.util_gpu, s.util_mem = util.gpu, util.memory
            mem = self._call("nvmlDeviceGetMemoryInfo", handle)
            if mem is not None:
                s.mem_total, s.mem_used, s.mem_free = mem.total, mem.used, mem.free
            s.clock_graphics = self._call("nvmlDeviceGetClockInfo", handle, pynvml.NVML_CLOCK_GRAPHICS)
            s.clock_graphics_max = self._call("nvmlDeviceGetMaxClockInfo", handle, pynvml.NVML_CLOCK_GRAPHICS)
            s.clock_mem = self._call("nvmlDeviceGetClockInfo", handle, pynvml.NVML_CLOCK_MEM)
            s.power_mw = self._call("nvmlDeviceGetPowerUsage", handle)
            s.power_limit_mw = self._call("nvmlDeviceGetEnforcedPowerLimit", handle)
            s.energy_mj = self._call("nvmlDeviceGetTotalEnergyConsumption", handle)
            s.temperature = self._call("nvmlDeviceGetTemperature", handle, pynvml.NVML_TEMPERATURE_GPU)
            s.fan_percent = self._call("nvmlDeviceGetFanSpeed", handle)
            s.throttle_mask = (self._call("nvmlDeviceGetCurrentClocksEventReasons", handle)
                               if hasattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons")
                               else self._call("nvmlDeviceGetCurrentClocksThrottleReasons", handle))
            s.processes = self.processes(handle)
            s.process_names = {pid: _process_name(self.root, pid) for pid in s.processes}
            samples.append(s)
        return samples

    def driver_version(self) -> str:
        return _text(self._call("nvmlSystemGetDriverVersion") or "")


def _fatal(exc: Exception) -> bool:
    """Errors after which NVML must be initialised again (GPU lost, driver gone, not initialised)."""
    value = getattr(exc, "value", None)
    fatal = {getattr(pynvml, n, -1) for n in ("NVML_ERROR_GPU_IS_LOST", "NVML_ERROR_UNINITIALIZED",
                                               "NVML_ERROR_DRIVER_NOT_LOADED", "NVML_ERROR_LIB_RM_VERSION_MISMATCH",
                                               "NVML_ERROR_RESET_REQUIRED")}
    return value in fatal


_shared: Nvml | None = None


def gpu_memory_by_pid(root: Path = Path("/")) -> dict[int, int] | None:
    """GPU memory in bytes per process id, summed over every GPU; None where NVML is unusable.

    A process whose usage NVML cannot report (no permission, MIG, WDDM) maps to 0."""
    global _shared
    if _shared is None:
        _shared = Nvml(root)
    try:
        _shared.ensure()
        count = _shared._call("nvmlDeviceGetCount") or 0
        out: dict[int, int] = {}
        for index in range(count):
            handle = _shared._call("nvmlDeviceGetHandleByIndex", index)
            if handle is None:
                continue
            for pid, used in _shared.processes(handle).items():
                out[pid] = out.get(pid, 0) + int(used or 0)
        return out
    except NvmlUnavailable:
        return None


@dataclass
class NvmlSource(Source):
    name: str = "nvml"
    state_every_s: float = 30.0

    def __post_init__(self) -> None:
        self.nvml = Nvml(self.root)
        self._state_due = 0.0

    def available(self) -> bool:
        try:
            self.nvml.ensure()
        except NvmlUnavailable:
            return False
        return True

    def collect(self, now: float) -> list[dict[str, Any]]:
        samples = self.nvml.sample()  # raises NvmlUnavailable with a clear message
        records: list[dict[str, Any]] = [{"ts": now, "source": self.name, "values": sample_values(samples)}]
        if now >= self._state_due and samples:
            self._state_due = now + self.state_every_s
            reasons = sorted({r for s in samples for r in throttle_reason_names(
                int(s.throttle_mask) if _clean(s.throttle_mask) is not None else None)})
            records.append({"ts": now, "source": self.name, "state": {
                "gpu_name": samples[0].name[:128], "gpu_count": len(samples),
                "driver_version": self.nvml.driver_version()[:32], "throttle_reasons": reasons}})
        return records

    def close(self) -> None:
        self.nvml.shutdown()
