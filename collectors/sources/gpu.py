"""Which GPU/SoC sources apply to a machine, in order of preference.

Jetson (Tegra tree present): the jtop client when jetson-stats is installed and we read the real
machine (it falls back to sysfs by itself while the service is down); else direct sysfs when the
GPU devfreq node is readable; else `tegrastats` when the binary exists. NVML: on the real machine
when it is not a Jetson, or on a Jetson whose sysfs has no GPU load (Thor reports it through NVML).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from collectors.sources.base import Source
from collectors.sources.jtop import JtopSource, jtop_importable
from collectors.sources.nvml import NvmlSource
from collectors.sources.tegra_sysfs import TegraSysfsSource, gpu, is_tegra
from collectors.sources.tegrastats import TegrastatsSource


def gpu_sources(root: Path, interval_of: Callable[[str], float]) -> list[Source]:
    """The GPU/SoC sources for this tree; `interval_of(name)` gives each one's interval."""
    sources: list[Source] = []
    real_machine = root == Path("/")
    sysfs_gpu = gpu(root)
    if is_tegra(root):
        sysfs = TegraSysfsSource(root=root, interval=interval_of("tegra_sysfs"))
        tegrastats = TegrastatsSource(root=root, interval=interval_of("tegrastats"))
        if jtop_importable() and real_machine:
            sources.append(JtopSource(root=root, interval=interval_of("jtop"), fallback=sysfs))
        elif sysfs_gpu is None and tegrastats.available():
            sources.append(tegrastats)
        else:
            sources.append(sysfs)
    if real_machine and (not is_tegra(root) or "gpu_load_ratio" not in (sysfs_gpu or {})):
        sources.append(NvmlSource(root=root, interval=interval_of("nvml")))
    return sources
