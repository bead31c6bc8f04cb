"""cgroup memory per runtime, and memory pressure (PSI).

Sources (all under `root`):
- cgroup v2 (unified, /sys/fs/cgroup with `memory` in cgroup.controllers): memory.current,
  memory.max, memory.high ("max" = no limit), memory.events (oom_kill, oom, max),
  memory.pressure (PSI, `some avg10=`), memory.stat (anon, file).
- cgroup v1 (/sys/fs/cgroup/memory): memory.usage_in_bytes, memory.limit_in_bytes (>= 2^62 means
  no limit), memory.failcnt, memory.oom_control (`oom_kill N`, kernel >= 4.13), memory.stat
  (total_rss, total_cache).
- /proc/pressure/memory (PSI avg10, percent) and /proc/vmstat `oom_kill` (host-wide counter).
Units: bytes; ratios 0..1 (PSI avg10 / 100); counters are totals since the cgroup was created.

Series: cgroup_memory_bytes{cgroup}, cgroup_memory_max_bytes{cgroup} (only when limited),
cgroup_memory_high_bytes{cgroup}, cgroup_oom_kills_total{cgroup}, cgroup_memory_limit_hits_total
{cgroup} (v1 failcnt, v2 events `max`), cgroup_memory_anon_bytes / cgroup_memory_file_bytes,
cgroup_memory_pressure_some_ratio{cgroup} (v2), memory_pressure_some_ratio,
memory_pressure_full_ratio, host_oom_kills_total. Events: oom_kill (with cgroup and runtime where
known) when a kill counter rises. The `cgroup` label is the path inside the hierarchy
("/system.slice/ollama.service").

Which cgroups: those holding runtime processes (found by the runtimes matcher every
`discover_every` seconds) plus the paths or globs in THOXDASH_AGENT_CGROUPS (comma-separated,
relative to the hierarchy root).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collectors.series import series_key
from collectors.sources import procs
from collectors.sources.base import Source, values_record
from collectors.sources.procs import read as read_text
from collectors.text import is_uint

if TYPE_CHECKING:
    from collectors.sources.runtimes import ProcessMatcher

NO_LIMIT = 2**62
MAX_BYTES = 2**56
CGROUPS_ENV = "THOXDASH_AGENT_CGROUPS"


def _int(text: str | None, limit: int = MAX_BYTES) -> int | None:
    if text is None:
        return None
    try:
        value = int(text.strip().split()[0])
    except (ValueError, IndexError):
        return None
    return value if 0 <= value <= limit else None


def _keyed(text: str | None) -> dict[str, int]:
    """`key value` lines (memory.stat, memory.events, oom_control); garbage lines skipped."""
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and is_uint(parts[1]):
            out[parts[0]] = int(parts[1])
    return out


def parse_psi(text: str | None) -> dict[str, float] | None:
    """{'some': avg10/100, 'full': avg10/100} from a PSI file; None when unreadable."""
    if text is None:
        return None
    out: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] not in ("some", "full"):
            continue
        for item in parts[1:]:
            key, _, value = item.partition("=")
            if key == "avg10":
                try:
                    ratio = float(value) / 100.0
                except ValueError:
                    break
                if 0.0 <= ratio <= 1.0:
                    out[parts[0]] = ratio
    return out or None


def pressure(root: Path) -> dict[str, float] | None:
    psi = parse_psi(read_text(root / "proc/pressure/memory"))
    if psi is None:
        return None
    return {f"memory_pressure_{k}_ratio": v for k, v in psi.items()}


def host_oom_kills(root: Path) -> int | None:
    return _keyed(read_text(root / "proc/vmstat")).get("oom_kill")


@dataclass
class Hierarchy:
    version: int
    base: Path  # the mount point of the memory hierarchy

    def path(self, cgroup: str) -> Path:
        return self.base / cgroup.lstrip("/")


def hierarchies(root: Path) -> list[Hierarchy]:
    out = []
    v2 = root / "sys/fs/cgroup"
    if "memory" in (read_text(v2 / "cgroup.controllers") or "").split():
        out.append(Hierarchy(2, v2))
    v1 = root / "sys/fs/cgroup/memory"
    if (v1 / "memory.usage_in_bytes").exists():
        out.append(Hierarchy(1, v1))
    return out


def read_v2(path: Path) -> dict[str, int | float | None] | None:
    current = _int(read_text(path / "memory.current"))
    if current is None:
        return None
    events = _keyed(read_text(path / "memory.events"))
    stat = _keyed(read_text(path / "memory.stat"))
    psi = parse_psi(read_text(path / "memory.pressure")) or {}
    return {"usage": current, "max": _int(read_text(path / "memory.max")),
            "high": _int(read_text(path / "memory.high")), "oom_kills": events.get("oom_kill"),
            "limit_hits": events.get("max"), "anon": stat.get("anon"), "file": stat.get("file"),
            "pressure_some": psi.get("some")}


def read_v1(path: Path) -> dict[str, int | float | None] | None:
    usage = _int(read_text(path / "memory.usage_in_bytes"))
    if usage is None:
        return None
    limit = _int(read_text(path / "memory.limit_in_bytes"), limit=2**63)
    oom = _keyed(read_text(path / "memory.oom_control"))
    stat = _keyed(read_text(path / "memory.stat"))
    return {"usage": usage, "max": limit if limit is not None and limit < NO_LIMIT else None,
            "oom_kills": oom.get("oom_kill"), "limit_hits": _int(read_text(path / "memory.failcnt")),
            "anon": stat.get("total_rss"), "file": stat.get("total_cache"), "under_oom": oom.get("under_oom")}


SERIES = {"usage": "cgroup_memory_bytes", "max": "cgroup_memory_max_bytes", "high": "cgroup_memory_high_bytes",
          "oom_kills": "cgroup_oom_kills_total", "limit_hits": "cgroup_memory_limit_hits_total",
          "anon": "cgroup_memory_anon_bytes", "file": "cgroup_memory_file_bytes",
          "pressure_some": "cgroup_memory_pressure_some_ratio"}


def configured_cgroups(spec: str | None) -> list[str]:
    return [p.strip() for p in (spec or "").split(",") if p.strip()]


@dataclass
class CgroupSource(Source):
    name: str = "cgroup"
    interval: float = 1.0
    discover_every: float = 30.0
    cgroups: list[str] = field(default_factory=lambda: configured_cgroups(os.environ.get(CGROUPS_ENV)))

    def __post_init__(self) -> None:
        self.tree = hierarchies(self.root)
        self._watch: dict[str, str | None] = {}  # cgroup path -> runtime
        self._next_discovery = 0.0
        self._kills: dict[str, int] = {}
        self._host_kills: int | None = None
        self._matcher: ProcessMatcher | None = None

    def available(self) -> bool:
        return bool(self.tree) or (self.root / "proc/pressure/memory").exists()

    def _discover(self) -> None:
        watch: dict[str, str | None] = {}
        for hier in self.tree:
            for pattern in self.cgroups:
                for match in sorted(hier.base.glob(pattern.lstrip("/"))):
                    if match.is_dir():
                        watch["/" + str(match.relative_to(hier.base))] = None
        if self.tree:
            if self._matcher is None:
                from collectors.sources.runtimes import ProcessMatcher, load_specs
                try:
                    self._matcher = ProcessMatcher(self.root, load_specs())
                except ValueError:
                    self._matcher = ProcessMatcher(self.root, [])
            controller = "" if self.tree[0].version == 2 else "memory"
            for runtime, pids in self._matcher.scan().items():
                for pid in pids[:8]:
                    path = procs.cgroup_paths(self.root, pid).get(controller)
                    if path and path != "/":
                        watch[path] = runtime
        self._watch = watch

    def collect(self, now: float) -> list[dict[str, Any]]:
        if now >= self._next_discovery:
            self._discover()
            self._next_discovery = now + self.discover_every
        values: dict[str, float | None] = dict(pressure(self.root) or {})
        events = []
        host_kills = host_oom_kills(self.root)
        if host_kills is not None:
            values["host_oom_kills_total"] = float(host_kills)
            if self._host_kills is not None and host_kills > self._host_kills:
                events.append(self._event(now, {"scope": "host", "count": host_kills - self._host_kills}))
            self._host_kills = host_kills
        hier = self.tree[0] if self.tree else None
        for cgroup, runtime in sorted(self._watch.items()):
            data = None
            if hier is not None:
                data = (read_v2 if hier.version == 2 else read_v1)(hier.path(cgroup))
            if data is None:
                continue
            for key, metric in SERIES.items():
                if data.get(key) is not None:
                    values[series_key(metric, cgroup=cgroup)] = float(data[key])  # type: ignore[arg-type]
            kills = data.get("oom_kills")
            if isinstance(kills, int):
                before = self._kills.get(cgroup)
                if before is not None and kills > before:
                    detail: dict[str, Any] = {"cgroup": cgroup, "count": kills - before}
                    if runtime:
                        detail["runtime"] = runtime
                    events.append(self._event(now, detail))
                self._kills[cgroup] = kills
        return [values_record(now, self.name, values), *events]

    @staticmethod
    def _event(now: float, detail: dict[str, Any]) -> dict[str, Any]:
        return {"ts": now, "source": "event", "event": {"kind": "oom_kill", **detail}}
