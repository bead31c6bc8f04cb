"""What an action may touch: the device tree under `root`, fixed tool paths, the allow-list config.

The allow-list config is the device's own file (never the web's): `THOXDASH_AGENT_CONFIG`, else
the runtimes file of the runtimes source (`THOXDASH_AGENT_RUNTIMES`, same `{"runtimes": [...]}`
shape, so one file can serve both), else `<root>/etc/thoxdash/agent.json`. Without any, the
default runtimes (name, kind, loopback URL) are allowed for evict/throttle, all background:

    {"runtimes": [{"name": "ollama", "kind": "ollama", "url": "http://127.0.0.1:11434",
                   "priority": "background", "cgroup": "system.slice/ollama.service",
                   "service": "ollama.service", "container": null}],
     "services": ["gdm3.service"], "containers": ["inference-server"]}
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collectors.actions.params import ParamError
from collectors.actions.params import name as check_name

# Fixed binary locations (tried in order), resolved under `root`. Never taken from a request.
TOOLS: dict[str, tuple[str, ...]] = {
    "jetson_clocks": ("/usr/bin/jetson_clocks",),
    "nvpmodel": ("/usr/sbin/nvpmodel", "/usr/bin/nvpmodel"),
    "systemctl": ("/usr/bin/systemctl", "/bin/systemctl"),
    "docker": ("/usr/bin/docker",),
    "swapoff": ("/usr/sbin/swapoff", "/sbin/swapoff"),
    "swapon": ("/usr/sbin/swapon", "/sbin/swapon"),
}
log = logging.getLogger(__name__)
CGROUP_PART = re.compile(r"^[A-Za-z0-9_.@:-]{1,128}$")
PRIORITIES = ("critical", "essential", "background")


class ToolError(RuntimeError):
    """A tool is missing, timed out or exited non-zero."""


def untrusted(path: Path, base: Path) -> str | None:
    """Why a tool the agent would run is not trusted, or None: the file and every folder from it up
    to `base` must be owned by root or by the agent's own user and writable by no one else."""
    me = os.geteuid()
    current = path
    while True:
        try:
            st = current.stat()
        except OSError as exc:
            return f"{current}: {exc.strerror or exc}"
        if st.st_uid not in (0, me):
            return f"{current} is owned by uid {st.st_uid}"
        if st.st_mode & 0o022 and not (current.is_dir() and st.st_mode & 0o1000 and current != path.parent):
            return f"{current} is writable by group or others"
        if current == base or current.parent == current:
            return None
        current = current.parent


@dataclass
class ActionContext:
    root: Path
    device: str = "local"
    config: dict[str, Any] = field(default_factory=dict)
    store: Any = None  # collectors.store.TelemetryStore, for throttle (admission limits)
    tool_timeout_s: float = 60.0
    http_timeout_s: float = 10.0
    request_id: str = "manual-request"  # the request being executed (names saved state files)
    # Where the fixed tools (systemctl, nvpmodel, ...) are looked up. The agent process uses the real
    # `/` whatever its --root (THOXDASH_AGENT_TOOLS_ROOT overrides, for test trees): a tree others can
    # write to must not supply programs the root agent runs. None: the same tree as `root`.
    tools_root: Path | None = None

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    @property
    def state_dir(self) -> Path:
        folder = self.path("/var/lib/thoxdash")
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def tool(self, name: str) -> Path:
        base = self.tools_root if self.tools_root is not None else self.root
        for candidate in TOOLS[name]:
            path = base / candidate.lstrip("/")
            if path.is_file() and os.access(path, os.X_OK):
                problem = untrusted(path, base)
                if problem:
                    raise ToolError(f"{name} at {path} is not trusted: {problem}")
                return path
        raise ToolError(f"{name} not found at {' or '.join(TOOLS[name])}")

    def run(self, name: str, *args: str, stdin: str | None = None, ok: tuple[int, ...] = (0,)) -> str:
        """Run a fixed tool with argument list (no shell); return stdout or raise ToolError."""
        exe = self.tool(name)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
        try:
            out = subprocess.run([str(exe), *args], input=stdin, capture_output=True, text=True,
                                 timeout=self.tool_timeout_s, env=env, check=False)
        except subprocess.TimeoutExpired:
            raise ToolError(f"{name} {' '.join(args)}: no answer in {self.tool_timeout_s:.0f} s") from None
        except OSError as exc:
            raise ToolError(f"{name}: {exc}") from None
        if out.returncode not in ok:
            detail = (out.stderr or out.stdout).strip().splitlines()
            raise ToolError(f"{name} {' '.join(args)} exited {out.returncode}: {detail[-1] if detail else ''}")
        return out.stdout

    # -- allow-list ---------------------------------------------------------------------------
    def runtime(self, value: Any) -> dict[str, Any]:
        runtime_name = check_name(value, "runtime")
        for runtime in self.config.get("runtimes") or []:
            if runtime.get("name") == runtime_name:
                return dict(runtime)
        broken = f" (the allow-list is unusable: {self.config['error']})" if self.config.get("error") else ""
        raise ParamError(f"runtime {runtime_name!r} is not in this device's allow-list{broken}")

    def allowed(self, kind: str, value: Any) -> str:
        """A service or container name that the device's config lists."""
        item = check_name(value, kind)
        listed = set(self.config.get(f"{kind}s") or [])
        for runtime in self.config.get("runtimes") or []:
            if runtime.get(kind):
                listed.add(runtime[kind])
        if item not in listed:
            raise ParamError(f"{kind} {item!r} is not in this device's allow-list")
        return item


def priority(runtime: dict[str, Any]) -> str:
    value = runtime.get("priority", "background")
    return value if value in PRIORITIES else "background"


def cgroup_parts(value: Any) -> list[str]:
    if not isinstance(value, str) or not value.strip("/"):
        raise ParamError("the runtime has no cgroup in this device's config")
    parts = value.strip("/").split("/")
    for part in parts:
        if part in (".", "..") or not CGROUP_PART.match(part):
            raise ParamError(f"bad cgroup path component {part!r} in the device config")
    return parts


def config_path(root: Path) -> str:
    return (os.environ.get("THOXDASH_AGENT_CONFIG") or os.environ.get("THOXDASH_AGENT_RUNTIMES")
            or str(root / "etc/thoxdash/agent.json"))


def load_config(root: Path, path: str | None = None) -> dict[str, Any]:
    path = path or config_path(root)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        data = {}
    except (OSError, ValueError) as exc:
        # a broken allow-list allows nothing beyond the plain tuning knobs; say so loudly
        log.error("action allow-list %s unusable (%s): runtime, service and container actions are refused",
                  path, exc)
        return {"runtimes": [], "services": [], "containers": [], "error": f"{path}: {exc}"}
    data = data if isinstance(data, dict) else {}
    if not data.get("runtimes"):
        data["runtimes"] = default_runtimes()
    return data


def default_runtimes() -> list[dict[str, Any]]:
    try:
        from collectors.sources.runtimes import DEFAULT_SPECS
    except ImportError:
        return []
    from collectors.runtimes import get_kind

    return [{"name": s.name, "kind": s.kind, "url": s.url,
             "priority": kind.default_priority if (kind := get_kind(s.kind)) else "background"}
            for s in DEFAULT_SPECS if s.kind and s.url]
