"""`manage.py apitoken USER [--scopes read,act]`: print a new bearer token for the JSON API."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from advisors.models import ApiToken


class Command(BaseCommand):
    help = "Create an API token for a user and print it (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--scopes", default="read", help="read, or read,act")
        parser.add_argument("--name", default="cli")

    def handle(self, *args, **opts):
        scopes = {s.strip() for s in opts["scopes"].split(",") if s.strip()}
        if not scopes or scopes - {"read", "act"}:
            raise CommandError("--scopes must be a comma list of: read, act")
        user = get_user_model().objects.filter(username=opts["username"]).first()
        if user is None:
            raise CommandError(f"no user named {opts['username']!r}")
        _, token = ApiToken.issue(user, name=opts["name"], scopes=",".join(sorted(scopes)))
        self.stdout.write(token)
