"""What the agent costs on this machine, side by side with Glances and node_exporter.

Part 1 -- steady state: the agent (`python -m collectors agent`, default intervals, publishing to
Redis), Glances (`glances -q --export csv -t 1`, from a separate venv) and Prometheus node_exporter
(scraped every 1 s by this script) run at the same time for --seconds; for each we print CPU time per
wall second (utime+stime from /proc/PID/stat, children included) and peak RSS (VmHWM).
Targets: agent <= 1% of one core, <= 30 MiB peak RSS, less CPU than either peer.

Part 2 -- one agent cycle (every source collected once, in this process) against the floor: the
raw cost of opening and reading the same files (recorded with an audit hook during a cycle) with
os.open/os.read, no parsing. Both are measured as CPU time of the calling thread (so other load on
the machine does not count), median over --iterations. Target: cycle <= 3x floor.

Usage: .venv/bin/python bench/agent_cost.py [--seconds 60] [--glances PATH] [--redis URL]
       [--agent LABEL=PYTHON[@DIR] ...]   (several agents side by side, e.g. before/after, or a
       device's install: python3 -m venv .run/bench/agent && .run/bench/agent/bin/pip install .,
       then --agent "device install=.run/bench/agent/bin/python@/tmp")
Glances: python3 -m venv .run/bench/glances && .run/bench/glances/bin/pip install glances
node_exporter: apt-get install prometheus-node-exporter
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its reaped children (seconds)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rfind(")") + 2:].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLK_TCK


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def agents(specs: list[str] | None) -> list[tuple[str, str, str]]:
    """`LABEL=PYTHON[@DIR]` -> (label, interpreter, working directory). The agent runs as
    `PYTHON -m collectors agent` in DIR: a source tree there is what runs; a DIR without one (e.g.
    /tmp) runs what PYTHON has installed (a device's `pip install .`). Default: this checkout with
    this interpreter."""
    out = []
    for spec in specs or [f"thoxdash agent={sys.executable}@{ROOT}"]:
        label, sep, rest = spec.partition("=")
        python, _, cwd = rest.partition("@")
        if not sep or not label or not python:
            raise SystemExit(f"--agent {spec!r}: expected LABEL=PYTHON[@DIR]")
        out.append((label, python, cwd or str(ROOT)))
    return out


def start_peers(args: argparse.Namespace, tmp: Path) -> dict[str, tuple[subprocess.Popen, str | None]]:
    env = {**os.environ, "THOXDASH_REDIS_PREFIX": args.prefix, "THOXDASH_LOG_LEVEL": "WARNING"}
    procs: dict[str, tuple[subprocess.Popen, str | None]] = {}
    for i, (label, python, cwd) in enumerate(agents(args.agent)):
        procs[label] = (subprocess.Popen(
            [python, "-m", "collectors", "agent", "--device", f"bench{i}", "--redis", args.redis,
             "--spill", str(tmp / f"spill{i}")], cwd=cwd, env=env, stdout=subprocess.DEVNULL), None)
    glances = Path(args.glances)
    if glances.exists():
        procs["glances 1 s"] = (subprocess.Popen(
            [str(glances), "-q", "-t", "1", "--export", "csv", "--export-csv-file", str(tmp / "glances.csv")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), None)
    else:
        print(f"(glances not found at {glances}: skipped)")
    exporter = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if exporter:
        port = free_port()
        procs["node_exporter 1 s"] = (subprocess.Popen(
            [exporter, f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL), f"http://127.0.0.1:{port}/metrics")
    else:
        print("(node_exporter not installed: skipped)")
    return procs


def steady_state(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmpdir:
        procs = start_peers(args, Path(tmpdir))
        try:
            time.sleep(args.warmup)
            start = {name: cpu_seconds(p.pid) for name, (p, _) in procs.items()}
            t0 = time.monotonic()
            scrapes = 0
            while time.monotonic() - t0 < args.seconds:
                tick = time.monotonic()
                for _name, (_p, url) in procs.items():
                    if url:
                        with urllib.request.urlopen(url, timeout=5) as resp:
                            resp.read()
                        scrapes += 1
                time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
            wall = time.monotonic() - t0
            rows = []
            for name, (p, _) in procs.items():
                alive = p.poll() is None
                used = cpu_seconds(p.pid) - start[name] if alive else float("nan")
                rows.append((name, 100.0 * used / wall, peak_rss(p.pid) / 2**20 if alive else float("nan")))
        finally:
            for _name, (p, _) in procs.items():
                p.terminate()
            for _name, (p, _) in procs.items():
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
    print(f"\nsteady state over {wall:.0f} s (same window; node_exporter scraped {scrapes} times)")
    width = max(20, *(len(name) + 1 for name, _, _ in rows))
    print(f"{'process':<{width}} {'CPU % of one core':>18} {'peak RSS MiB':>13} {'(MB)':>7}")
    for name, cpu, rss in rows:
        print(f"{name:<{width}} {cpu:>18.2f} {rss:>13.1f} {rss * 2**20 / 1e6:>7.1f}")
    print("targets: agent <= 1.00 % and <= 30 MiB peak RSS, and less CPU than each peer")


def cycle_vs_floor(iterations: int) -> None:
    from collectors.sources.registry import agent_sources

    root = Path("/")
    sources = agent_sources(root)
    for s in sources:  # warm caches (process matcher, psutil)
        s.collect(time.time())
    paths: set[str] = set()
    dirs: set[str] = set()

    recording = [True]  # audit hooks cannot be removed: this flag turns it off after one cycle

    def hook(event: str, args: tuple) -> None:
        if not recording[0]:
            return
        if event == "open" and isinstance(args[0], str) and args[0].startswith(("/proc", "/sys", "/etc", "/var")):
            paths.add(args[0])
        elif event in ("os.listdir", "os.scandir") and args and isinstance(args[0], (str, Path)):
            dirs.add(str(args[0]))

    sys.addaudithook(hook)
    for s in sources:
        s.collect(time.time())
    recording[0] = False

    def floor_once() -> None:
        for d in dirs:
            with contextlib.suppress(OSError):
                os.listdir(d)
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                while os.read(fd, 65536):
                    pass
            except OSError:
                pass
            finally:
                os.close(fd)

    per_source: dict[str, list[float]] = {s.name: [] for s in sources}
    cycles, floors = [], []
    clock = time.thread_time  # CPU time of this thread: other processes on the box do not count
    for _ in range(iterations):
        t0 = clock()
        for s in sources:
            t = clock()
            s.collect(time.time())
            per_source[s.name].append(clock() - t)
        cycles.append(clock() - t0)
        t0 = clock()
        floor_once()
        floors.append(clock() - t0)
    cycle, floor = statistics.median(cycles), statistics.median(floors)
    print(f"\none cycle (every source once) vs the floor: {len(paths)} files, {len(dirs)} directory listings")
    print(f"{'CPU time per call':<20} {'median ms':>10}")
    for name, times in per_source.items():
        print(f"  {name:<18} {1000 * statistics.median(times):>10.3f}")
    print(f"{'agent cycle':<20} {1000 * cycle:>10.3f}")
    print(f"{'floor (raw reads)':<20} {1000 * floor:>10.3f}")
    print(f"ratio cycle/floor: {cycle / floor:.2f}x (target <= 3x)")
    for s in sources:
        s.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--glances", default=str(ROOT / ".run/bench/glances/bin/glances"))
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--skip-steady", action="store_true")
    parser.add_argument("--agent", action="append", metavar="LABEL=PYTHON[@DIR]",
                        help="an agent to measure (repeatable; all run in the same window as the peers)")
    args = parser.parse_args()
    args.prefix = f"thoxbench:{uuid.uuid4().hex[:8]}:"
    if not args.skip_steady:
        try:
            steady_state(args)
        finally:
            from collectors.store import TelemetryStore
            TelemetryStore.from_url(args.redis, prefix=args.prefix).delete_prefix()
    cycle_vs_floor(args.iterations)
    return 0


if __name__ == "__main__":
    sys.exit(main())
