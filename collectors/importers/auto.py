"""Recognise the Jetson logs people already have and turn them into recordings in memory, so
`manage.py evaluate` and `replay` can read them: a tegrastats log (`tegrastats --logfile`, one line
per interval, optionally `<epoch>|`-prefixed), the Jetson Power GUI CSV (`System-Time,...`), and a
plain power CSV (`epoch_s,<rail>_mw,...`). Anything else: None (the caller reports the JSON error).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from collectors.recording import Recording
from collectors.series import series_key

POWER_CSV_HEAD = "epoch_s"


def sniff(path: Path) -> str | None:
    """"tegrastats", "power_gui_csv", "power_csv" or None, from the first non-empty line."""
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            first = next((line for line in fh if line.strip()), "")
    except OSError:
        return None
    if first.lstrip().startswith("{"):
        return None
    if first.startswith("System-Time,"):
        return "power_gui_csv"
    if first.split(",", 1)[0].strip() == POWER_CSV_HEAD and "_mw" in first:
        return "power_csv"
    from collectors.sources.tegrastats import parse_line

    return "tegrastats" if parse_line(first) is not None else None


def load_any(path: str | Path, interval_s: float = 1.0) -> tuple[Recording, str] | None:
    """(recording, format) for a log in one of the formats above; None otherwise."""
    path = Path(path)
    kind = sniff(path)
    if kind is None:
        return None
    start = os.path.getmtime(path)
    records: list[dict[str, Any]] = []
    if kind == "power_gui_csv":
        from collectors.importers.power_gui_csv import read

        records = list(read(path, start_ts=start))
    elif kind == "power_csv":
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                try:
                    ts = float(row[POWER_CSV_HEAD])
                except (KeyError, TypeError, ValueError):
                    continue
                values = {}
                for col, text in row.items():
                    if col and col.endswith("_mw") and col != "total_mw":
                        try:
                            values[series_key("power_watts", rail=col[:-3].upper())] = float(text) / 1000.0
                        except (TypeError, ValueError):
                            continue
                if values:
                    records.append({"ts": ts, "source": "power", "values": values})
    else:
        from collectors.sources.tegrastats import parse_line

        with path.open(encoding="utf-8", errors="replace") as fh:
            for i, line in enumerate(fh):
                sample = parse_line(line)
                if sample is not None:
                    ts = sample.ts if sample.ts is not None else start + i * interval_s
                    records.append({"ts": ts, "source": "tegrastats", "values": sample.values})
    records.sort(key=lambda r: r["ts"])
    header = {"thoxdash_recording": 1, "device": path.stem[:64], "board": {},
              "notes": f"imported from {path.name} ({kind})"}
    return Recording(header=header, records=records), kind
