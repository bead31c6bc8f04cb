"""Notifiers: one module per webhook format, registered in NOTIFIERS.

Layers, each importing only those before it (no cycle, no imports inside functions):
base (alert view, signing) -> the formats -> NOTIFIERS (here) -> links -> sender (one HTTP attempt on
a Delivery row, `send_test`) -> tasks (the delivery pool and Celery task, retries, `enqueue`) ->
dispatch (alert transitions -> Delivery rows -> first attempts; the sweep).
"""

from __future__ import annotations

from advisors.notify.alertmanager import AlertmanagerNotifier
from advisors.notify.alertmanager_api import AlertmanagerApiNotifier
from advisors.notify.base import Notifier
from advisors.notify.generic import JsonNotifier
from advisors.notify.slack import SlackNotifier

# The one registry of formats: Webhook.FORMATS, `webhook add --format` and the Settings page derive from it.
NOTIFIERS: dict[str, Notifier] = {n.format: n for n in (
    AlertmanagerNotifier(), SlackNotifier(), JsonNotifier(), AlertmanagerApiNotifier())}

__all__ = ["NOTIFIERS", "Notifier"]
