from __future__ import annotations

from typing import Any

from django.db import models


class DeviceSettings(models.Model):
    """Per-device configuration: runtimes (match rules, ceilings, priorities), SLOs, policy.

    `config()` returns the same shape as a recording header's `config`, so rules see one format.
    """

    device = models.CharField(max_length=64, unique=True)
    runtimes = models.JSONField(default=list, blank=True)
    slos = models.JSONField(default=list, blank=True)
    isolated_cpus = models.CharField(max_length=200, blank=True, default="")
    thresholds = models.JSONField(default=dict, blank=True)
    # None: as the device's own config says; True/False: required or not, whatever it says
    want_locked_clocks = models.BooleanField(null=True, blank=True, default=None,
                                             help_text="locked GPU clocks required (empty: as the device says)")
    auto_mode = models.BooleanField(default=False, help_text="evict the LRU background model on ceiling breach")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.device

    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"runtimes": self.runtimes, "slos": self.slos, "thresholds": self.thresholds}
        if self.want_locked_clocks is not None:
            out["want_locked_clocks"] = self.want_locked_clocks
        if self.isolated_cpus:
            out["isolated_cpus"] = self.isolated_cpus
        return out
