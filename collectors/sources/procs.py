"""Small readers for /proc/PID files, shared by the host, runtimes, cgroup and tuning sources.

Sources: /proc/PID/stat (comm, state, ppid, starttime, rt_priority, policy), /proc/PID/cmdline,
/proc/PID/statm (resident pages), /proc/PID/status (VmLck, kB), /proc/PID/cgroup,
/proc/PID/task/TID/stat. Units: bytes for memory. Every reader returns None for a process that
vanished or a line it cannot parse. Names are data: `safe_name` cuts them and replaces control
characters, so a hostile comm or cmdline cannot forge log lines or series syntax.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from collectors.files import read as read  # re-exported: the sources read files through procs
from collectors.files import read_int as read_int
from collectors.text import is_uint

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
SCHED_POLICIES = {0: "SCHED_OTHER", 1: "SCHED_FIFO", 2: "SCHED_RR", 3: "SCHED_BATCH",
                  5: "SCHED_IDLE", 6: "SCHED_DEADLINE"}


def safe_name(value: str, limit: int = 128) -> str:
    """A process or model name fit to show: control characters replaced, cut to `limit`."""
    value = value[:limit]
    if value.isprintable():
        return value
    return "".join(ch if ch.isprintable() else "?" for ch in value)


def _proc(root: Path, *parts: object) -> str:
    """A path string under root/proc (strings, not Path objects: this is the hot path)."""
    return "/".join([str(root).rstrip("/"), "proc", *map(str, parts)])


def pids(root: Path) -> list[int]:
    try:
        return [int(n) for n in os.listdir(_proc(root)) if is_uint(n)]
    except OSError:
        return []


@dataclass
class Stat:
    pid: int
    comm: str
    state: str
    ppid: int
    starttime: int
    rt_priority: int
    policy: int


def parse_stat(pid: int, text: str) -> Stat | None:
    """Parse /proc/PID/stat; comm may hold spaces and parentheses, so split at the last ')'."""
    start, end = text.find("("), text.rfind(")")
    if start < 0 or end < start:
        return None
    rest = text[end + 1:].split()
    try:
        return Stat(pid, text[start + 1:end], rest[0], int(rest[1]), int(rest[19]),
                    int(rest[37]) if len(rest) > 38 else 0, int(rest[38]) if len(rest) > 38 else 0)
    except (IndexError, ValueError):
        return None


def stat(root: Path, pid: int, tid: int | None = None) -> Stat | None:
    text = read(_proc(root, pid, "stat") if tid is None else _proc(root, pid, "task", tid, "stat"))
    return parse_stat(tid or pid, text) if text else None


def cmdline(root: Path, pid: int) -> list[str] | None:
    text = read(_proc(root, pid, "cmdline"))
    if text is None:
        return None
    return [part for part in text.split("\x00") if part]


def rss_bytes(root: Path, pid: int) -> int | None:
    text = read(_proc(root, pid, "statm"))
    try:
        pages = int(text.split()[1]) if text else None
    except (IndexError, ValueError):
        return None
    return pages * PAGE_SIZE if pages is not None and pages >= 0 else None


def status_kb(root: Path, pid: int, field: str) -> int | None:
    """A `Field:  N kB` line of /proc/PID/status, in bytes."""
    text = read(_proc(root, pid, "status"))
    for line in (text or "").splitlines():
        if line.startswith(field + ":"):
            try:
                return int(line.split()[1]) * 1024
            except (IndexError, ValueError):
                return None
    return None


def cgroup_paths(root: Path, pid: int) -> dict[str, str]:
    """{controller: path} from /proc/PID/cgroup; the v2 unified entry is under key ''."""
    out: dict[str, str] = {}
    for line in (read(_proc(root, pid, "cgroup")) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            out[controller] = parts[2]
    return out


def thread_ids(root: Path, pid: int) -> list[int]:
    try:
        return [int(n) for n in os.listdir(_proc(root, pid, "task")) if is_uint(n)]
    except OSError:
        return []
