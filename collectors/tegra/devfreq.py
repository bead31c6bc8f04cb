"""Which /sys/class/devfreq node is the Jetson GPU.

The node is named after the GPU's platform device: `<address>.<chip>` with chip gm20b (Nano, TX1),
gp10b (TX2), gv11b (Xavier), ga10b (Orin, JetPack 5), `<address>.gpu` (Orin, JetPack 6), gb10b
(Thor's chip), or per-GPC nodes `gpu-gpc-<N>` (Thor, JetPack 7); some kernels call it `gpu.<N>`.
Other devfreq nodes on these boards (`*.host1x`, `*.nvdla0`, `*.pva0`, `*.vic`, `*.nvenc`, the EMC)
must not match. Case does not matter.
"""

from __future__ import annotations

import re
from pathlib import Path

GPU_CHIPS = ("gpu", "gm20b", "gp10b", "gv11b", "ga10b", "gb10b")
GPU_DEVFREQ = re.compile(
    r"^(?:[^/]*\.)?(?:" + "|".join(GPU_CHIPS) + r")$|^gpu-gpc-\d+$|^gpu\.\d+$", re.IGNORECASE)


def is_gpu_devfreq(name: str) -> bool:
    """True when a devfreq node name is the GPU's (see the module docstring for the names)."""
    return GPU_DEVFREQ.match(name) is not None


def gpu_devfreq_nodes(root: Path) -> list[Path]:
    """Every GPU devfreq folder under root/sys/class/devfreq, sorted (Thor has one per GPC)."""
    try:
        return sorted(p for p in (root / "sys/class/devfreq").iterdir() if is_gpu_devfreq(p.name))
    except OSError:
        return []


def gpu_devfreq(root: Path) -> Path | None:
    """The GPU's (first) devfreq folder, or None on boards without one."""
    nodes = gpu_devfreq_nodes(root)
    return nodes[0] if nodes else None
