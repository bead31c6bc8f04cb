"""The alert lifecycle as one pure function, and offline evaluation over a recording.

`transitions(firing, findings, now)` decides what fires, resolves, escalates or merely changes in
one cycle. It is plain Python (no Django): the live path (`advisors.alerting`, Celery) applies its
plan to the database, `evaluate_recording` (the `manage.py evaluate` contract) to in-memory
`AlertState`s, so live and offline cannot disagree on the lifecycle.

Rules behind it:
- one alert per fingerprint (rule + labels + device);
- a rule's `for` (config `for_s`, Prometheus-style): a finding must hold that long, cycle after
  cycle, before it fires; a one-cycle blip only leaves a pending entry that the next quiet cycle
  drops;
- a raised severity (warning -> critical) is an escalation (news for critical-only receivers), any
  other change of summary/severity an update;
- while `device_down` holds for the device, its other firing alerts are frozen (neither resolved
  nor updated: nothing is known about them) and nothing new fires; they are shown as stale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from advisors.config import resolve
from advisors.rules import Finding, Window, run_rules
from advisors.rules.base import SEVERITY_RANK, fingerprint
from collectors.recording import Recording

DEVICE_DOWN = "device_down"


class AlertLike(Protocol):
    rule: str
    severity: str
    summary: str


@dataclass
class Plan:
    """What one cycle changes; fingerprints name the alerts."""

    fire: list[tuple[str, Finding]] = field(default_factory=list)
    resolve: list[str] = field(default_factory=list)
    escalate: list[tuple[str, Finding]] = field(default_factory=list)
    update: list[tuple[str, Finding]] = field(default_factory=list)
    pending: dict[str, float] = field(default_factory=dict)  # fingerprint -> first seen (for `for`)

    def __bool__(self) -> bool:
        return bool(self.fire or self.resolve or self.escalate or self.update)


def transitions(firing: Mapping[str, AlertLike], findings: list[Finding], now: float, *,
                device: str = "", pending: Mapping[str, float] | None = None,
                for_s: Mapping[str, float] | None = None) -> Plan:
    """One cycle of the lifecycle. `firing`: fingerprint -> the alerts firing now; `pending`: what
    the previous cycle returned in `Plan.pending`; `for_s`: rule -> seconds it must hold first."""
    pending = pending or {}
    for_s = for_s or {}
    seen: dict[str, Finding] = {}
    for finding in findings:
        seen.setdefault(fingerprint(finding.rule, finding.labels, device), finding)
    frozen: set[str] = set()
    if any(f.rule == DEVICE_DOWN for f in seen.values()):
        seen = {fp: f for fp, f in seen.items() if f.rule == DEVICE_DOWN}
        frozen = {fp for fp, alert in firing.items() if alert.rule != DEVICE_DOWN}
    plan = Plan()
    for fp, finding in seen.items():
        alert = firing.get(fp)
        if alert is None:
            since = float(pending.get(fp, now))
            if now - since >= float(for_s.get(finding.rule) or 0.0):
                plan.fire.append((fp, finding))
            else:
                plan.pending[fp] = since
        elif finding.summary != alert.summary or finding.severity != alert.severity:
            raised = SEVERITY_RANK.get(finding.severity, 0) > SEVERITY_RANK.get(alert.severity, 0)
            (plan.escalate if raised else plan.update).append((fp, finding))
    plan.resolve = [fp for fp in firing if fp not in seen and fp not in frozen]
    return plan


def stale_fingerprints(firing: Mapping[str, AlertLike]) -> set[str]:
    """The alerts shown as stale: every other alert of a device whose `device_down` fires."""
    if not any(a.rule == DEVICE_DOWN for a in firing.values()):
        return set()
    return {fp for fp, a in firing.items() if a.rule != DEVICE_DOWN}


# -- offline: a recording in virtual time ----------------------------------------------------------

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
class Lifecycle:
    """In-memory alerts driven by `transitions` (what `evaluate` and unit tests use)."""

    active: dict[str, AlertState] = field(default_factory=dict)
    history: list[AlertState] = field(default_factory=list)
    pending: dict[str, float] = field(default_factory=dict)

    def step(self, now: float, findings: list[Finding], for_s: Mapping[str, float] | None = None) -> Plan:
        plan = transitions(self.active, findings, now, pending=self.pending, for_s=for_s)
        self.pending = plan.pending
        for fp, finding in plan.fire:
            alert = AlertState(finding.rule, finding.severity, dict(finding.labels), now, finding.summary)
            self.active[fp] = alert
            self.history.append(alert)
        for fp, finding in [*plan.escalate, *plan.update]:
            self.active[fp].summary, self.active[fp].severity = finding.summary, finding.severity
        for fp in plan.resolve:
            self.active.pop(fp).ends_at = now
        return plan


def evaluate_recording(recording: Recording, config: dict[str, Any] | None = None,
                       step_s: float = 1.0) -> list[dict[str, Any]]:
    """Run every rule over a recording in virtual time; alerts in the recording's clock.

    The config is resolved as live: the recording's own (header `config`, as the agent or replay
    publishes it) overridden field by field by `config` (what `--config` or Settings give). Time
    advances by `step_s` even through gaps in the recording, so a device that falls silent raises
    `device_down` at the same moment it would live."""
    cfg = resolve(recording.config, config, board=recording.header.get("board"))
    window_s = float(cfg["thresholds"]["window_s"])
    for_s = cfg["for_s"]
    lifecycle = Lifecycle()
    window = Window(now=0.0)
    records = recording.records
    i = 0

    def cycle(now: float) -> None:
        window.now = now
        window.trim(now - window_s)
        active = {fingerprint(a.rule, a.labels) for a in lifecycle.active.values()}
        lifecycle.step(now, run_rules(window, cfg, active), for_s)

    next_eval: float | None = None
    while i < len(records):
        ts = records[i]["ts"]
        # the cycles the live path runs while nothing arrives (a silent device included)
        while next_eval is not None and next_eval < ts:
            cycle(next_eval)
            next_eval += step_s
        # take every record stamped at this instant before evaluating
        while i < len(records) and records[i]["ts"] == ts:
            window.add(records[i])
            i += 1
        if next_eval is None or ts >= next_eval or i >= len(records):
            cycle(ts)
            next_eval = ts + step_s
    return [alert.as_dict() for alert in lifecycle.history]
