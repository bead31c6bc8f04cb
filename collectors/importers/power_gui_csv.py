"""The wide Jetson Power GUI style CSV (`System-Time,NVPMODEL-POWER_MODE,CPU0-STATE,...`).

Units in the file: CPU/GPU/EMC frequency MHz, loads %, memory MB, temperatures C (-256000 = no
sensor), rail power mW, fan PWM %. Output: recording-format values in base units.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from collectors.series import series_key
from collectors.tegra import zone_label

MB = 1024 * 1024
_CPU = re.compile(r"^CPU(\d+)-(CURR_FREQ|CURR_LOAD)$")
_THERMAL = re.compile(r"^(.+)-thermal-CURR_TEMP$")
_RAIL = re.compile(r"^(.+)-IN_POWER$")


def _num(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if value == value else None


def row_values(row: dict[str, str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for column, raw in row.items():
        value = _num(raw)
        if value is None:
            continue
        if m := _CPU.match(column):
            cpu, what = m.groups()
            if what == "CURR_FREQ":
                out[series_key("cpu_freq_hz", cpu=cpu)] = value * 1e6
            else:
                out[series_key("cpu_load_ratio", cpu=cpu)] = value / 100.0
        elif column == "IGPU0-CURR_FREQ":
            out["gpu_freq_hz"] = value * 1e6
        elif column == "IGPU0-CURR_LOAD":
            out["gpu_load_ratio"] = value / 100.0
        elif column == "EMC-CURR_FREQ":
            out["emc_freq_hz"] = value * 1e6
        elif column == "MEM-USED_SIZE":
            out["ram_used_bytes"] = value * MB
        elif column == "MEM-TOTAL_SIZE":
            out["ram_total_bytes"] = value * MB
        elif column == "SWAP-USED_SIZE":
            out["swap_used_bytes"] = value * MB
        elif column == "SWAP-TOTAL_SIZE":
            out["swap_total_bytes"] = value * MB
        elif (m := _THERMAL.match(column)) and value > -100:
            out[series_key("temperature_celsius", zone=zone_label(m.group(1)))] = value
        elif m := _RAIL.match(column):
            out[series_key("power_watts", rail=m.group(1))] = value / 1000.0
        elif column == "fan1-CURR_PWM":
            out[series_key("fan_speed_ratio", fan="fan1")] = value / 100.0
    if "ram_total_bytes" in out and "ram_used_bytes" in out:
        out["ram_available_bytes"] = out["ram_total_bytes"] - out["ram_used_bytes"]
    return out


def throttle_points(row: dict[str, str]) -> dict[str, float]:
    """SW throttling temperature per zone (C), for the thermal rule's config."""
    out = {}
    for column, raw in row.items():
        if column.endswith("-thermal-SW_THROTTLING_TEMP") and (value := _num(raw)) is not None:
            out[zone_label(column.split("-thermal-")[0])] = value
    return out


def read(path: Path, start_ts: float, step_s: float = 1.0) -> Iterator[dict[str, Any]]:
    """Yield values records; the file has only wall-clock times, so samples are spaced `step_s`."""
    with path.open(newline="", encoding="utf-8") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            yield {"ts": round(start_ts + i * step_s, 3), "source": "tegrastats", "values": row_values(row)}
