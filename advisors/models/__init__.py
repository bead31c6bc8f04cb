"""Database models, one module per concern."""

from __future__ import annotations

from advisors.models.actions import ActionRequest
from advisors.models.alerts import Alert, Silence
from advisors.models.devices import DeviceSettings
from advisors.models.notify import Delivery, Webhook
from advisors.models.tokens import ApiToken

__all__ = ["ActionRequest", "Alert", "ApiToken", "Delivery", "DeviceSettings", "Silence", "Webhook"]
