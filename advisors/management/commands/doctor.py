"""`manage.py doctor [--device ID] [--root DIR] [--json]`: the tuning checklist with a status each.

With --root it reads a tree on disk directly (this machine with --root /, or a fake tree): no
agent, no Redis. With --device (and no --root) it reads the tuning state that device's agent
published. Neither: this machine (--root /). Reading only; doctor never changes anything.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from advisors.recommend.checks import run_checks
from collectors.store import DEVICE_ID

MARK = {"ok": "OK  ", "warn": "WARN", "fail": "FAIL", "unknown": "----"}


def read_tree(root: Path) -> dict[str, Any]:
    from collectors.sources.tuning import TuningSource

    records = TuningSource(root=root).collect(time.time())
    return records[0]["state"] if records else {}


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
            from advisors.telemetry import store

            known = store().devices()
            latest = store().latest(device)
            if device not in known and not latest["state"] and not latest["values"]:
                names = ", ".join(sorted(known)[:10]) or "none yet"
                raise CommandError(f"unknown device {device}: no agent has published under this id "
                                   f"(devices reporting here: {names})")
            config = device_config(device)
            values = latest["values"]
            cpus = sorted({k.split('cpu="', 1)[1].split('"', 1)[0] for k in values
                           if k.startswith("cpu_load_ratio{") and 'cpu="' in k})
            if cpus:
                config = {**config, "online_cpus": ",".join(c for c in cpus if c.isdigit())}
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
        failing = any(c["status"] == "fail" for c in checks)
        if opts["json"]:
            self.stdout.write(json.dumps(checks, indent=2, ensure_ascii=False, default=str))
        else:
            self.stdout.write(render(checks, source))
        if failing:  # scripts and CI can act on the exit code; the output says which check failed
            sys.exit(1)


def render(checks: list[dict[str, Any]], source: str) -> str:
    """The checklist in words: one line per check (title, value, what it should be), the evidence under it."""
    from advisors.recommend.words import check_title, describe, describe_recommended

    lines = [f"ThoxDash doctor: {source}"]
    for c in checks:
        value = describe(c["check"], c.get("value"))
        want = describe_recommended(c["check"], c.get("recommended"))
        lines.append(f"  [{MARK[c['status']]}] {check_title(c['check'])} ({c['check']}): {value}"
                     + ("" if c["status"] == "ok" else f"; want {want}"))
        lines.append(f"         read from {c['evidence']}")
    counts = {s: sum(c["status"] == s for c in checks) for s in MARK}
    lines.append("  " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    if counts["fail"]:
        lines.append("  exit status 1: at least one check fails")
    return "\n".join(lines)
