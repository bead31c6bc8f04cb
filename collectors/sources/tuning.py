"""Tuning state: the real-time checklist (Orin Nano guide 17.6 and Appendix A) read from the box.

One state record every 30 s; keys match the doctor check ids where they correspond:
- preempt_rt: bool -- /sys/kernel/realtime == 1, or PREEMPT_RT in /proc/version.
- cpu_governor: {cpu: governor} -- /sys/devices/system/cpu/cpuN/cpufreq/scaling_governor.
- clocks_locked: {"cpu", "gpu", "emc": bool or None} -- min == max: cpufreq scaling_min/max_freq,
  /sys/class/devfreq/<gpu>/min_freq/max_freq, /sys/kernel/debug/bpmp/debug/clk/emc/min_rate/
  max_rate (or mrq_rate_locked).
- nvpmodel: {"id", "name"} or None -- /var/lib/nvpmodel/status `pmode:NNNN` named through
  /etc/nvpmodel.conf `< POWER_MODEL ID=N NAME=... >`; `nvpmodel -q` when only the command exists.
- isolcpus: the isolcpus= boot argument (/proc/cmdline) or None; isolated_cpus and nohz_full_cpus:
  /sys/devices/system/cpu/{isolated,nohz_full} (CPU list strings).
- irq_affinity: {"isolated", "irqs_on_isolated": [irq]} -- IRQs whose /proc/irq/N/
  smp_affinity_list reaches an isolated CPU.
- thp: always|madvise|never -- /sys/kernel/mm/transparent_hugepage/enabled (the bracketed word).
- swap: {"enabled", "total_bytes", "used_bytes", "devices"} -- /proc/swaps (sizes in KiB there).
- desktop: {"running", "processes"} -- gdm/Xorg/gnome-shell/weston/... processes (comm).
- rt_sched: {runtime: {"policies": {policy: threads}, "max_rt_priority"}} -- /proc/PID/task/TID/
  stat fields 40 (rt_priority) and 41 (policy).
- mlock: {runtime: bytes} -- VmLck in /proc/PID/status (kB there).
- gpu_runtime_pm: {device: "auto"|"on"} -- power/control of the Jetson GPU (devfreq device) or of
  NVIDIA PCI display controllers (vendor 0x10de, class 0x03xxxx).
A reader that cannot tell gives None: "unknown" is data, not an error.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collectors.sources import procs
from collectors.sources.base import Source
from collectors.sources.irq import affinities, format_cpu_list, isolated_cpus, parse_cpu_list
from collectors.sources.procs import read as read_text
from collectors.sources.procs import read_int
from collectors.tegra import clock_files, clock_pins, gpu_devfreq_nodes, parse_power_models, parse_status
from collectors.text import is_uint

DESKTOP = {"gdm", "gdm3", "gdm-wayland-ses", "gdm-x-session", "Xorg", "Xwayland", "gnome-shell",
           "weston", "sddm", "lightdm", "kwin_wayland", "kwin_x11", "mutter", "xfwm4", "lxsession"}
MAX_THREADS = 512


def preempt_rt(root: Path) -> bool:
    if read_int(root / "sys/kernel/realtime") == 1:
        return True
    return "PREEMPT_RT" in (read_text(root / "proc/version") or "")


def _cpus(root: Path) -> list[Path]:
    base = root / "sys/devices/system/cpu"
    try:
        found = [p for p in base.glob("cpu[0-9]*") if is_uint(p.name[3:])]
    except OSError:
        return []
    return sorted(found, key=lambda p: int(p.name[3:]))


def cpu_governors(root: Path) -> dict[str, str] | None:
    out = {}
    for cpu in _cpus(root):
        text = read_text(cpu / "cpufreq/scaling_governor")
        if text is not None and text.strip():
            out[cpu.name[3:]] = procs.safe_name(text.strip(), 32)
    return out or None


def clocks_locked(root: Path) -> dict[str, bool | None]:
    return clock_pins(clock_files(root))


def nvpmodel(root: Path) -> dict[str, Any] | None:
    names = parse_power_models(read_text(root / "etc/nvpmodel.conf"))
    mode = parse_status(read_text(root / "var/lib/nvpmodel/status"))
    if mode is None and root == Path("/") and _nvpmodel_command():
        try:
            out = subprocess.run([str(_nvpmodel_command()), "-q"], capture_output=True, text=True, timeout=3).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        match = re.search(r"^\s*(\d+)\s*$", out, re.MULTILINE)
        mode = int(match.group(1)) if match else None
    if mode is None:
        return None
    return {"id": mode, "name": names.get(mode)}


_which_cache: dict[str, str | None] = {}


def _nvpmodel_command() -> str | None:
    if "nvpmodel" not in _which_cache:  # fixed system folders only, never the caller's PATH
        _which_cache["nvpmodel"] = shutil.which("nvpmodel", path="/usr/sbin:/usr/bin:/sbin:/bin")
    return _which_cache["nvpmodel"]


def thp(root: Path) -> str | None:
    text = read_text(root / "sys/kernel/mm/transparent_hugepage/enabled") or ""
    match = re.search(r"\[(\w+)\]", text)
    return match.group(1) if match else None


def swap(root: Path) -> dict[str, Any] | None:
    text = read_text(root / "proc/swaps")
    if text is None:
        return None
    devices, total, used = [], 0, 0
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 4 or not is_uint(parts[2]) or not is_uint(parts[3]):
            continue
        devices.append({"name": procs.safe_name(parts[0], 96), "type": procs.safe_name(parts[1], 16),
                        "size_bytes": int(parts[2]) * 1024, "used_bytes": int(parts[3]) * 1024})
        total += int(parts[2]) * 1024
        used += int(parts[3]) * 1024
    return {"enabled": bool(devices), "total_bytes": total, "used_bytes": used, "devices": devices}


def desktop(root: Path, comms: list[str]) -> dict[str, Any]:
    running = sorted({c for c in comms if c in DESKTOP})
    return {"running": bool(running), "processes": running}


def thread_sched(root: Path, pids: list[int]) -> dict[str, Any]:
    policies: dict[str, int] = {}
    top = 0
    seen = 0
    for pid in pids[:16]:
        for tid in procs.thread_ids(root, pid):
            if seen >= MAX_THREADS:
                break
            st = procs.stat(root, pid, tid)
            if st is None:
                continue
            seen += 1
            name = procs.SCHED_POLICIES.get(st.policy, f"policy{st.policy}")
            policies[name] = policies.get(name, 0) + 1
            top = max(top, st.rt_priority)
    return {"policies": policies, "max_rt_priority": top}


def nvidia_pci_gpus(root: Path) -> list[Path]:
    """NVIDIA display controllers on PCI (vendor 0x10de, class 0x03xxxx)."""
    try:
        pci = sorted((root / "sys/bus/pci/devices").iterdir())
    except OSError:
        return []
    return [dev for dev in pci if (read_text(dev / "vendor") or "").strip() == "0x10de"
            and (read_text(dev / "class") or "").strip().startswith("0x03")]


def gpu_runtime_pm(root: Path, pci_gpus: list[Path] | None = None) -> dict[str, str] | None:
    out: dict[str, str] = {}
    for dev in gpu_devfreq_nodes(root):
        text = read_text(dev / "device/power/control")
        if text:
            out[dev.name] = procs.safe_name(text.strip(), 16)
    for dev in nvidia_pci_gpus(root) if pci_gpus is None else pci_gpus:
        text = read_text(dev / "power/control")
        if text:
            out[dev.name] = procs.safe_name(text.strip(), 16)
    return out or None


@dataclass
class TuningSource(Source):
    name: str = "tuning"
    interval: float = 30.0

    def __post_init__(self) -> None:
        from collectors.sources.runtimes import ProcessMatcher, RuntimeConfigError, load_specs
        try:
            specs = load_specs()
        except RuntimeConfigError:
            specs = []  # the runtimes source reports the config error
        self.matcher = ProcessMatcher(self.root, specs)
        self.pci_gpus = nvidia_pci_gpus(self.root)  # hardware: listed once

    def collect(self, now: float) -> list[dict[str, Any]]:
        iso = isolated_cpus(self.root)
        iso_set = parse_cpu_list(iso["isolated"]) or set()
        state: dict[str, Any] = {
            "preempt_rt": preempt_rt(self.root),
            "cpu_governor": cpu_governors(self.root),
            "clocks_locked": clocks_locked(self.root),
            "nvpmodel": nvpmodel(self.root),
            "isolcpus": iso["isolcpus"],
            "isolated_cpus": iso["isolated"] or "",
            "nohz_full_cpus": iso["nohz_full"] or "",
            "thp": thp(self.root),
            "swap": swap(self.root),
        }
        irq_dir = self.root / "proc/irq"
        try:
            irqs = [p.name for p in irq_dir.iterdir() if is_uint(p.name)]
        except OSError:
            irqs = []
        on_isolated = []
        if iso_set:
            for irq, entry in affinities(self.root, irqs).items():
                cpus = parse_cpu_list(entry.get("affinity"))
                if cpus and cpus & iso_set:
                    on_isolated.append(irq)
        state["irq_affinity"] = {"isolated": format_cpu_list(iso_set),
                                 "irqs_on_isolated": sorted(on_isolated, key=int)}
        found = self.matcher.scan()
        state["desktop"] = desktop(self.root, self.matcher.comms())
        state["rt_sched"] = {rt: thread_sched(self.root, pids) for rt, pids in sorted(found.items())}
        state["mlock"] = {rt: sum(procs.status_kb(self.root, p, "VmLck") or 0 for p in pids[:64])
                          for rt, pids in sorted(found.items())}
        state["gpu_runtime_pm"] = gpu_runtime_pm(self.root, self.pci_gpus)
        return [{"ts": now, "source": self.name, "state": state}]
