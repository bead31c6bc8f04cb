"""The demo device's throwaway sysfs/procfs tree, so that actions on the demo really run.

`python -m collectors replay ... --root DIR` builds this tree under DIR (once), attaches the agent's
own action executor to it and reads the device's tuning state from it instead of the recording: an
Apply on the demo device writes these files, is verified by reading them back, and Undo restores
them, exactly as on a real board, only under DIR instead of /.

The tree stands for an AGX Orin as the recording shows it (12 CPUs on schedutil, clocks not locked,
THP always, zram swap on, power mode MAXN). The tools the executor runs at fixed paths (jetson_clocks,
nvpmodel, swapoff, swapon, systemctl) are small Python stand-ins under DIR that change these files
the way the real tools change the real ones. Nothing outside DIR is read or written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

CPUS = 12
GPU = "sys/class/devfreq/17000000.ga10b"
EMC = "sys/kernel/debug/bpmp/debug/clk/emc"
MODES = ((0, "MAXN"), (1, "15W"), (2, "30W"), (3, "50W"))

_PRELUDE = f"""#!{sys.executable}
# ThoxDash demo stand-in: changes files under this throwaway tree only.
import json, sys
from pathlib import Path
ROOT = Path(__file__).resolve().parents[2]
args = sys.argv[1:]
"""

JETSON_CLOCKS = _PRELUDE + r'''
cpus = sorted(ROOT.glob("sys/devices/system/cpu/cpu[0-9]*/cpufreq"))
gpu = ROOT / "sys/class/devfreq/17000000.ga10b"
emc = ROOT / "sys/kernel/debug/bpmp/debug/clk/emc"
pairs = [(c / "scaling_min_freq", c / "scaling_max_freq", c / "cpuinfo_max_freq") for c in cpus]
pairs.append((gpu / "min_freq", gpu / "max_freq", gpu / "available_max"))
pairs.append((emc / "min_rate", emc / "max_rate", emc / "max_rate"))
if args[:1] == ["--store"]:
    Path(args[1]).write_text(json.dumps({str(p): p.read_text() for lo, hi, _ in pairs for p in (lo, hi)}))
elif args[:1] == ["--restore"]:
    try:
        saved = json.loads(Path(args[1]).read_text())
    except FileNotFoundError:
        sys.exit("jetson_clocks: no such store file")
    for path, value in saved.items():
        Path(path).write_text(value)
elif not args:
    for lo, hi, top in pairs:
        value = top.read_text()
        lo.write_text(value); hi.write_text(value)
else:
    sys.exit("usage: jetson_clocks [--store FILE|--restore FILE]")
'''

NVPMODEL = _PRELUDE + r'''
import re
state = ROOT / "var/lib/nvpmodel/status"
names = {0: "MAXN", 1: "15W", 2: "30W", 3: "50W"}
if args == ["-q"]:
    mode = int(re.search(r"pmode:(\d+)", state.read_text()).group(1))
    print(f"NV Power Mode: {names.get(mode, 'MODE' + str(mode))}")
    print(mode)
elif len(args) == 2 and args[0] == "-m" and int(args[1]) in names:
    state.write_text(f"pmode:{int(args[1]):04d} fmode:quiet\n")
else:
    sys.exit("usage: nvpmodel -q | -m MODE")
'''

SWAPOFF = _PRELUDE + r'''
swaps = ROOT / "proc/swaps"
if args != ["-a"]:
    sys.exit("usage: swapoff -a")
swaps.write_text(swaps.read_text().splitlines()[0] + "\n")
'''

SWAPON = _PRELUDE + r'''
swaps = ROOT / "proc/swaps"
if len(args) != 1 or not args[0].startswith("/"):
    sys.exit("usage: swapon DEVICE")
swaps.write_text(swaps.read_text() + f"{args[0]}\tpartition\t31938556\t0\t5\n")
'''

SYSTEMCTL = _PRELUDE + r'''
if len(args) != 2:
    sys.exit("usage: systemctl OP UNIT")
op, name = args
unit = ROOT / "run/demo-units" / name
if not unit.exists():
    sys.exit(f"Unit {name} could not be found.")
if op == "is-active":
    state = unit.read_text().strip()
    print(state)
    sys.exit(0 if state == "active" else 3)
unit.write_text({"stop": "inactive\n"}.get(op, "active\n"))
'''

TOOLS = (("usr/bin/jetson_clocks", JETSON_CLOCKS), ("usr/sbin/nvpmodel", NVPMODEL),
         ("usr/sbin/swapoff", SWAPOFF), ("usr/sbin/swapon", SWAPON), ("usr/bin/systemctl", SYSTEMCTL))


def _write(root: Path, rel: str, text: str, mode: int | None = None) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)


def is_built(root: Path) -> bool:
    return (root / "etc/thoxdash/demo-tree").is_file()


def build(root: Path, runtimes: list[dict[str, Any]] | None = None) -> Path:
    """Write the demo tree under `root` (an existing demo tree is left as it is); return root."""
    root = Path(root)
    if is_built(root):
        return root
    for cpu in range(CPUS):
        base = f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
        _write(root, f"{base}/scaling_governor", "schedutil\n")
        _write(root, f"{base}/scaling_available_governors", "performance schedutil ondemand powersave userspace\n")
        _write(root, f"{base}/scaling_min_freq", "115200\n")
        _write(root, f"{base}/scaling_max_freq", "2201600\n")
        _write(root, f"{base}/cpuinfo_max_freq", "2201600\n")
    _write(root, "sys/devices/system/cpu/isolated", "\n")
    _write(root, "sys/devices/system/cpu/online", f"0-{CPUS - 1}\n")
    _write(root, "proc/cmdline", "root=/dev/mmcblk0p1 rw rootwait console=ttyTCU0,115200\n")
    _write(root, "proc/version", "Linux version 5.15.148-tegra (demo) #1 SMP PREEMPT\n")
    _write(root, f"{GPU}/min_freq", "306000000\n")
    _write(root, f"{GPU}/max_freq", "1300500000\n")
    _write(root, f"{GPU}/available_max", "1300500000\n")
    _write(root, f"{EMC}/min_rate", "204000000\n")
    _write(root, f"{EMC}/max_rate", "3199000000\n")
    _write(root, "sys/kernel/mm/transparent_hugepage/enabled", "[always] madvise never\n")
    _write(root, "dev/zram0", "")
    _write(root, "proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n/dev/zram0\tpartition\t31938556\t0\t5\n")
    _write(root, "var/lib/nvpmodel/status", "pmode:0000 fmode:quiet\n")
    _write(root, "etc/nvpmodel.conf", "".join(f"< POWER_MODEL ID={i} NAME={n} >\n" for i, n in MODES))
    _write(root, "run/demo-units/gdm3.service", "inactive\n")
    for rel, text in TOOLS:
        _write(root, rel, text, 0o755)
    write_allow_list(root, runtimes)
    _write(root, "etc/thoxdash/demo-tree", "a throwaway tree for the ThoxDash demo device\n")
    return root


def write_allow_list(root: Path, runtimes: list[dict[str, Any]] | None, urls: dict[str, str] | None = None) -> None:
    """The demo's allow-list (etc/thoxdash/agent.json): its runtimes, with the simulated ones' URLs."""
    urls = urls or {}
    allow = {"runtimes": [{**{k: r[k] for k in ("name", "kind", "url", "priority") if r.get(k)},
                           **({"url": urls[r["name"]]} if r.get("name") in urls else {})}
                          for r in runtimes or [] if r.get("name")], "services": ["gdm3.service"]}
    _write(Path(root), "etc/thoxdash/agent.json", json.dumps(allow))
