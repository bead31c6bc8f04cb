"""`manage.py evaluate FILE.jsonl [--config FILE] --json`: what the rules would fire on a recording."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from advisors.engine import evaluate_recording
from collectors.recording import RecordingError, load


class Command(BaseCommand):
    help = "Run every detection rule over a recording in virtual time and print the alerts."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--config", help="JSON file with a device config (overrides the recording's)")
        parser.add_argument("--json", action="store_true", help="print a JSON list")
        parser.add_argument("--step", type=float, default=1.0, help="evaluation step in seconds")

    def handle(self, *args, **opts):
        try:
            recording = load(opts["file"])
        except RecordingError as exc:
            raise CommandError(str(exc)) from None
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
            end = "still firing" if alert["ends_at"] is None else f"until {alert['ends_at']}"
            self.stdout.write(f"[{alert['severity']}] {alert['rule']} {alert['labels']} "
                              f"from {alert['starts_at']} {end}: {alert['summary']}")
