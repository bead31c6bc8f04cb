"""`manage.py enroll_device ID`: add a device to the server-owned registry and hand out its own
credentials: its action key (derived from the master key; the device holds only this one) and,
with --redis-password-file, the ACL line of its own Redis user."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from advisors.telemetry import store
from collectors import registry
from collectors.actions.signing import derive_key
from collectors.keys import DEVICE_ID


def write_secret(path: Path, text: str) -> None:
    """Write a secret readable by its owner only (0600), replacing any previous one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")


class Command(BaseCommand):
    help = "Enroll a device (server-owned registry) and issue its action key and Redis ACL line."

    def add_arguments(self, parser):
        parser.add_argument("device")
        parser.add_argument("--notes", default="")
        parser.add_argument("--key-file", default=None,
                            help="write the device's action key here (0600) instead of printing it")
        parser.add_argument("--redis-password-file", default=None,
                            help="create (if missing) the device's Redis password in this file (0600) and "
                                 "print the ACL line of its user agent-ID")
        parser.add_argument("--remove", action="store_true", help="remove the device from the registry")

    def handle(self, *args, **opts):
        device = opts["device"]
        if not DEVICE_ID.match(device):
            raise CommandError(f"invalid device id {device!r}: use 1-64 letters, digits, '.', '_' or '-'")
        s = store()
        if opts["remove"]:
            removed = registry.remove(s.r, s.prefix, device)
            self.stdout.write(f"{device}: {'removed' if removed else 'was not enrolled'}")
            return
        registry.enroll(s.r, s.prefix, device, notes=opts["notes"], by="manage.py", now=time.time())
        say = self.stderr.write if opts["verbosity"] > 0 else (lambda _text: None)
        say(f"{device}: enrolled")
        if settings.AGENT_KEY:
            key = derive_key(settings.AGENT_KEY, device)
            if opts["key_file"]:
                write_secret(Path(opts["key_file"]), key)
                say(f"{device}: action key written to {opts['key_file']}")
            else:
                self.stdout.write(f"THOXDASH_AGENT_KEY={key}")
        else:
            self.stderr.write("no THOXDASH_AGENT_MASTER_KEY on this server: no action key issued")
        if opts["redis_password_file"]:
            path = Path(opts["redis_password_file"])
            try:
                password = path.read_text().strip()
            except OSError:
                password = ""
            if not password:
                password = secrets.token_urlsafe(32)
                write_secret(path, password)
            self.stdout.write(registry.acl_line(device, password, s.prefix))
