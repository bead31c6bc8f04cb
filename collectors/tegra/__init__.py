"""Jetson (Tegra) platform facts, each in one place, shared by the telemetry sources, the tuning
checks and the actions: which devfreq node is the GPU (`devfreq`), whether the clocks are pinned
(`clocks`), the power models (`nvpmodel`), per-process GPU memory (`nvmap`) and thermal zone
labels (`zones`). Every reader takes the filesystem root (tests pass a tree on disk) and returns a
value or None; nothing here raises on a missing or garbled file.
"""

from __future__ import annotations

from collectors.tegra.clocks import ClockFiles, clock_files, clock_pins, clocks_locked, jetson_clocks_active
from collectors.tegra.devfreq import GPU_CHIPS, gpu_devfreq, gpu_devfreq_nodes, is_gpu_devfreq
from collectors.tegra.nvmap import nvmap_file, nvmap_memory_by_pid, parse_nvmap
from collectors.tegra.nvpmodel import nvpmodel, parse_power_models, parse_status
from collectors.tegra.zones import zone_label

__all__ = [
    "GPU_CHIPS", "ClockFiles", "clock_files", "clock_pins", "clocks_locked", "gpu_devfreq",
    "gpu_devfreq_nodes", "is_gpu_devfreq", "jetson_clocks_active", "nvmap_file",
    "nvmap_memory_by_pid", "nvpmodel", "parse_nvmap", "parse_power_models", "parse_status",
    "zone_label",
]
