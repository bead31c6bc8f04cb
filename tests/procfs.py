"""Build fake /proc and /sys trees on disk for source tests."""

from __future__ import annotations

from pathlib import Path


def write(root: Path, rel: str, content: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def stat_line(pid: int, comm: str, ppid: int = 1, start: int = 100, rt_priority: int = 0, policy: int = 0) -> str:
    # fields 3.. of /proc/PID/stat; 22 = starttime, 40 = rt_priority, 41 = policy
    rest = ["S", str(ppid)] + ["0"] * 17 + [str(start)] + ["0"] * 17 + [str(rt_priority), str(policy), "0", "0"]
    return f"{pid} ({comm}) " + " ".join(rest) + "\n"


def add_process(root: Path, pid: int, comm: str, argv: list[str], rss_pages: int = 1000, ppid: int = 1,
                cgroup: str = "0::/", threads: dict[int, tuple[int, int]] | None = None,
                vmlck_kb: int = 0) -> None:
    base = f"proc/{pid}"
    write(root, f"{base}/stat", stat_line(pid, comm, ppid))
    write(root, f"{base}/cmdline", "\x00".join(argv).encode() + b"\x00")
    write(root, f"{base}/statm", f"{rss_pages * 3} {rss_pages} 10 1 0 100 0\n")
    write(root, f"{base}/cgroup", cgroup + "\n")
    write(root, f"{base}/status", f"Name:\t{comm[:15]}\nVmLck:\t{vmlck_kb} kB\nVmRSS:\t{rss_pages * 4} kB\n")
    for tid, (prio, policy) in (threads or {pid: (0, 0)}).items():
        write(root, f"{base}/task/{tid}/stat", stat_line(tid, comm, ppid, rt_priority=prio, policy=policy))
