"""IRQ placement: where interrupts land, where they may land, which CPUs are isolated.

Sources: /proc/interrupts (header `CPU0 CPU1 ...` names the online CPUs; each line `IRQ: count
per CPU, then the chip/name text`; lines such as `ERR:` carry one count), /proc/irq/N/
smp_affinity_list and effective_affinity_list (CPU lists like `0-3,6`),
/sys/devices/system/cpu/isolated and nohz_full, isolcpus= on /proc/cmdline.
Units: interrupt counts since boot (counters).

Series: irq_interrupts_total{cpu,irq} (non-zero counts only, to stay small on 8-core boards with
hundreds of IRQs), irq_isolated_cpus (how many CPUs are isolated). State: `isolated_cpus`,
`nohz_full_cpus` (CPU list strings), `irq_placement` {irq: {"name", "affinity", "effective"}}.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collectors.series import series_key
from collectors.sources.base import Source, values_record
from collectors.sources.procs import read as read_text
from collectors.sources.procs import safe_name
from collectors.text import is_uint

MAX_CPUS = 4096


def parse_cpu_list(text: str | None) -> set[int] | None:
    """`0-3,6` -> {0, 1, 2, 3, 6}; '' -> set(); garbage -> None."""
    if text is None:
        return None
    out: set[int] = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            return None
        if first < 0 or last < first or last >= MAX_CPUS:
            return None
        out.update(range(first, last + 1))
    return out


def format_cpu_list(cpus: set[int]) -> str:
    ranges, ordered = [], sorted(cpus)
    start = prev = None
    for cpu in ordered + [None]:
        if cpu is not None and prev is not None and cpu == prev + 1:
            prev = cpu
            continue
        if start is not None:
            ranges.append(f"{start}-{prev}" if prev != start else f"{start}")
        start = prev = cpu
    return ",".join(ranges)


def parse_interrupts(text: str) -> tuple[dict[str, dict[int, int]], dict[str, str]]:
    """({irq: {cpu: count}}, {irq: name}) from /proc/interrupts; garbage lines are skipped."""
    lines = text.splitlines()
    if not lines:
        return {}, {}
    cpus = []
    for token in lines[0].split():
        if token.startswith("CPU") and is_uint(token[3:]):
            cpus.append(int(token[3:]))
    counts: dict[str, dict[int, int]] = {}
    names: dict[str, str] = {}
    for line in lines[1:]:
        irq, sep, rest = line.partition(":")
        irq = irq.strip()
        if not sep or not irq or len(irq) > 16 or not irq.replace("_", "").isalnum():
            continue
        fields = rest.split()
        per_cpu: dict[int, int] = {}
        i = 0
        while i < len(fields) and i < len(cpus) and is_uint(fields[i]):
            value = int(fields[i])
            if value:
                per_cpu[cpus[i]] = value
            i += 1
        if i == 0:
            continue
        counts[irq] = per_cpu
        name = " ".join(fields[i:])
        if name:
            names[irq] = safe_name(name, 96)
    return counts, names


def isolated_cpus(root: Path) -> dict[str, str | None]:
    cmdline = read_text(root / "proc/cmdline") or ""
    isolcpus = next((a.split("=", 1)[1] for a in cmdline.split() if a.startswith("isolcpus=")), None)
    def _list(name: str) -> str | None:
        text = read_text(root / "sys/devices/system/cpu" / name)
        return text.strip() if text is not None else None
    return {"isolated": _list("isolated"), "nohz_full": _list("nohz_full"), "isolcpus": isolcpus}


def affinities(root: Path, irqs: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    base = str(root).rstrip("/") + "/proc/irq/"
    for irq in irqs:
        if not is_uint(irq):
            continue
        entry = {}
        for key, name in (("affinity", "smp_affinity_list"), ("effective", "effective_affinity_list")):
            text = read_text(f"{base}{irq}/{name}")
            if text is not None and parse_cpu_list(text) is not None:
                entry[key] = text.strip()
        if entry:
            out[irq] = entry
    return out


@dataclass
class IrqSource(Source):
    name: str = "irq"
    interval: float = 5.0

    def __post_init__(self) -> None:
        self._keys: dict[tuple[str, int], str] = {}  # series keys, built once

    def available(self) -> bool:
        return os.path.exists(self.root / "proc/interrupts")

    def collect(self, now: float) -> list[dict[str, Any]]:
        text = read_text(self.root / "proc/interrupts")
        if text is None:
            raise OSError("cannot read /proc/interrupts")
        counts, names = parse_interrupts(text)
        if not counts:
            raise ValueError("no interrupt lines in /proc/interrupts")
        values: dict[str, float | None] = {}
        keys = self._keys
        for irq, per_cpu in counts.items():
            for cpu, count in per_cpu.items():
                key = keys.get((irq, cpu))
                if key is None:
                    key = keys[(irq, cpu)] = series_key("irq_interrupts_total", cpu=cpu, irq=irq)
                values[key] = float(count)
        iso = isolated_cpus(self.root)
        iso_set = parse_cpu_list(iso["isolated"]) or set()
        values["irq_isolated_cpus"] = float(len(iso_set))
        placement = affinities(self.root, list(counts))
        for irq, entry in placement.items():
            if irq in names:
                entry["name"] = names[irq]
        state = {"isolated_cpus": iso["isolated"] or "", "nohz_full_cpus": iso["nohz_full"] or "",
                 "irq_placement": placement}
        return [values_record(now, self.name, values), {"ts": now, "source": self.name, "state": state}]
