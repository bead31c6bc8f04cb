"""`manage.py evaluate FILE.jsonl [--config FILE] --json`: what the rules would fire on a recording."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from advisors.engine import evaluate_recording
from collectors.recording import RecordingError, load


class Command(BaseCommand):
    help = "Run every detection rule over a recording in virtual time and print the alerts."

    def add_arguments(self, parser):
        parser.add_argument("file", help="a recording (JSONL), a tegrastats log or a Jetson power CSV")
        parser.add_argument("--config", help="JSON file with a device config (overrides the recording's)")
        parser.add_argument("--json", action="store_true", help="print a JSON list")
        parser.add_argument("--step", type=float, default=1.0, help="evaluation step in seconds")

    def handle(self, *args, **opts):
        try:
            recording = load(opts["file"])
        except RecordingError as exc:
            from collectors.importers.auto import load_any

            imported = load_any(opts["file"])
            if imported is None:
                raise CommandError(f"{exc} (a recording is JSONL written by `python -m collectors record`; "
                                   "tegrastats logs and Jetson power CSVs are imported as they are)") from None
            recording, kind = imported
            if not opts["json"]:
                self.stdout.write(f"imported {len(recording.records)} samples from {opts['file']} ({kind})")
        config = None
        if opts.get("config"):
            try:
                with open(opts["config"], encoding="utf-8") as fh:
                    config = json.load(fh)
            except (OSError, ValueError) as exc:
                raise CommandError(f"--config {opts['config']}: {exc}") from None
            if not isinstance(config, dict):
                raise CommandError(f"--config {opts['config']}: expected a JSON object")
        alerts = evaluate_recording(recording, config, step_s=opts["step"])
        if opts["json"]:
            self.stdout.write(json.dumps(alerts, indent=2, ensure_ascii=False))
            return
        if not alerts:
            self.stdout.write("no alerts")
        for alert in alerts:
            self.stdout.write(alert_line(alert))


def local_time(ts: object) -> str:
    """An epoch (or ISO) time as local wall-clock time with its zone, e.g. 2026-11-29 12:06:10 PST."""
    from datetime import datetime

    try:
        if isinstance(ts, str):
            when = datetime.fromisoformat(ts).astimezone()
        elif isinstance(ts, (int, float)):
            when = datetime.fromtimestamp(float(ts)).astimezone()
        else:
            return str(ts)
    except (TypeError, ValueError, OverflowError, OSError):
        return str(ts)
    return when.strftime("%Y-%m-%d %H:%M:%S %Z")


def alert_line(alert: dict) -> str:
    """One alert in words: severity, rule, what it concerns, when, and its summary."""
    labels = alert.get("labels") or {}
    about = ", ".join(f"{k} {v}" for k, v in sorted(labels.items()))
    start = local_time(alert.get("starts_at"))
    if alert.get("ends_at") is None:
        when = f"from {start}, still firing at the end"
    else:
        when = f"from {start} until {local_time(alert['ends_at']).rsplit(' ', 1)[0][11:]}"
    return (f"{str(alert.get('severity', '')).upper():<8} {alert.get('rule')}"
            + (f" ({about})" if about else "") + f" {when}: {alert.get('summary', '')}")
