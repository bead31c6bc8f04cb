"""Runtime memory and state: which processes belong to which inference runtime, what they hold.

Sources: /proc/PID/{stat,cmdline,statm,cgroup} (RSS), per-process GPU memory from NVML on dGPU
boxes (`collectors.sources.nvml.gpu_memory_by_pid`, when that module and a GPU are present) and
from nvmap on Jetson (collectors.tegra.nvmap: iovmm maps or clients, root only), and each
runtime's admin API (collectors.runtimes). Units: bytes.

Series: runtime_up{runtime}, runtime_rss_bytes, runtime_gpu_memory_bytes (when a GPU reader
answered), runtime_memory_bytes (RSS + GPU), runtime_ceiling_bytes (configured or default ceilings),
runtime_processes, runtime_model_bytes{runtime,model}, runtime_model_vram_bytes{runtime,model},
runtime_api_up{runtime}, plus the runtime's own metrics (histogram buckets left out).
Events: runtime_started / runtime_stopped, model_loaded / model_unloaded when the loaded set changes
(the first answer after start is the baseline, not an event). State: `runtimes`.

Matching: a process belongs to a runtime when its comm or argv[0] basename is in `names`, or a
`cmdline` / `cgroup` / `container` regex matches; its descendants follow it. When several runtimes
of one kind match a process (two servers of one kind), the one whose URL port is the port the process
listens on (its kind's `port_of(argv)`, e.g. `--port`) takes it; a process no port decides
follows its parent, else the first match. A process of a default runtime listening on another port
than the default URL's is another server of that kind: runtime `<name>:<port>`, its API probed
at that port. The defaults come from the runtime registry
(collectors.runtimes.KINDS: names, command lines, default URL and ceiling). Config: a JSON file
named by THOXDASH_AGENT_RUNTIMES: {"runtimes": [{"name", "kind", "url", "ceiling_bytes",
"match": {"names": [], "cmdline": [], "cgroup": [], "container": []}}], "defaults": true}; entries
replace the default of the same name; "defaults": false drops the others.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from collectors.runtimes import KINDS, RuntimeApiError, RuntimeClient, client_for, get_kind
from collectors.runtimes.base import SHARED
from collectors.series import series_key
from collectors.sources import procs
from collectors.sources.base import Source, values_record
from collectors.tegra import nvmap_memory_by_pid

CONFIG_ENV = "THOXDASH_AGENT_RUNTIMES"
CONTAINER_ID = re.compile(r"(?:docker|containerd|libpod|cri-containerd|crio)[-/:]([0-9a-f]{12,64})")


class RuntimeConfigError(ValueError):
    """The runtimes config file cannot be used; the message names the file and the entry."""


@dataclass
class RuntimeSpec:
    name: str
    kind: str | None = None
    url: str | None = None
    ceiling_bytes: float | None = None
    names: list[str] = field(default_factory=list)
    cmdline: list[str] = field(default_factory=list)
    cgroup: list[str] = field(default_factory=list)
    container: list[str] = field(default_factory=list)
    explicit: bool = False  # from the config file: probe the API even with no process seen

    def __post_init__(self) -> None:
        self._cmd = [re.compile(p) for p in self.cmdline]
        self._cg = [re.compile(p) for p in self.cgroup]
        self._ct = [re.compile(p) for p in self.container]
        kind = get_kind(self.kind)
        self.port_of = kind.port_of if kind is not None else None
        try:
            self.port = urlsplit(self.url).port if self.url else None
        except ValueError:
            self.port = None

    @property
    def needs_cgroup(self) -> bool:
        return bool(self._cg or self._ct)

    def matches(self, comm: str, argv: list[str], cgroup_text: str) -> bool:
        if comm in self.names or (argv and os.path.basename(argv[0]) in self.names):
            return True
        joined = " ".join(argv)
        if any(p.search(joined) for p in self._cmd):
            return True
        if cgroup_text and any(p.search(cgroup_text) for p in self._cg):
            return True
        ids = CONTAINER_ID.findall(cgroup_text) if self._ct and cgroup_text else []
        return any(p.search(i) for p in self._ct for i in ids)


DEFAULT_SPECS = [
    RuntimeSpec(k.name, k.name if k.client is not None else None, k.default_url, k.default_ceiling_bytes,
                names=list(k.process_names), cmdline=list(k.process_cmdline))
    for k in KINDS if k.default_runtime
]


def _strings(entry: dict[str, Any], key: str, where: str) -> list[str]:
    value = entry.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RuntimeConfigError(f"{where}: '{key}' must be a list of strings")
    return value


def parse_spec(entry: Any, where: str) -> RuntimeSpec:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
        raise RuntimeConfigError(f"{where}: each runtime needs a non-empty 'name'")
    match = entry.get("match", {})
    if not isinstance(match, dict):
        raise RuntimeConfigError(f"{where}: 'match' must be an object")
    ceiling = entry.get("ceiling_bytes")
    if ceiling is not None and (isinstance(ceiling, bool) or not isinstance(ceiling, (int, float)) or ceiling <= 0):
        raise RuntimeConfigError(f"{where}: 'ceiling_bytes' must be a positive number")
    for key in ("kind", "url"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise RuntimeConfigError(f"{where}: '{key}' must be a string")
    kind = entry.get("kind")
    if kind is not None:
        try:
            client_for(kind, "http://127.0.0.1:1").close()
        except ValueError as exc:
            raise RuntimeConfigError(f"{where}: {exc}") from None
    try:
        return RuntimeSpec(entry["name"], kind, entry.get("url"), float(ceiling) if ceiling else None,
                           names=_strings(match, "names", where), cmdline=_strings(match, "cmdline", where),
                           cgroup=_strings(match, "cgroup", where),
                           container=_strings(match, "container", where), explicit=bool(entry.get("url")))
    except re.error as exc:
        raise RuntimeConfigError(f"{where}: bad regular expression: {exc}") from None


def load_specs(path: str | Path | None = None) -> list[RuntimeSpec]:
    """The runtime specs: defaults, overridden by the JSON file at `path` (or $THOXDASH_AGENT_RUNTIMES)."""
    path = path or os.environ.get(CONFIG_ENV)
    if not path:
        return [replace(s) for s in DEFAULT_SPECS]
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise RuntimeConfigError(f"runtimes config {path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise RuntimeConfigError(f"runtimes config {path}: not JSON: {exc}") from None
    if not isinstance(config, dict) or not isinstance(config.get("runtimes", []), list):
        raise RuntimeConfigError(f"runtimes config {path}: expected {{\"runtimes\": [...]}}")
    specs = [parse_spec(e, f"runtimes config {path}: runtimes[{i}]") for i, e in enumerate(config.get("runtimes", []))]
    names = {s.name for s in specs}
    if config.get("defaults", True):
        specs = [replace(s) for s in DEFAULT_SPECS if s.name not in names] + specs
    return specs


Entry = tuple[int, int, tuple[str, ...], str, tuple[int | None, ...]]  # start, ppid, runtimes, comm, ports


class ProcessMatcher:
    """Maps live processes to runtimes, caching each pid's (starttime, ppid, matching runtimes,
    comm, ports) on first sight, so a steady system costs one directory listing plus the reads of
    new processes. A pid reused between two scans keeps its old classification (rare: pid_max is
    4M on 64-bit)."""

    def __init__(self, root: Path, specs: list[RuntimeSpec]):
        self.root = root
        self.specs = specs
        self._need_cgroup = any(s.needs_cgroup for s in specs)
        self._cache: dict[int, Entry] = {}
        self.derived: dict[str, RuntimeSpec] = {}  # `<default runtime>:<port>`: more servers of one kind

    def _classify(self, pid: int) -> Entry | None:
        st = procs.stat(self.root, pid)
        if st is None:
            return None
        cached = self._cache.get(pid)
        if cached and cached[0] == st.starttime:
            return cached
        argv = procs.cmdline(self.root, pid) or []
        cg = ""
        if self._need_cgroup:
            cg = "\n".join(f"{k}:{v}" for k, v in procs.cgroup_paths(self.root, pid).items())
        matched = [s for s in self.specs if s.matches(st.comm, argv, cg)]
        ports = tuple(s.port_of(argv) if s.port_of is not None else None for s in matched)
        entry = (st.starttime, st.ppid, tuple(s.name for s in matched), st.comm, ports)
        self._cache[pid] = entry
        return entry

    def _by_port(self, entry: Entry) -> str | None:
        """The matching runtime whose URL port is the port this process listens on."""
        by_name = {s.name: s for s in self.specs}
        for name, port in zip(entry[2], entry[4], strict=True):
            spec = by_name.get(name)
            if spec is not None and port is not None and spec.port == port:
                return name
        return None

    def _split(self, owner: str, entry: Entry, parent: str | None) -> str:
        """A default runtime's process listening on another port than the default URL's is another
        server of that kind: runtime `<name>:<port>`, its API at that port (its children follow it)."""
        spec = next((s for s in self.specs if s.name == owner), None)
        if spec is None or spec.explicit or spec.port is None or not spec.url:
            return owner
        port = entry[4][entry[2].index(owner)]
        if port is None or port == spec.port:
            return owner
        if parent is not None and (parent == owner or parent.startswith(owner + ":")):
            return parent  # e.g. a router-mode server's per-model children
        name = f"{owner}:{port}"
        if name not in self.derived:
            host = urlsplit(spec.url).hostname or "127.0.0.1"
            host = f"[{host}]" if ":" in host else host
            self.derived[name] = RuntimeSpec(name, spec.kind, f"http://{host}:{port}", spec.ceiling_bytes)
        return name

    def scan(self) -> dict[str, list[int]]:
        """{runtime: [pids]} including descendants of matched processes."""
        live = procs.pids(self.root)
        seen = set(live)
        for pid in list(self._cache):
            if pid not in seen:
                del self._cache[pid]
        table: dict[int, Entry] = {}
        for pid in live:
            entry = self._cache.get(pid) if pid in self._cache else None
            if entry is None:
                entry = self._classify(pid)
            if entry is not None:
                table[pid] = entry
        out: dict[str, list[int]] = {}
        if not any(entry[2] for entry in table.values()):
            return out
        owners: dict[int, str | None] = {}

        def owner_of(pid: int, depth: int = 0) -> str | None:
            if pid in owners:
                return owners[pid]
            entry = table.get(pid)
            if entry is None or depth > 64:
                return None
            if not entry[2]:
                owner = owner_of(entry[1], depth + 1)
            else:
                parent = owner_of(entry[1], depth + 1)
                if len(entry[2]) == 1:
                    owner = entry[2][0]
                else:  # several runtimes match: the port decides, else the parent's, else the first
                    owner = self._by_port(entry) or (parent if parent in entry[2] else entry[2][0])
                owner = self._split(owner, entry, parent)
            owners[pid] = owner
            return owner

        for pid in table:
            owner = owner_of(pid)
            if owner is not None:
                out.setdefault(owner, []).append(pid)
        for pids in out.values():
            pids.sort()
        return out

    def comms(self) -> list[str]:
        """The comm of every process seen by the last scan (from the cache: no reads)."""
        return [entry[3] for entry in self._cache.values()]


def gpu_memory_by_pid(root: Path) -> dict[int, int] | None:
    """NVML (dGPU, real root only) and nvmap (Jetson) per-process GPU bytes, or None if neither."""
    merged: dict[int, int] | None = None
    if root == Path("/"):
        try:
            from collectors.sources import nvml  # written alongside; absent on some installs
            by_pid = nvml.gpu_memory_by_pid(root)
        except Exception:  # no module, no driver, no GPU: not an error here
            by_pid = None
        if by_pid:
            merged = dict(by_pid)
    nvmap = nvmap_memory_by_pid(root)
    if nvmap is not None:
        merged = merged or {}
        for pid, size in nvmap.items():
            merged[pid] = max(merged.get(pid, 0), size)
    return merged


@dataclass
class RuntimeSource(Source):
    name: str = "runtimes"
    interval: float = 5.0
    api_timeout: float = 1.5
    config_path: str | None = None

    def __post_init__(self) -> None:
        self.config_error: str | None = None
        try:
            self.specs = load_specs(self.config_path)
        except RuntimeConfigError as exc:
            self.config_error = str(exc)
            self.specs = []
        self.matcher = ProcessMatcher(self.root, self.specs)
        self.clients: dict[str, RuntimeClient] = {}
        self.up: dict[str, bool] = {}
        self.models: dict[str, set[str]] = {}

    def _client(self, spec: RuntimeSpec) -> RuntimeClient | None:
        if not spec.kind or not spec.url:
            return None
        if spec.name not in self.clients:
            self.clients[spec.name] = client_for(spec.kind, spec.url, self.api_timeout)
        return self.clients[spec.name]

    def collect(self, now: float) -> list[dict[str, Any]]:
        if self.config_error:
            raise RuntimeConfigError(self.config_error)
        with SHARED.tick(now):
            return self._collect(now)

    def _collect(self, now: float) -> list[dict[str, Any]]:
        found = self.matcher.scan()
        gpu = gpu_memory_by_pid(self.root) if found else None
        values: dict[str, float | None] = {}
        events: list[dict[str, Any]] = []
        state: dict[str, Any] = {}
        for spec in [*self.specs, *self.matcher.derived.values()]:
            rss_of = {pid: rss for pid in found.get(spec.name, []) if (rss := procs.rss_bytes(self.root, pid))}
            pids = sorted(rss_of)  # a zombie or a process that just exited has no RSS: not counted
            if not pids and not spec.explicit and spec.name not in self.up:
                continue
            info: dict[str, Any] = {"pids": pids[:32], "processes": len(pids)}
            api_up = self._api(spec, values, events, info, now) if (pids or spec.explicit) else None
            up = bool(pids) or bool(api_up)
            self._transition(spec.name, up, events, now)
            rt = {"runtime": spec.name}
            values[series_key("runtime_up", **rt)] = 1.0 if up else 0.0
            if api_up is not None:
                values[series_key("runtime_api_up", **rt)] = 1.0 if api_up else 0.0
            if spec.ceiling_bytes:
                values[series_key("runtime_ceiling_bytes", **rt)] = spec.ceiling_bytes
            values[series_key("runtime_processes", **rt)] = float(len(pids))
            if pids:
                rss = sum(rss_of.values())
                gpu_bytes = sum(gpu.get(pid, 0) for pid in pids) if gpu is not None else None
                values[series_key("runtime_rss_bytes", **rt)] = float(rss)
                if gpu_bytes is not None:
                    values[series_key("runtime_gpu_memory_bytes", **rt)] = float(gpu_bytes)
                values[series_key("runtime_memory_bytes", **rt)] = float(rss + (gpu_bytes or 0))
            info["up"] = up
            state[spec.name] = info
        records = [values_record(now, self.name, values)]
        if state:
            records.append({"ts": now, "source": self.name, "state": {"runtimes": state}})
        return records + events

    def _transition(self, name: str, up: bool, events: list[dict[str, Any]], now: float) -> None:
        before = self.up.get(name)
        self.up[name] = up
        if before is not None and before != up:
            kind = "runtime_started" if up else "runtime_stopped"
            events.append({"ts": now, "source": "event", "event": {"kind": kind, "runtime": name}})

    def _api(self, spec: RuntimeSpec, values: dict[str, float | None], events: list[dict[str, Any]],
             info: dict[str, Any], now: float) -> bool | None:
        client = self._client(spec)
        if client is None:
            return None
        rt = {"runtime": spec.name}
        try:
            loaded = client.loaded_models()
        except RuntimeApiError as exc:
            info["api"] = exc.message[:200]
            return False
        info["api"] = "ok"
        info["models"] = [m.name for m in loaded][:64]
        sleeping = getattr(client, "sleeping", None)
        if sleeping:
            info["sleeping"] = list(sleeping)[:64]
        for model in loaded:
            if model.size_bytes is not None:
                values[series_key("runtime_model_bytes", model=model.name, **rt)] = model.size_bytes
            if model.vram_bytes is not None:
                values[series_key("runtime_model_vram_bytes", model=model.name, **rt)] = model.vram_bytes
        names = {m.name for m in loaded}
        before = self.models.get(spec.name)
        if before is not None:
            for name in sorted(names - before):
                events.append({"ts": now, "source": "event",
                               "event": {"kind": "model_loaded", "runtime": spec.name, "model": name}})
            for name in sorted(before - names):
                events.append({"ts": now, "source": "event",
                               "event": {"kind": "model_unloaded", "runtime": spec.name, "model": name}})
        self.models[spec.name] = names
        try:
            metrics = client.metrics()
        except RuntimeApiError as exc:
            if not exc.permanent:
                info["metrics"] = exc.message[:200]
            metrics = {}
        for key, value in metrics.items():
            if "_bucket{" not in key and not key.endswith("_bucket") and "_created" not in key:
                values[key] = value
        return True

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self.clients.clear()
