"""Alert lifecycle and offline evaluation, in plain Python.

`Lifecycle` turns successive rule findings into alerts with start and end times (firing ->
resolved), keyed by fingerprint (rule + labels). `evaluate_recording` steps through a recording in
virtual time and returns what would have fired -- the `manage.py evaluate` contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from advisors.config import merged
from advisors.rules import Finding, Window, run_rules
from collectors.recording import Recording


@dataclass
class AlertState:
    rule: str
    severity: str
    labels: dict[str, str]
    starts_at: float
    summary: str
    ends_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "severity": self.severity, "labels": self.labels,
                "starts_at": self.starts_at, "ends_at": self.ends_at, "summary": self.summary}


@dataclass
class Transitions:
    fired: list[AlertState] = field(default_factory=list)
    resolved: list[AlertState] = field(default_factory=list)
    updated: list[AlertState] = field(default_factory=list)


@dataclass
class Lifecycle:
    active: dict[str, AlertState] = field(default_factory=dict)
    history: list[AlertState] = field(default_factory=list)

    def step(self, now: float, findings: list[Finding]) -> Transitions:
        seen: dict[str, Finding] = {}
        for finding in findings:
            seen.setdefault(finding.fingerprint, finding)
        out = Transitions()
        for fp, finding in seen.items():
            alert = self.active.get(fp)
            if alert is None:
                alert = AlertState(finding.rule, finding.severity, dict(finding.labels), now, finding.summary)
                self.active[fp] = alert
                self.history.append(alert)
                out.fired.append(alert)
            elif finding.summary != alert.summary or finding.severity != alert.severity:
                alert.summary, alert.severity = finding.summary, finding.severity
                out.updated.append(alert)
        for fp in [fp for fp in self.active if fp not in seen]:
            alert = self.active.pop(fp)
            alert.ends_at = now
            out.resolved.append(alert)
        return out


def evaluate_recording(recording: Recording, config: dict[str, Any] | None = None,
                       step_s: float = 1.0) -> list[dict[str, Any]]:
    """Run every rule over a recording in virtual time; alerts in the recording's clock."""
    cfg = merged(config if config is not None else recording.config)
    window_s = float(cfg["thresholds"]["window_s"])
    lifecycle = Lifecycle()
    window = Window(now=0.0)
    records = recording.records
    next_eval = None
    i = 0
    while i < len(records):
        ts = records[i]["ts"]
        # take every record stamped at this instant before evaluating
        while i < len(records) and records[i]["ts"] == ts:
            window.add(records[i])
            i += 1
        if next_eval is not None and ts < next_eval and i < len(records):
            continue
        next_eval = ts + step_s
        window.now = ts
        window.trim(ts - window_s)
        lifecycle.step(ts, run_rules(window, cfg, set(lifecycle.active)))
    return [alert.as_dict() for alert in lifecycle.history]
