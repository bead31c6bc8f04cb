"""What checking each record's shape costs at ingest (collectors/entries.py), beside its peer: the
JSON encoding every record gets anyway. Both in this process, CPU time of this thread, median of
--rounds over a typical agent record (host source: ~60 series) and a typical request record.

    .venv/bin/python -m bench.ingest_check [--rounds 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collectors.entries import decode, encode, problem  # noqa: E402
from collectors.recording import dumps  # noqa: E402

VALUES = {"ts": 1_800_000_000.123, "source": "host", "values": {
    **{f'cpu_load_ratio{{cpu="{i}"}}': 0.1 * (i % 10) for i in range(12)},
    **{f'cpu_freq_hz{{cpu="{i}"}}': 1.2e9 + i for i in range(12)},
    **{f'temperature_celsius{{zone="z{i}"}}': 40.0 + i for i in range(8)},
    **{f"ram_{k}_bytes": 1.0e9 * (i + 1) for i, k in enumerate(("used", "free", "available", "cached"))},
    **{f'power_watts{{rail="r{i}"}}': 1.5 * i for i in range(6)},
    **{f'disk_{k}{{dev="nvme0n1"}}': 1.0e6 for k in ("read_bytes_total", "written_bytes_total")},
    **{f"gpu_{k}": 0.5 for k in ("load_ratio", "freq_hz", "freq_max_hz", "shared_memory_bytes")}}}
REQUEST = {"ts": 1_800_000_000.5, "source": "request", "request": {
    "runtime": "ollama", "model": "llama3.2:3b", "path": "/api/generate", "status": 200, "queue_s": 0.001,
    "ttft_s": 0.08, "total_s": 1.2, "prompt_tokens": 42, "output_tokens": 128, "stream": True}}


def cpu_us(fn, record, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        t0 = time.thread_time_ns()
        for _ in range(10):
            fn(record)
        samples.append((time.thread_time_ns() - t0) / 10 / 1000)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2000)
    args = ap.parse_args(argv)
    print("| record | ingest: dumps (peer) | shape check | encode (check + dumps) | read: json.loads (peer) | "
          "decode (loads + check) |")
    print("|---|---|---|---|---|---|")
    for name, record in ((f"values, {len(VALUES['values'])} series", VALUES), ("request", REQUEST)):
        text = dumps(record)
        fields = {"j": text}
        print(f"| {name} | {cpu_us(dumps, record, args.rounds):.1f} µs | {cpu_us(problem, record, args.rounds):.1f} µs "
              f"| {cpu_us(encode, record, args.rounds):.1f} µs | {cpu_us(json.loads, text, args.rounds):.1f} µs "
              f"| {cpu_us(decode, fields, args.rounds):.1f} µs |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
