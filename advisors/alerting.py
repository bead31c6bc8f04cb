"""Live evaluation: read a device's window from Redis, run the rules, persist the lifecycle.

The database holds the state (firing rows); a re-run of the same cycle changes nothing, so the
Celery task around this is idempotent.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from typing import Any

from django.db import IntegrityError, transaction

from advisors.config import merged
from advisors.livewindow import WINDOWS
from advisors.models import Alert, DeviceSettings
from advisors.models.notify import SEVERITY_RANK
from advisors.rules import Window, run_rules
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


MEMO_TTL_S = 7 * 86_400


def memo_key(store: TelemetryStore, device: str) -> str:
    return store.keys(device).stream("rulememo")


def load_memo(store: TelemetryStore, device: str) -> dict[str, Any]:
    raw = store.r.get(memo_key(store, device))
    try:
        memo = json.loads(raw) if raw else {}
    except ValueError:
        memo = {}
    return memo if isinstance(memo, dict) else {}


def save_memo(store: TelemetryStore, device: str, memo: dict[str, Any]) -> None:
    store.r.set(memo_key(store, device), json.dumps(memo, separators=(",", ":")), ex=MEMO_TTL_S)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def evaluate_device(store: TelemetryStore, device: str, now: float | None = None) -> dict[str, list[Alert]]:
    """One evaluation cycle for one device; returns the alerts that fired, resolved and escalated."""
    now = time.time() if now is None else now
    config = device_config(device)
    firing = {a.fingerprint: a for a in Alert.objects.filter(device=device, state=Alert.FIRING)}
    active_rule_fps = {fingerprint(a.rule, a.labels) for a in firing.values()}
    with WINDOWS.lease(store, device, now, float(config["thresholds"]["window_s"])) as window:
        window.memo = load_memo(store, device)
        findings = run_rules(window, config, active_rule_fps)
        save_memo(store, device, window.memo)
    fired: list[Alert] = []
    resolved: list[Alert] = []
    escalated: list[Alert] = []
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
                    alert = Alert.objects.create(device=device, rule=finding.rule, severity=finding.severity,
                                                 labels=finding.labels, fingerprint=fp, summary=finding.summary,
                                                 starts_at=_dt(now))
            except IntegrityError:  # another worker fired it first: nothing to do
                continue
            fired.append(alert)
        elif alert.summary != finding.summary or alert.severity != finding.severity:
            raised = SEVERITY_RANK.get(finding.severity, 0) > SEVERITY_RANK.get(alert.severity, 0)
            Alert.objects.filter(pk=alert.pk).update(summary=finding.summary, severity=finding.severity)
            alert.summary, alert.severity = finding.summary, finding.severity
            if raised:  # warning -> critical is news for critical-only receivers
                escalated.append(alert)
    for fp, alert in firing.items():
        if fp not in seen and Alert.objects.filter(pk=alert.pk, state=Alert.FIRING).update(
                state=Alert.RESOLVED, ends_at=_dt(now)):
            alert.state, alert.ends_at = Alert.RESOLVED, _dt(now)
            resolved.append(alert)
    return {"fired": fired, "resolved": resolved, "escalated": escalated}
