"""What a rule returns, and how alerts are identified."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

SEVERITIES = ("info", "warning", "critical")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


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

GIB = 1024**3
MIB = 1024**2


def fmt_bytes(value: float) -> str:
    """The one unit convention of alert texts: binary units, GiB from 1 GiB up, else MiB."""
    if abs(value) >= GIB:
        return f"{value / GIB:.2f} GiB"
    return f"{value / MIB:.0f} MiB"


RuleFn = TypeVar("RuleFn", bound=Callable[..., Any])


def emits(*names: str) -> Callable[[RuleFn], RuleFn]:
    """Declare the alert names a rule function can return (RULE_NAMES is derived from these)."""

    def mark(fn: RuleFn) -> RuleFn:
        fn.names = names  # type: ignore[attr-defined]
        return fn

    return mark
