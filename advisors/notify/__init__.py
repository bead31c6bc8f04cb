"""Notifiers: one module per webhook format; `dispatch` turns alert transitions into deliveries,
`sender` makes the HTTP attempts (signed, retried, recorded on the Delivery row)."""

from __future__ import annotations

from typing import Any

from advisors.notify.alertmanager import AlertmanagerNotifier
from advisors.notify.alertmanager_api import AlertmanagerApiNotifier
from advisors.notify.base import Notifier
from advisors.notify.generic import JsonNotifier
from advisors.notify.slack import SlackNotifier

# The one registry of formats: Webhook.FORMATS, `webhook add --format` and the Settings page derive from it.
NOTIFIERS: dict[str, Notifier] = {n.format: n for n in (
    AlertmanagerNotifier(), SlackNotifier(), JsonNotifier(), AlertmanagerApiNotifier())}


def send_test(webhook: Any) -> Any:
    """Send one synthetic notification now (no retries); returns the Delivery row."""
    from advisors.notify.sender import send_test as run

    return run(webhook)


__all__ = ["NOTIFIERS", "Notifier", "send_test"]
