"""`manage.py doctor [--device ID] [--root DIR] [--json]`: the tuning checklist with a status each.

With --root it reads a tree on disk directly (this machine with --root /, or a fake tree): no
agent, no Redis. With --device (and no --root) it reads the tuning state that device's agent
published. Neither: this machine (--root /). Reading only; doctor never changes anything.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from advisors.recommend.checks import run_checks
from collectors.store import DEVICE_ID

MARK = {"ok": "OK  ", "warn": "WARN", "fail": "FAIL", "unknown": "??  "}


def read_tree(root: Path) -> dict[str, Any]:
    from collectors.sources.tuning import TuningSource

    records = TuningSource(root=root).collect(time.time())
    return records[0]["state"] if records else {}


def short(value: Any, width: int = 44) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= width else text[: width - 1] + "…"


class Command(BaseCommand):
    help = "Print the real-time tuning checklist (PREEMPT_RT, governor, clocks, THP, swap, ...) with a status."

    def add_arguments(self, parser):
        parser.add_argument("--device", help="read the tuning state this device's agent published")
        parser.add_argument("--root", help="read a tree on disk directly (e.g. / or a fake tree)")
        parser.add_argument("--json", action="store_true", help="print a JSON list of checks")

    def handle(self, *args, **opts):
        device, root = opts.get("device"), opts.get("root")
        if device and not DEVICE_ID.match(device):
            raise CommandError(f"invalid device id {device!r}")
        config: dict[str, Any] = {}
        values: dict[str, float] = {}
        if device:
            from advisors.alerting import device_config

            config = device_config(device)
        if root or not device:
            path = Path(root or "/")
            if not path.is_dir():
                raise CommandError(f"--root {path}: not a directory")
            state, source = read_tree(path), f"tree {path}"
        else:
            from advisors.telemetry import store

            latest = store().latest(device)
            state, values, source = latest["state"], latest["values"], f"device {device} (latest tuning state)"
            if not state:
                source += ": no tuning state published yet"
        checks = run_checks(state, config, values)
        if opts["json"]:
            self.stdout.write(json.dumps(checks, indent=2, ensure_ascii=False, default=str))
            return
        self.stdout.write(f"ThoxDash doctor: {source}")
        for c in checks:
            self.stdout.write(f"  [{MARK[c['status']]}] {c['check']:<15} {short(c['value']):<46} "
                              f"want {short(c['recommended'], 30)}")
            self.stdout.write(f"         {c['evidence']}")
        counts = {s: sum(c["status"] == s for c in checks) for s in MARK}
        self.stdout.write("  " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
