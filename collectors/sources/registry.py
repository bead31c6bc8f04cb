"""Every telemetry source beyond host, with its default interval.

Defaults (seconds): 1 for jtop/host/cgroup, 5 for runtimes/irq, 30 for tuning. Override per source
with THOXDASH_AGENT_INTERVALS="cgroup=2,runtimes=10" (names are source names, values > 0 seconds);
the agent's `--interval` overrides them all. A bad value raises AgentConfigError naming the entry.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from collectors.sources.base import Source

INTERVALS_ENV = "THOXDASH_AGENT_INTERVALS"
DEFAULT_INTERVALS = {"host": 1.0, "jtop": 1.0, "tegra_sysfs": 1.0, "tegrastats": 1.0, "nvml": 1.0,
                     "cgroup": 1.0, "runtimes": 5.0, "irq": 5.0, "tuning": 30.0}


class AgentConfigError(ValueError):
    """Agent configuration from the environment that cannot be used."""


def parse_intervals(spec: str | None) -> dict[str, float]:
    """`name=seconds,name=seconds` -> {name: seconds}; raises AgentConfigError on a bad entry."""
    out: dict[str, float] = {}
    for item in (spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise AgentConfigError(f"{INTERVALS_ENV}: {item!r} is not name=seconds")
        try:
            seconds = float(value)
        except ValueError:
            raise AgentConfigError(f"{INTERVALS_ENV}: {name}={value!r} is not a number of seconds") from None
        if not math.isfinite(seconds) or seconds <= 0:
            raise AgentConfigError(f"{INTERVALS_ENV}: {name}={value!r} must be > 0 seconds")
        out[name] = seconds
    return out


def interval_for(name: str, override: float | None = None) -> float:
    """The interval of source `name`: --interval, else the environment, else the default."""
    if override is not None:
        return override
    configured = parse_intervals(os.environ.get(INTERVALS_ENV))
    return configured.get(name, DEFAULT_INTERVALS.get(name, 5.0))


def agent_sources(root: Path, interval: float | None = None) -> list[Source]:
    """Every source that applies to this machine: host, then the others whose `available()` is
    True. One owner per series: the host source leaves a name to any other source writing it
    (on a Jetson, jtop or tegrastats own RAM, swap, per-core CPU and the thermal zones)."""
    from collectors.sources.host import HostSource

    host = HostSource(root=root, interval=interval_for("host", interval))
    others = [s for s in extra_sources(root, interval) if s.available()]
    host.defer_to = host_owners(others)
    return [host, *others]


def host_owners(sources: list[Source]) -> list[Source]:
    """The sources the host source defers to: the board-wide ones (jtop, tegrastats, Tegra sysfs)."""
    return [s for s in sources if s.board_wide]


def extra_sources(root: Path, interval: float | None) -> list[Source]:
    """Every source besides host; the agent keeps those whose `available()` is True."""
    from collectors.sources.cgroup import CgroupSource
    from collectors.sources.irq import IrqSource
    from collectors.sources.runtimes import RuntimeSource
    from collectors.sources.tuning import TuningSource

    parse_intervals(os.environ.get(INTERVALS_ENV))  # fail early and clearly
    sources: list[Source] = [
        CgroupSource(root=root, interval=interval_for("cgroup", interval)),
        RuntimeSource(root=root, interval=interval_for("runtimes", interval)),
        IrqSource(root=root, interval=interval_for("irq", interval)),
        TuningSource(root=root, interval=interval_for("tuning", interval)),
    ]
    from collectors.sources.gpu import gpu_sources  # jtop / Tegra sysfs / tegrastats / NVML

    sources += gpu_sources(root, lambda name: interval_for(name, interval))
    from collectors.sources.latency_scrape import latency_sources  # runtimes' own latency counters

    sources += latency_sources(root, lambda name: interval_for(name, interval))
    return sources
