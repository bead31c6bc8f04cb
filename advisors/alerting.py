"""Live evaluation: read each device's window from Redis, run the rules, persist the lifecycle.

One path for one device or many: `evaluate_device(store, d)` is `evaluate_batch(store, [d])`, and
Celery beat runs `evaluate_all -> evaluate_batch`. The lifecycle itself is the pure
`advisors.engine.transitions` that `manage.py evaluate` runs too; this module only reads its inputs
(config, firing alerts, rule memos) and writes its plan (bulk updates). The database holds the
state (firing rows); a re-run of the same cycle changes nothing, so the Celery task is idempotent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from advisors.config import resolve
from advisors.engine import DEVICE_DOWN, Plan, transitions
from advisors.livewindow import WINDOWS
from advisors.models import Alert, DeviceSettings
from advisors.rules import Finding, Window, run_rules
from advisors.rules.base import fingerprint
from collectors.store import TelemetryStore

log = logging.getLogger(__name__)

PENDING = "_pending"  # memo keys of this module (rules own the others): the lifecycle's `for` ...
WINDOW = "_window_s"  # ... and the window length the device's config asks for


def live_thresholds() -> dict[str, Any]:
    """Deployment settings that are rule thresholds (under device and Settings values)."""
    return {"stale_after_s": float(getattr(settings, "STALE_AFTER_S", 15.0))}


def device_config(device: str, store: TelemetryStore | None = None) -> dict[str, Any]:
    """The resolved config of one device, as its rules see it: the config the device published
    (agent or replay, in its state) overridden field by field by its Settings row."""
    if store is None:
        from advisors.telemetry import store as web_store

        store = web_store()
    try:
        state = store.latest(device)["state"]
    except Exception:  # Redis down or a bad id: Settings and defaults still answer
        log.warning("reading the published config of %s failed", device, exc_info=True)
        state = {}
    row = DeviceSettings.objects.filter(device=device).first()
    return resolve(state.get("config"), row.config() if row else None, thresholds=live_thresholds())


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


# -- rule memos (the store's RuleMemos repository: one key per device) --------------------------

def load_memo(store: TelemetryStore, device: str) -> dict[str, Any]:
    return store.memos.get(device)


def save_memo(store: TelemetryStore, device: str, memo: dict[str, Any]) -> None:
    store.memos.put(device, memo)


def load_memos(store: TelemetryStore, devices: list[str]) -> dict[str, dict[str, Any]]:
    return store.memos.get_many(devices)


def save_memos(store: TelemetryStore, memos: dict[str, dict[str, Any]]) -> None:
    store.memos.put_many(memos)


# -- one cycle ------------------------------------------------------------------------------------

def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def run_device(store: TelemetryStore, device: str, now: float, override: dict[str, Any] | None,
               firing: dict[str, Alert], memo: dict[str, Any]) -> tuple[list[Finding], dict[str, Any]]:
    """Every rule over the device's live window (no database); `memo` is updated in place.
    Returns the findings and the config they were made with (resolved from the device's own
    config, read with the window, and `override`, the Settings row)."""
    active_rule_fps = {fingerprint(a.rule, a.labels) for a in firing.values()}
    # the window length the device's resolved config asked for last cycle (its own config is read
    # with the window), else what Settings and the defaults say
    window_s = float(memo.get(WINDOW) or resolve(None, override)["thresholds"]["window_s"])
    with WINDOWS.lease(store, device, now, window_s) as window:
        config = resolve(window.state.get("config"), override, thresholds=live_thresholds())
        wanted = float(config["thresholds"]["window_s"])
        if wanted < window_s:
            window.trim(now - wanted)
        window.memo = {k: v for k, v in memo.items() if not k.startswith("_")}
        findings = run_rules(window, config, active_rule_fps)
        own = {k: v for k, v in memo.items() if k.startswith("_")}
        memo.clear()
        memo.update(window.memo)
        memo.update(own)
        memo[WINDOW] = wanted
    return findings, config


def apply_plan(device: str, plan: Plan, firing: dict[str, Alert],
               now: float) -> tuple[dict[str, list[Alert]], list[Alert]]:
    """Write one device's plan: create what fired, resolve what stopped (one UPDATE), write
    escalations (one bulk UPDATE). Returns the transitions and the alerts whose summary (or
    severity, downwards) changed without being news, for the caller to bulk-update."""
    fired: list[Alert] = []
    for fp, finding in plan.fire:
        try:
            with transaction.atomic():
                fired.append(Alert.objects.create(
                    device=device, rule=finding.rule, severity=finding.severity, labels=finding.labels,
                    fingerprint=fp, summary=finding.summary, starts_at=_dt(now)))
        except IntegrityError:  # another worker fired it first: nothing to do
            continue
    escalated = [_changed(firing[fp], finding) for fp, finding in plan.escalate]
    if escalated:
        Alert.objects.bulk_update(escalated, ["summary", "severity"])
    resolved: list[Alert] = []
    if plan.resolve:
        candidates = {firing[fp].pk: firing[fp] for fp in plan.resolve}
        still = list(Alert.objects.filter(pk__in=list(candidates), state=Alert.FIRING).values_list("pk", flat=True))
        if still:
            Alert.objects.filter(pk__in=still, state=Alert.FIRING).update(state=Alert.RESOLVED, ends_at=_dt(now))
        for pk in still:
            alert = candidates[pk]
            alert.state, alert.ends_at = Alert.RESOLVED, _dt(now)
            resolved.append(alert)
    quiet = [_changed(firing[fp], finding) for fp, finding in plan.update]
    return {"fired": fired, "resolved": resolved, "escalated": escalated}, quiet


def _changed(alert: Alert, finding: Finding) -> Alert:
    alert.summary, alert.severity = finding.summary, finding.severity
    return alert


# -- batches: many devices per task, the per-device database and Redis work done once ------------

Notify = Callable[[dict[str, list[Alert]]], Any]


def batch_overrides(devices: list[str]) -> tuple[dict[str, dict[str, Any] | None], dict[str, DeviceSettings]]:
    """Every device's Settings row (one query) and the config it overrides with."""
    rows = {row.device: row for row in DeviceSettings.objects.filter(device__in=devices)}
    return {d: rows[d].config() if d in rows else None for d in devices}, rows


def batch_firing(devices: list[str]) -> dict[str, dict[str, Alert]]:
    """device -> {fingerprint: firing alert}, one query for the whole batch."""
    out: dict[str, dict[str, Alert]] = {d: {} for d in devices}
    for alert in Alert.objects.filter(device__in=devices, state=Alert.FIRING).order_by():
        out.setdefault(alert.device, {})[alert.fingerprint] = alert
    return out


@dataclass
class BatchResult:
    """What one batch did: per-device transitions, devices that failed, the settings rows read."""

    results: dict[str, dict[str, list[Alert]]] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    rows: dict[str, DeviceSettings] = field(default_factory=dict)


def evaluate_batch(store: TelemetryStore, devices: list[str], now: float | None = None,
                   on_transitions: Notify | None = None) -> BatchResult:
    """One evaluation cycle for many devices, with the fixed costs paid once per batch: one query
    each for Settings rows and firing alerts, one MGET and one pipeline for the rule memos, one
    bulk UPDATE for summaries that merely changed. Each device's transitions (and
    `on_transitions`, e.g. planning its webhook deliveries) commit in one transaction, so a worker
    killed mid-batch leaves either both or neither; the re-run then changes nothing that was done
    (idempotent). A device that raises is logged and skipped; the others still run."""
    now = time.time() if now is None else now
    devices = list(dict.fromkeys(devices))
    out = BatchResult()
    overrides, out.rows = batch_overrides(devices)
    firing = batch_firing(devices)
    memos = load_memos(store, devices)
    plans: dict[str, Plan] = {}
    for device in devices:
        try:
            findings, config = run_device(store, device, now, overrides[device], firing[device], memos[device])
            plan = transitions(firing[device], findings, now, device=device,
                               pending=memos[device].get(PENDING), for_s=config["for_s"])
        except Exception:
            log.exception("evaluating %s", device)
            out.failed.append(device)
            continue
        plans[device] = plan
        if plan.pending:
            memos[device][PENDING] = plan.pending
        else:
            memos[device].pop(PENDING, None)
    save_memos(store, {d: memos[d] for d in plans})
    changed: list[Alert] = []
    for device, plan in plans.items():
        try:
            with transaction.atomic():
                result, quiet = apply_plan(device, plan, firing[device], now)
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
            Alert.objects.bulk_update(changed, ["summary", "severity"], batch_size=500)
        except Exception:  # summaries catch up next cycle
            log.exception("updating %d alert summaries", len(changed))
    return out


def evaluate_device(store: TelemetryStore, device: str, now: float | None = None,
                    on_transitions: Notify | None = None) -> dict[str, list[Alert]]:
    """One device's cycle: a batch of one. Returns what fired, resolved and escalated."""
    batch = evaluate_batch(store, [device], now, on_transitions)
    if device in batch.failed:
        raise RuntimeError(f"evaluating {device} failed (see the log)")
    return batch.results.get(device, {"fired": [], "resolved": [], "escalated": []})


def stale_devices() -> set[str]:
    """Devices whose device_down fires: their other alerts are stale (last known, not current)."""
    return set(Alert.objects.filter(rule=DEVICE_DOWN, state=Alert.FIRING).values_list("device", flat=True))
