"""`manage.py webhook add URL --format alertmanager|slack|json|alertmanager-api [--secret S]
[--min-severity warning]` (formats: advisors.notify.NOTIFIERS; alertmanager-api pushes to URL/api/v2/alerts),
`webhook list [--json]`, `webhook test ID`, `webhook enable ID`, `webhook remove ID`."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import URLValidator

from advisors.models import Webhook


class Command(BaseCommand):
    help = "Manage alert webhooks."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="add a webhook")
        add.add_argument("url")
        add.add_argument("--format", choices=[f for f, _ in Webhook.FORMATS], default="json",
                         help="body format; alertmanager-api pushes into an Alertmanager at URL/api/v2/alerts")
        add.add_argument("--secret", default="", help="HMAC-SHA256 key for the X-Thoxdash-Signature header")
        add.add_argument("--min-severity", choices=[s for s, _ in Webhook.SEVERITIES], default="warning")
        lst = sub.add_parser("list", help="list webhooks and their last delivery")
        lst.add_argument("--json", action="store_true")
        for name, text in (("test", "send a test notification now"), ("enable", "re-enable a disabled webhook"),
                           ("remove", "delete a webhook")):
            sub.add_parser(name, help=text).add_argument("id", type=int)

    def handle(self, *args, **opts):
        getattr(self, f"do_{opts['action']}")(opts)

    def _hook(self, pk: int) -> Webhook:
        hook = Webhook.objects.filter(pk=pk).first()
        if hook is None:
            raise CommandError(f"no webhook with id {pk}")
        return hook

    def do_add(self, opts) -> None:
        try:
            URLValidator(schemes=["http", "https"])(opts["url"])
        except ValidationError:
            raise CommandError(f"not an http(s) URL: {opts['url']}") from None
        hook = Webhook.objects.create(url=opts["url"], format=opts["format"], secret=opts["secret"],
                                      min_severity=opts["min_severity"])
        self.stdout.write(f"added webhook {hook.pk}: {hook.format} -> {hook.url} (min severity {hook.min_severity}"
                          f"{', signed' if hook.secret else ''})")

    def do_list(self, opts) -> None:
        rows: list[dict[str, Any]] = []
        for hook in Webhook.objects.order_by("id"):
            last = hook.deliveries.order_by("-created_at").first()
            backlog = hook.deliveries.filter(kind="alert", status__in=["pending", "retrying", "sending"]).order_by("pk")
            oldest = backlog.first()
            rows.append({"id": hook.pk, "url": hook.url, "format": hook.format, "min_severity": hook.min_severity,
                         "signed": bool(hook.secret), "enabled": hook.enabled, "disabled_reason": hook.disabled_reason,
                         "last_delivery": None if last is None else {
                             "status": last.status, "attempts": last.attempts, "http_status": last.http_status,
                             "error": last.error, "duration_ms": last.duration_ms},
                         # undelivered notifications, sent in order: the oldest goes first
                         "backlog": {"count": backlog.count(), "oldest": None if oldest is None else {
                             "status": oldest.status, "attempts": oldest.attempts, "error": oldest.error}}})
        if opts["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        if not rows:
            self.stdout.write("no webhooks")
        for r in rows:
            state = "enabled" if r["enabled"] else f"DISABLED ({r['disabled_reason']})"
            last = r["last_delivery"]
            tail = "" if last is None else f"; last delivery {last['status']} after {last['attempts']} attempt(s)" + (
                f": {last['error']}" if last["error"] else "")
            oldest = r["backlog"]["oldest"]
            if r["backlog"]["count"] > 1 and oldest is not None:
                tail += (f"; {r['backlog']['count']} undelivered, oldest {oldest['status']} after "
                         f"{oldest['attempts']} attempt(s)" + (f": {oldest['error']}" if oldest["error"] else ""))
            self.stdout.write(f"{r['id']}  {r['format']:<12} {r['min_severity']:<8} {r['url']}  {state}{tail}")

    def do_test(self, opts) -> None:
        from advisors.notify.sender import send_test

        delivery = send_test(self._hook(opts["id"]))
        if delivery.status != "sent":
            raise CommandError(f"test failed: {delivery.error or delivery.status}")
        self.stdout.write(f"test sent: HTTP {delivery.http_status} in {delivery.duration_ms:.0f} ms")

    def do_enable(self, opts) -> None:
        hook = self._hook(opts["id"])
        Webhook.objects.filter(pk=hook.pk).update(enabled=True, disabled_reason="", disabled_at=None)
        self.stdout.write(f"webhook {hook.pk} enabled")

    def do_remove(self, opts) -> None:
        hook = self._hook(opts["id"])
        hook.delete()
        self.stdout.write(f"webhook {opts['id']} removed")
