"""What the GPU/SoC sources cost per sample, against their floors and a peer parser.

1. Tegra sysfs: one steady-state sample (`read_layout` over the discovered files; discovery runs
   once a minute) on a fake Orin Nano tree (tests/jetson_tree.py, fed a real
   tegrastats frame) against the floor: opening and reading the same files (recorded with an audit
   hook during one call) with os.open/os.read and no parsing. Target: <= 3x the floor.
2. tegrastats: `parse_line` over every line of the real Orin Nano log against `str.split()` of the
   same lines (floor) and, side by side, jetson-stats' own tegrastats parser (`jtop.core.tegra_parse`,
   used only if a jetson-stats install is found in .run/jtop-sim/site-7.2.2, which the tests create).
3. jtop: `raw_values` on the recorded jetson-stats 7.2.2 dict, after `json.loads` of `jetson.json()`,
   against `json.loads` alone (the floor: the client hands us JSON text).
All figures are CPU time of this thread (time.thread_time), median of --repeat runs.

Usage: .venv/bin/python bench/gpu_sources_cost.py [--repeat 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from collectors.sources import tegra_sysfs  # noqa: E402
from collectors.sources.jtop import raw_values  # noqa: E402
from collectors.sources.tegrastats import parse_line  # noqa: E402
from tests.jetson_tree import ORIN_NANO_LOG, JetsonTree, orin_nano_frames  # noqa: E402


def cpu_median(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.thread_time()
        fn()
        samples.append(time.thread_time() - start)
    return statistics.median(samples)


def files_opened(fn: Callable[[], object]) -> list[str]:
    opened: list[str] = []
    active = [True]

    def hook(event: str, args: tuple) -> None:
        if active[0] and event == "open" and isinstance(args[0], str) and args[0].startswith("/"):
            opened.append(args[0])

    sys.addaudithook(hook)
    fn()
    active[0] = False
    return opened


def read_raw(paths: list[str]) -> None:
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.read(fd, 65536)
        finally:
            os.close(fd)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tree = JetsonTree(Path(tmp), "orin-nano-jp6").build()
        tree.set_processes({4242: ("llama-server", 3_145_728)})
        tree.apply(orin_nano_frames()[50])
        root = tree.root
        layout = tegra_sysfs.discover(root)  # what TegraSysfsSource does once a minute
        paths = [p for p in files_opened(lambda: tegra_sysfs.read_layout(layout)) if os.path.isfile(p)]
        cycle = cpu_median(lambda: tegra_sysfs.read_layout(layout), args.repeat)
        first = cpu_median(lambda: tegra_sysfs.sysfs_values(root), max(10, args.repeat // 10))
        floor = cpu_median(lambda: read_raw(paths), args.repeat)
        print(f"tegra_sysfs: one sample {cycle * 1e6:8.1f} us CPU | floor (read the same {len(paths)} files) "
              f"{floor * 1e6:8.1f} us | ratio {cycle / floor:4.2f}x (target <= 3x); "
              f"with discovery {first * 1e6:8.1f} us")

    lines = ORIN_NANO_LOG.read_text(encoding="utf-8").splitlines()
    ours = cpu_median(lambda: [parse_line(line) for line in lines], max(10, args.repeat // 10)) / len(lines)
    split = cpu_median(lambda: [line.split() for line in lines], max(10, args.repeat // 10)) / len(lines)
    row = f"tegrastats:  per line    {ours * 1e6:8.1f} us CPU | floor (str.split) {split * 1e6:8.1f} us"
    site = PROJECT / ".run/jtop-sim/site-7.2.2"
    if (site / "jtop/core/tegra_parse.py").exists():
        sys.path.insert(0, str(site))
        from jtop.core import tegra_parse  # peer: jetson-stats' own parser (AGPL, not vendored)

        def peer_parse(line: str) -> tuple:
            text = tegra_parse.DATE(line.split("|", 1)[-1])
            return (tegra_parse.RAM(text), tegra_parse.SWAP(text), tegra_parse.CPUS(text),
                    tegra_parse.VALS(text), tegra_parse.TEMPS(text), tegra_parse.WATTS(text))

        try:
            peer = cpu_median(lambda: [peer_parse(line) for line in lines], max(10, args.repeat // 10)) / len(lines)
            row += f" | jetson-stats tegra_parse {peer * 1e6:8.1f} us | ours/peer {ours / peer:4.2f}x"
        except Exception as exc:  # noqa: BLE001 - the peer's API differs between versions
            row += f" | jetson-stats parser not comparable here ({exc.__class__.__name__})"
    else:
        row += " | jetson-stats not found (run the jtop tests once to fetch it)"
    print(row)

    text = json.dumps(json.loads((PROJECT / "tests/fixtures/jtop/orin_nano_sim_jtop_7.2.2.json").read_text())["raw"])
    mapped = cpu_median(lambda: raw_values(json.loads(text)), args.repeat)
    loads = cpu_median(lambda: json.loads(text), args.repeat)
    print(f"jtop:        per sample  {mapped * 1e6:8.1f} us CPU | floor (json.loads only) {loads * 1e6:8.1f} us "
          f"| ratio {mapped / loads:4.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
