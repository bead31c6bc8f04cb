"""`manage.py ensure_admin`: create the admin user once (password from THOXDASH_ADMIN_PASSWORD,
or generated and printed once, kept in .run/admin_password with mode 0600)."""

from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the 'admin' superuser if it does not exist."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("THOXDASH_ADMIN_USER", "admin"))

    def handle(self, *args, **opts):
        User = get_user_model()
        username = opts["username"]
        password = os.environ.get("THOXDASH_ADMIN_PASSWORD", "")
        user = User.objects.filter(username=username).first()
        if user is not None:
            if password and not user.check_password(password):
                user.set_password(password)
                user.save(update_fields=["password"])
                self.stdout.write(f"admin user '{username}': password updated from THOXDASH_ADMIN_PASSWORD")
            return
        generated = not password
        password = password or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        if generated:
            path = settings.RUN_DIR / "admin_password"
            settings.RUN_DIR.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(password + "\n")
            self.stdout.write(f"created admin user '{username}' with password: {password}  (also in {path})")
        else:
            self.stdout.write(f"created admin user '{username}' (password from THOXDASH_ADMIN_PASSWORD)")
