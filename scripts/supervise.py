"""`make run`'s supervisor: start every process of a Procfile, restart one that exits, stop all on
Ctrl-C or SIGTERM.

Unlike honcho (which stops everything when one process ends), a process that dies is started
again after a backoff (1 s doubling to 30 s; back to 1 s once it has run for a minute), so one
crash or a dependency going away for a while never takes the whole stack down. Output lines are
prefixed with the time and the process name. Procfile lines are `name: command` (run by bash).

    python scripts/supervise.py .run/Procfile
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")
BACKOFF_MIN_S, BACKOFF_MAX_S, HEALTHY_S = 1.0, 30.0, 60.0
STOP_GRACE_S = 10.0
_print_lock = threading.Lock()


def say(name: str, text: str) -> None:
    with _print_lock:
        sys.stdout.write(f"{time.strftime('%H:%M:%S')} {name:<8} | {text}\n")
        sys.stdout.flush()


def parse(text: str) -> list[tuple[str, str]]:
    """Procfile text -> [(name, command)]; blank lines and # comments ignored."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = LINE.match(line.strip())
        if not m:
            raise ValueError(f"Procfile line {number}: expected 'name: command', got {line!r}")
        out.append((m.group(1), m.group(2)))
    return out


@dataclass
class Child:
    name: str
    command: str
    proc: subprocess.Popen | None = None
    started: float = 0.0
    backoff: float = BACKOFF_MIN_S
    restart_at: float = 0.0
    restarts: int = 0
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self.proc = subprocess.Popen(["bash", "-c", self.command], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.started = time.monotonic()
        say(self.name, f"started with pid {self.proc.pid}")
        t = threading.Thread(target=self._pump, args=(self.proc,), daemon=True)
        t.start()

    def _pump(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            say(self.name, raw.decode(errors="replace").rstrip("\n"))

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)


class Supervisor:
    def __init__(self, entries: list[tuple[str, str]]):
        self.children = [Child(name, command) for name, command in entries]
        self.stopping = threading.Event()

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopping.set())
        for child in self.children:
            child.start()
        while not self.stopping.wait(0.2):
            self.check(time.monotonic())
        self.stop()
        return 0

    def check(self, now: float) -> None:
        """Restart (after its backoff) every child that has exited."""
        for child in self.children:
            if child.proc is None:
                if now >= child.restart_at:
                    child.restarts += 1
                    child.start()
                continue
            rc = child.proc.poll()
            if rc is None:
                continue
            ran = now - child.started
            if ran >= HEALTHY_S:
                child.backoff = BACKOFF_MIN_S
            delay = child.backoff
            child.backoff = min(BACKOFF_MAX_S, child.backoff * 2)
            child.restart_at = now + delay
            child.proc = None
            say(child.name, f"exited with code {rc} after {ran:.1f} s; restarting in {delay:.1f} s")

    def stop(self) -> None:
        say("supervise", "stopping every process")
        for child in self.children:
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.signal(signal.SIGKILL)
                child.proc.wait(5)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: supervise.py PROCFILE", file=sys.stderr)
        return 2
    try:
        entries = parse(Path(argv[1]).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not entries:
        print(f"error: {argv[1]} names no process", file=sys.stderr)
        return 2
    return Supervisor(entries).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
