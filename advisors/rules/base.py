"""What a rule returns, and how alerts are identified."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Finding:
    """A rule's statement that a condition holds now, about the things named in `labels`."""

    rule: str
    severity: str
    labels: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    value: float | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule, self.labels)


def fingerprint(rule: str, labels: dict[str, Any], device: str = "") -> str:
    body = json.dumps([device, rule, sorted((str(k), str(v)) for k, v in labels.items())], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:16]
