"""A production-shaped ThoxDash stack for the benches: daphne, prefork Celery workers, beat."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import psutil

from tests.stack import Stack

BIN = Path(sys.executable).parent


def start(redis_url: str, prefix: str, workers: int = 1, concurrency: int = 2,
          extra_env: dict[str, str] | None = None, tmp: Path | None = None) -> Stack:
    tmp = tmp or Path(tempfile.mkdtemp(prefix="thoxdash-bench-"))
    stack = Stack(tmp, redis_url, prefix=prefix, worker=False)
    stack.env.update(extra_env or {})
    stack.start()
    for i in range(workers):
        stack.spawn(f"worker{i}", str(BIN / "celery"), "-A", "thoxdash", "worker", "-l", "warning", "-E",
                    "--concurrency", str(concurrency), "--hostname", f"bench{i}-{stack.port}@%h")
    stack.spawn("beat", str(BIN / "celery"), "-A", "thoxdash", "beat", "-l", "warning",
                "--schedule", str(tmp / "celerybeat-schedule"))
    return stack


def tree_rss(pid: int) -> int:
    """RSS of a process and all its children, in bytes (0 once it is gone)."""
    try:
        proc = psutil.Process(pid)
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total
    except psutil.NoSuchProcess:
        return 0
