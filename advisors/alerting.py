"""Live evaluation: read a device's window from Redis, run the rules, persist the lifecycle.

The database holds the state (firing rows); a re-run of the same cycle changes nothing, so the
Celery task around this is idempotent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from django.db import IntegrityError, connection, transaction

from advisors.config import merged
from advisors.livewindow import WINDOWS
from advisors.models import Alert, DeviceSettings
from advisors.models.notify import SEVERITY_RANK
from advisors.rules import Finding, Window, run_rules
from advisors.rules.base import fingerprint
from collectors.store import TelemetryStore

log = logging.getLogger(__name__)


def device_config(device: str) -> dict[str, Any]:
    row = DeviceSettings.objects.filter(device=device).first()
    return merged(row.config() if row else None)


def load_window(store: TelemetryStore, device: str, now: float, window_s: float) -> Window:
    """The whole window read afresh (the live path uses the incremental `livewindow` cache)."""
    since = now - window_s
    records: list[dict[str, Any]] = []
    for stream in ("telemetry", "requests", "events"):
        records.extend(store.read(device, stream, since=since))
    records.sort(key=lambda r: r["ts"])
    window = Window.from_records(now, records)
    state = store.latest(device)["state"]
    window.state = {**state, **window.state}
    return window


def load_memo(store: TelemetryStore, device: str) -> dict[str, Any]:
    return store.memos.get(device)


def save_memo(store: TelemetryStore, device: str, memo: dict[str, Any]) -> None:
    store.memos.put(device, memo)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def evaluate_device(
    store: TelemetryStore, device: str, now: float | None = None
) -> dict[str, list[Alert]]:
    """One evaluation cycle for one device; returns the alerts that fired, resolved and escalated."""
    now = time.time() if now is None else now
    config = device_config(device)
    firing = {a.fingerprint: a for a in Alert.objects.filter(device=device, state=Alert.FIRING)}
    memo = load_memo(store, device)
    findings = run_device(store, device, now, config, firing, memo)
    save_memo(store, device, memo)
    result, changed = apply_findings(device, findings, firing, now)
    for alert in changed:
        Alert.objects.filter(pk=alert.pk).update(summary=alert.summary, severity=alert.severity)
    return result


def run_device(
    store: TelemetryStore,
    device: str,
    now: float,
    config: dict[str, Any],
    firing: dict[str, Alert],
    memo: dict[str, Any],
) -> list[Finding]:
    """Every rule over the device's live window (no database); `memo` is updated in place."""
    active_rule_fps = {fingerprint(a.rule, a.labels) for a in firing.values()}
    with WINDOWS.lease(store, device, now, float(config["thresholds"]["window_s"])) as window:
        window.memo = memo
        findings = run_rules(window, config, active_rule_fps)
        memo.clear()
        memo.update(window.memo)
    return findings


def apply_findings(
    device: str, findings: list[Finding], firing: dict[str, Alert], now: float
) -> tuple[dict[str, list[Alert]], list[Alert]]:
    """Persist one device's lifecycle: create what fired, resolve what stopped, write escalations.

    Returns the transitions and the alerts whose summary (or severity, downwards) changed without
    being news; the caller writes those (one UPDATE each, or one bulk UPDATE for a batch)."""
    fired: list[Alert] = []
    resolved: list[Alert] = []
    escalated: list[Alert] = []
    changed: list[Alert] = []
    seen = set()
    for finding in findings:
        fp = fingerprint(finding.rule, finding.labels, device)
        if fp in seen:
            continue
        seen.add(fp)
        alert = firing.get(fp)
        if alert is None:
            try:
                with transaction.atomic():
                    alert = Alert.objects.create(
                        device=device,
                        rule=finding.rule,
                        severity=finding.severity,
                        labels=finding.labels,
                        fingerprint=fp,
                        summary=finding.summary,
                        starts_at=_dt(now),
                    )
            except IntegrityError:  # another worker fired it first: nothing to do
                continue
            fired.append(alert)
        elif alert.summary != finding.summary or alert.severity != finding.severity:
            raised = SEVERITY_RANK.get(finding.severity, 0) > SEVERITY_RANK.get(alert.severity, 0)
            alert.summary, alert.severity = finding.summary, finding.severity
            if raised:  # warning -> critical is news for critical-only receivers
                Alert.objects.filter(pk=alert.pk).update(
                    summary=finding.summary, severity=finding.severity
                )
                escalated.append(alert)
            else:
                changed.append(alert)
    for fp, alert in firing.items():
        if fp not in seen and Alert.objects.filter(pk=alert.pk, state=Alert.FIRING).update(
            state=Alert.RESOLVED, ends_at=_dt(now)
        ):
            alert.state, alert.ends_at = Alert.RESOLVED, _dt(now)
            resolved.append(alert)
    return {"fired": fired, "resolved": resolved, "escalated": escalated}, changed


# -- batches: many devices per task, the per-device database and Redis work done once ------------

Transitions = Callable[[dict[str, list[Alert]]], Any]


def batch_configs(
    devices: list[str],
) -> tuple[dict[str, dict[str, Any]], dict[str, DeviceSettings]]:
    """Merged rule config of every device (one query) and the settings rows that exist."""
    rows = {row.device: row for row in DeviceSettings.objects.filter(device__in=devices)}
    configs = {d: merged(rows[d].config() if d in rows else None) for d in devices}
    return configs, rows


def batch_firing(devices: list[str]) -> dict[str, dict[str, Alert]]:
    """device -> {fingerprint: firing alert}, one query for the whole batch."""
    out: dict[str, dict[str, Alert]] = {d: {} for d in devices}
    for alert in Alert.objects.filter(device__in=devices, state=Alert.FIRING).order_by():
        out.setdefault(alert.device, {})[alert.fingerprint] = alert
    return out


def load_memos(store: TelemetryStore, devices: list[str]) -> dict[str, dict[str, Any]]:
    return store.memos.get_many(devices)


def save_memos(store: TelemetryStore, memos: dict[str, dict[str, Any]]) -> None:
    store.memos.put_many(memos)


@dataclass
class BatchResult:
    """What one batch did: per-device transitions, devices that failed, the settings rows read."""

    results: dict[str, dict[str, list[Alert]]] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    rows: dict[str, DeviceSettings] = field(default_factory=dict)


def evaluate_batch(
    store: TelemetryStore,
    devices: list[str],
    now: float | None = None,
    on_transitions: Transitions | None = None,
) -> BatchResult:
    """One evaluation cycle for many devices, with the fixed costs paid once per batch: one query
    each for configs and firing alerts, one MGET and one pipeline for the rule memos, one UPDATE
    for summaries that merely changed. Each device's transitions (and `on_transitions`, e.g.
    planning its webhook deliveries) commit in one transaction, so a worker killed mid-batch
    leaves either both or neither; the re-run then changes nothing that was done (idempotent). A
    device that raises is logged and skipped; the others still run."""
    now = time.time() if now is None else now
    devices = list(dict.fromkeys(devices))
    out = BatchResult()
    configs, out.rows = batch_configs(devices)
    firing = batch_firing(devices)
    memos = load_memos(store, devices)
    findings: dict[str, list[Finding]] = {}
    for device in devices:
        try:
            findings[device] = run_device(
                store, device, now, configs[device], firing[device], memos[device]
            )
        except Exception:
            log.exception("evaluating %s", device)
            out.failed.append(device)
    save_memos(store, {d: memos[d] for d in findings})
    changed: list[Alert] = []
    for device, found in findings.items():
        try:
            with transaction.atomic():
                result, quiet = apply_findings(device, found, firing[device], now)
                if on_transitions is not None and any(result.values()):
                    on_transitions(result)
        except Exception:
            log.exception("persisting alerts of %s", device)
            out.failed.append(device)
            continue
        out.results[device] = result
        changed.extend(quiet)
    if changed:
        try:
            write_summaries(changed)
        except Exception:  # summaries catch up next cycle
            log.exception("updating %d alert summaries", len(changed))
    return out


def write_summaries(alerts: list[Alert]) -> None:
    """Summary/severity of many alerts in one transaction, one prepared UPDATE (executemany)."""
    table = connection.ops.quote_name(Alert._meta.db_table)
    rows = [(a.summary, a.severity, a.pk) for a in alerts]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {table} SET summary = %s, severity = %s WHERE id = %s", rows)
