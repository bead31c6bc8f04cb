"""Record NVML telemetry (recording format) while a torch workload allocates, computes and frees.

Run on a machine with an NVIDIA GPU, python with torch and nvidia-ml-py:
    python3 -m scripts.record_nvml_workload --out nvml-workload.jsonl
The workload runs in a child process so its GPU memory shows up under its own pid, and the
phase boundaries are written into the recording as `workload_phase` events.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from collectors.recording import dumps
from collectors.sources.nvml import NvmlSource, gpu_memory_by_pid

WORKLOAD = r"""
import sys, time, torch
def phase(name, **kw):
    print(json.dumps({"ts": time.time(), "phase": name, **kw}), flush=True)
import json
dev = torch.device("cuda")
phase("start")
time.sleep(2.0)
a = torch.empty(6 << 30, dtype=torch.uint8, device=dev).fill_(1)
torch.cuda.synchronize()
phase("allocated", bytes=6 << 30)
time.sleep(3.0)
x = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
bufs = [torch.empty(1 << 30, dtype=torch.uint8, device=dev).fill_(2) for _ in range(10)]
torch.cuda.synchronize()
phase("compute", bytes=torch.cuda.memory_allocated())
end = time.time() + 4.0
while time.time() < end:
    y = x @ x
    torch.cuda.synchronize()
phase("freeing", bytes=torch.cuda.memory_allocated())
del a, x, y, bufs
torch.cuda.empty_cache()
torch.cuda.synchronize()
phase("freed", bytes=torch.cuda.memory_allocated())
time.sleep(3.0)
phase("exit")
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--idle-after", type=float, default=3.0)
    args = parser.parse_args(argv)

    source = NvmlSource(root=Path("/"), interval=args.interval)
    if not source.available():
        print("no usable GPU:", source.nvml.last_error, file=sys.stderr)
        return 2
    records: list[dict[str, Any]] = []
    seen_pids: dict[int, int] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            now = time.time()
            records.extend(source.collect(now))
            for pid, used in (gpu_memory_by_pid() or {}).items():
                seen_pids[pid] = max(used, seen_pids.get(pid, 0))
            stop.wait(max(0.0, args.interval - (time.time() - now)))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    time.sleep(2.0)
    child = subprocess.Popen([sys.executable, "-c", WORKLOAD], stdout=subprocess.PIPE, text=True)
    events = []
    assert child.stdout is not None
    for line in child.stdout:
        phase = json.loads(line)
        events.append({"ts": phase.pop("ts"), "source": "event",
                       "event": {"kind": "workload_phase", "pid": child.pid, **phase}})
    child.wait()
    time.sleep(args.idle_after)
    stop.set()
    thread.join()
    source.close()

    first = records[0]
    state: dict[str, Any] = next((r["state"] for r in records if "state" in r), {})
    header = {"thoxdash_recording": 1, "device": "h100-nvml",
              "board": {"kind": "dgpu", "gpu": state.get("gpu_name"), "driver": state.get("driver_version")},
              "notes": ("Real NVML telemetry recorded by collectors.sources.nvml.NvmlSource every "
                        f"{args.interval} s on an {state.get('gpu_name')} while a PyTorch child process "
                        f"(pid {child.pid}) allocated 6 GiB, then 10 GiB more and ran bf16 matmuls, "
                        "then freed everything and exited. workload_phase events mark the phases.")}
    merged = sorted(records + events, key=lambda r: r["ts"])
    with open(args.out, "w", encoding="utf-8") as out:
        out.write(dumps(header) + "\n")
        for record in merged:
            out.write(dumps(record) + "\n")
    peak = max((r["values"].get("gpu_memory_used_bytes", 0) for r in records if "values" in r), default=0)
    print(json.dumps({"records": len(merged), "first_ts": first["ts"], "child_pid": child.pid,
                      "child_rc": child.returncode, "peak_used_bytes": peak,
                      "pids_seen_by_gpu_memory_by_pid": seen_pids, "state": state}))
    return 0 if child.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
