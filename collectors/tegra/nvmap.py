"""GPU memory per process on Jetson, from nvmap's debugfs tables (root only).

Files: /sys/kernel/debug/nvmap/iovmm/maps (newer kernels) or .../iovmm/clients, rows
`<client> <process name> <pid> <size>K` under a `CLIENT PROCESS PID SIZE` header and over a
`total ...` line; the process name may hold spaces. Sizes in KiB there, bytes here.
"""

from __future__ import annotations

from pathlib import Path

from collectors.files import read
from collectors.text import is_uint

NVMAP_FILES = ("sys/kernel/debug/nvmap/iovmm/maps", "sys/kernel/debug/nvmap/iovmm/clients")
MAX_PID = 2**22
MAX_KB = 2**40
NAME_LIMIT = 64


def nvmap_file(root: Path) -> Path | None:
    """The nvmap table this kernel has, or None."""
    for rel in NVMAP_FILES:
        if (root / rel).is_file():
            return root / rel
    return None


def parse_nvmap(text: str | None) -> list[tuple[int, str, int]]:
    """(pid, process name, bytes) per row; the header, totals and malformed rows are skipped."""
    rows = []
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[0].lower() in ("client", "total"):
            continue
        size, pid = parts[-1], parts[-2]
        if not (size.endswith("K") and is_uint(size[:-1]) and is_uint(pid)):
            continue
        pid_n, kb = int(pid), int(size[:-1])
        if 0 < pid_n < MAX_PID and kb < MAX_KB:
            rows.append((pid_n, " ".join(parts[1:-2])[:NAME_LIMIT], kb * 1024))
    return rows


def nvmap_memory_by_pid(root: Path) -> dict[int, int] | None:
    """GPU memory per pid in bytes; None when no nvmap table is readable."""
    path = nvmap_file(root)
    text = read(path) if path is not None else None
    if text is None:
        return None
    out: dict[int, int] = {}
    for pid, _name, size in parse_nvmap(text):
        out[pid] = out.get(pid, 0) + size
    return out
