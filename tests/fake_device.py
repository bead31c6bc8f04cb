"""A fake Jetson-like device tree on disk for the action tests: sysfs/procfs files plus stand-ins
for jetson_clocks, nvpmodel, swapoff/swapon, systemctl and docker at their fixed paths under the
tree (small Python scripts that change the fake files the way the real tools change the real ones).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

CPUS = 8
GPU = "sys/class/devfreq/17000000.gpu"

_PRELUDE = f"""#!{sys.executable}
import json, sys
from pathlib import Path
ROOT = Path(__file__).resolve().parents[2]
args = sys.argv[1:]
"""

JETSON_CLOCKS = _PRELUDE + r'''
cpus = sorted(ROOT.glob("sys/devices/system/cpu/cpu[0-9]*/cpufreq"))
gpu = ROOT / "sys/class/devfreq/17000000.gpu"
pairs = [(c / "scaling_min_freq", c / "scaling_max_freq", c / "cpuinfo_max_freq") for c in cpus]
pairs.append((gpu / "min_freq", gpu / "max_freq", gpu / "available_max"))
if args[:1] == ["--store"]:
    Path(args[1]).write_text(json.dumps({str(lo): lo.read_text() for lo, hi, _ in pairs}
                                        | {str(hi): hi.read_text() for lo, hi, _ in pairs}))
elif args[:1] == ["--restore"]:
    try:
        saved = json.loads(Path(args[1]).read_text())
    except FileNotFoundError:
        sys.exit("jetson_clocks: no such store file")
    for path, value in saved.items():
        Path(path).write_text(value)
elif not args:
    if (ROOT / "etc/fake-jetson_clocks-broken").exists():
        sys.exit(0)  # claims success, changes nothing: verification must catch it
    for lo, hi, top in pairs:
        lo.write_text(top.read_text()); hi.write_text(top.read_text())
else:
    sys.exit("usage: jetson_clocks [--store FILE|--restore FILE]")
'''

NVPMODEL = _PRELUDE + r'''
import re
state = ROOT / "var/lib/nvpmodel/status"
names = {0: "MAXN", 1: "10W", 2: "15W", 3: "25W"}
if args == ["-q"]:
    mode = int(re.search(r"pmode:(\d+)", state.read_text()).group(1))
    print(f"NV Power Mode: {names.get(mode, 'MODE' + str(mode))}")
    print(mode)
elif len(args) == 2 and args[0] == "-m":
    mode = int(args[1])
    if mode not in names:
        sys.exit(f"NVPM ERROR: invalid mode {mode}")
    if mode == 3:  # needs a reboot: answered NO on stdin, nothing changes
        print("NVPM WARN: Reboot required for changing to this power mode: 3")
        print("NVPM WARN: DO YOU WANT TO REBOOT NOW? enter YES/yes to confirm:")
        answer = sys.stdin.readline().strip()
        sys.exit(0 if answer.upper() != "YES" else 0)
    state.write_text(f"pmode:{mode:04d} fmode:quiet\n")
else:
    sys.exit("usage")
'''

SWAPOFF = _PRELUDE + r'''
swaps = ROOT / "proc/swaps"
lines = swaps.read_text().splitlines()
if args == ["-a"]:
    swaps.write_text(lines[0] + "\n")
else:
    sys.exit("usage: swapoff -a")
'''

SWAPON = _PRELUDE + r'''
swaps = ROOT / "proc/swaps"
if len(args) != 1 or not args[0].startswith("/"):
    sys.exit("usage: swapon DEVICE")
swaps.write_text(swaps.read_text() + f"{args[0]}\tpartition\t4194300\t0\t-2\n")
'''

SYSTEMCTL = _PRELUDE + r'''
units = ROOT / "run/fake-units"
op, name = args
unit = units / name
if not unit.exists():
    sys.exit(f"Unit {name} could not be found.")
if op == "is-active":
    state = unit.read_text().strip()
    print(state)
    sys.exit(0 if state == "active" else 3)
if op in ("restart", "start"):
    if (ROOT / "etc/fake-service-fails").exists():
        unit.write_text("failed\n"); sys.exit(0)
    unit.write_text("active\n")
    with (ROOT / "run/fake-restarts").open("a") as log:
        log.write(name + "\n")
elif op == "stop":
    unit.write_text("inactive\n")
'''

DOCKER = _PRELUDE + r'''
containers = ROOT / "run/fake-containers"
if args[:1] == ["inspect"]:
    box = containers / args[-1]
    if not box.exists():
        sys.exit(f"Error: No such object: {args[-1]}")
    print("true" if box.read_text().strip() == "running" else "false")
elif args[:1] == ["restart"] and len(args) == 2:
    box = containers / args[1]
    if not box.exists():
        sys.exit(f"Error response from daemon: No such container: {args[1]}")
    box.write_text("running\n")
    print(args[1])
else:
    sys.exit("usage")
'''


def _write(root: Path, rel: str, text: str, mode: int | None = None) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)
    return path


def build(root: Path, config: dict[str, Any] | None = None, cgroup: str = "v2") -> Path:
    """Write the fake device under `root`; return root."""
    for cpu in range(CPUS):
        base = f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
        _write(root, f"{base}/scaling_governor", "schedutil\n")
        _write(root, f"{base}/scaling_available_governors", "performance schedutil ondemand powersave\n")
        _write(root, f"{base}/scaling_min_freq", "729600\n")
        _write(root, f"{base}/scaling_max_freq", "1510400\n")
        _write(root, f"{base}/cpuinfo_max_freq", "1510400\n")
    _write(root, "sys/devices/system/cpu/isolated", "\n")
    _write(root, "sys/devices/system/cpu/online", f"0-{CPUS - 1}\n")
    _write(root, f"{GPU}/min_freq", "306000000\n")
    _write(root, f"{GPU}/max_freq", "624750000\n")
    _write(root, f"{GPU}/available_max", "624750000\n")
    _write(root, "sys/kernel/mm/transparent_hugepage/enabled", "always [madvise] never\n")
    _write(root, "sys/devices/platform/gpu.0/power/control", "auto\n")
    (root / GPU / "device").symlink_to("../../../devices/platform/gpu.0")
    for irq in (1, 9, 24, 57, 130):
        _write(root, f"proc/irq/{irq}/smp_affinity_list", f"0-{CPUS - 1}\n")
    _write(root, "dev/zram0", "")  # stands for the block device
    _write(root, "proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n/dev/zram0\tpartition\t1922080\t0\t5\n")
    if cgroup == "v2":
        _write(root, "sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n")
        _write(root, "sys/fs/cgroup/system.slice/ollama.service/memory.max", "max\n")
        _write(root, "sys/fs/cgroup/system.slice/ollama.service/memory.high", "max\n")
    else:
        _write(root, "sys/fs/cgroup/memory/ollama/memory.limit_in_bytes", "9223372036854771712\n")
        _write(root, "sys/fs/cgroup/memory/ollama/memory.soft_limit_in_bytes", "9223372036854771712\n")
    _write(root, "var/lib/nvpmodel/status", "pmode:0002 fmode:quiet\n")
    _write(root, "etc/nvpmodel.conf", "".join(f"< POWER_MODEL ID={i} NAME={n} >\n"
                                              for i, n in ((0, "MAXN"), (1, "10W"), (2, "15W"), (3, "25W"))))
    _write(root, "run/fake-units/ollama.service", "active\n")
    _write(root, "run/fake-units/gdm3.service", "active\n")
    _write(root, "run/fake-containers/triton", "running\n")
    for rel, text in (("usr/bin/jetson_clocks", JETSON_CLOCKS), ("usr/sbin/nvpmodel", NVPMODEL),
                      ("usr/sbin/swapoff", SWAPOFF), ("usr/sbin/swapon", SWAPON),
                      ("usr/bin/systemctl", SYSTEMCTL), ("usr/bin/docker", DOCKER)):
        _write(root, rel, text, 0o755)
    config = config if config is not None else default_config()
    _write(root, "etc/thoxdash/agent.json", json.dumps(config))
    return root


def default_config(ollama_url: str = "http://127.0.0.1:9") -> dict[str, Any]:
    cg = "system.slice/ollama.service"
    return {"runtimes": [
        {"name": "ollama", "kind": "ollama", "url": ollama_url, "priority": "background",
         "cgroup": cg, "service": "ollama.service"},
        {"name": "triton", "kind": "triton", "url": "http://127.0.0.1:9", "priority": "critical",
         "container": "triton"},
    ], "services": ["gdm3.service"]}


def add_process(root: Path, pid: int, comm: str, policy: int = 0, rt_priority: int = 0,
                vmlck_kb: int = 0) -> None:
    """A /proc/PID entry (one thread) as the kernel lays it out: stat fields 40/41 are
    rt_priority and policy; status carries VmLck."""
    rest = ["S", "1"] + ["0"] * 48
    rest[19] = str(1000 + pid)  # starttime
    rest[37], rest[38] = str(rt_priority), str(policy)
    line = f"{pid} ({comm}) " + " ".join(rest) + "\n"
    _write(root, f"proc/{pid}/stat", line)
    _write(root, f"proc/{pid}/task/{pid}/stat", line)
    _write(root, f"proc/{pid}/cmdline", f"/usr/bin/{comm}\0serve\0")
    _write(root, f"proc/{pid}/statm", "100000 50000 1000 10 0 40000 0\n")
    _write(root, f"proc/{pid}/status", f"Name:\t{comm}\nVmLck:\t{vmlck_kb} kB\n")
    _write(root, f"proc/{pid}/cgroup", "0::/system.slice\n")


def read(root: Path, rel: str) -> str:
    return (root / rel).read_text().strip()
