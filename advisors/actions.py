"""Actions, the server side: create audited ActionRequest rows, sign them with the device key and
queue them on the device's action stream; read the agent's answers back into the rows.

The web process never touches the device: it only writes signed requests to Redis. What the agent
accepts is decided by the agent (collectors/actions); the checks here are the same context-free
ones, so a bad request fails fast with a clear message instead of waiting for the agent.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any

from django.conf import settings

from advisors.models import ActionRequest, Alert, DeviceSettings
from collectors.actions import registry, signing
from collectors.actions.params import ParamError
from collectors.store import TelemetryStore, check_device_id

log = logging.getLogger(__name__)
TTL_S = 300.0
GRACE_S = 60.0          # an answer may arrive this long after expiry before the row is "expired"
AUTO_COOLDOWN_S = 600   # auto mode does not repeat the same action within this


class ActionError(ValueError):
    """The request cannot be made; the message says why (shown to the user / API client)."""


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def validate(action: str, params: Any) -> dict[str, Any]:
    """The context-free checks the agent will repeat on the device."""
    if not isinstance(action, str) or not registry.known(action):
        raise ActionError(f"unknown action {str(action)[:64]!r}: use one of {', '.join(sorted(registry.ACTIONS))}")
    if not isinstance(params, dict):
        raise ActionError("params must be a JSON object")
    if action == "undo":
        if not isinstance(params.get("request_id"), str) or set(params) != {"request_id"}:
            raise ActionError("undo takes {\"request_id\": ...}")
        return params
    if action == "batch":
        steps = params.get("steps")
        if set(params) != {"steps"} or not isinstance(steps, list) or not 0 < len(steps) <= registry.MAX_BATCH:
            raise ActionError(f"batch takes {{\"steps\": [1-{registry.MAX_BATCH} actions]}}")
        clean = []
        for i, step in enumerate(steps, 1):
            name = step.get("action") if isinstance(step, dict) else None
            if name not in registry.ACTIONS or not registry.ACTIONS[name].safe:
                raise ActionError(f"step {i}: {name!r} is not a safe tuning action")
            clean.append({"action": name, "params": validate(name, step.get("params") or {})})
        return {"steps": clean}
    try:
        return registry.ACTIONS[action].validate(params, None)
    except ParamError as exc:
        raise ActionError(f"invalid parameter: {exc}") from None


def request_action(store: TelemetryStore, device: str, action: str, params: Any, user=None, *,
                   origin: str = "user", dry_run: bool = False, undo_of: ActionRequest | None = None,
                   recommendation: str = "", request_id: str | None = None) -> ActionRequest:
    """Validate, record, sign and queue one request; returns its (pending) row.

    `request_id` (optional, from the client) makes HTTP retries idempotent: the same id with the
    same request returns the existing row (`row.existing` is True) and sends nothing again."""
    try:
        check_device_id(device)
    except ValueError as exc:
        raise ActionError(str(exc)) from None
    clean = validate(action, params)
    if request_id is not None:
        if not isinstance(request_id, str) or not signing.REQUEST_ID.match(request_id):
            raise ActionError("request_id must be 8-64 letters, digits, '_' or '-'")
        existing = ActionRequest.objects.filter(request_id=request_id).first()
        if existing is not None:
            if (existing.device, existing.action, existing.params) != (device, action, clean):
                raise ActionError(f"request_id {request_id} was already used for a different request")
            existing.existing = True  # type: ignore[attr-defined]  # tells the API this is a retry
            return existing
    if not settings.AGENT_KEY:
        raise ActionError("THOXDASH_AGENT_MASTER_KEY (or THOXDASH_AGENT_KEY) is not set on the server: "
                          "actions cannot be signed")
    who = user.username if user is not None and getattr(user, "is_authenticated", False) else origin
    message = signing.build(device, action, clean, origin=origin, requested_by=who, dry_run=dry_run, ttl_s=TTL_S,
                            request_id=request_id)
    row = ActionRequest.objects.create(
        device=device, action=action, params=clean, request_id=message["id"], origin=origin, dry_run=dry_run,
        requested_by=user if user is not None and getattr(user, "is_authenticated", False) else None,
        expires_at=_dt(message["expires_at"]), undo_of=undo_of, recommendation=recommendation[:200])
    # each device's requests are signed with its own key, derived from the server's master key
    store.action_queue(device).submit(signing.sign(message, signing.derive_key(settings.AGENT_KEY, device)))
    return row


def request_undo(store: TelemetryStore, row: ActionRequest, user=None) -> ActionRequest:
    if not row.undoable:
        raise ActionError(f"{row.action} request {row.request_id} is {row.state}: it cannot be undone")
    if row.undos.exclude(state__in=("failed", "rejected", "expired")).exists():
        raise ActionError(f"request {row.request_id} already has an undo")
    return request_action(store, row.device, "undo", {"request_id": row.request_id}, user, undo_of=row)


# -- is anyone executing? ------------------------------------------------------------------------
EXECUTOR_IDLE_S = 30.0  # an agent's executor reads its action stream every tick; longer idle = gone


def executor_status(store: TelemetryStore, device: str, now: float | None = None) -> dict[str, Any]:
    """Whether an agent-side executor reads this device's action stream, and why not in words:
    {"ok": bool, "reason": str}. Read from the stream's consumer group (the executor's own reads)."""
    from collectors.actions.executor import GROUP

    try:
        info = store.r.xinfo_consumers(store.keys(device).actions, GROUP)
    except Exception:  # no stream or no group: nothing has ever read actions for this device
        info = None
    replayed = bool((store.devices().get(device) or {}).get("replay"))
    if not info:
        why = ("this device is replayed from a recording with no action executor, so nothing can apply "
               "actions to it" if replayed else
               "no agent has ever read this device's actions: start `python -m collectors agent` on it")
        return {"ok": False, "reason": why}
    idle_s = min(float(c.get("idle", 0)) for c in info) / 1000.0
    if idle_s > EXECUTOR_IDLE_S:
        return {"ok": False, "reason": f"the device's agent stopped reading actions {_ago(idle_s)} ago "
                                       "(is it still running?)"}
    return {"ok": True, "reason": "the device's agent reads actions; if a request still expires, check "
                                  "that it runs with its own key derived by the server (manage.py enroll_device)"}


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# -- results ------------------------------------------------------------------------------------
def refresh(store: TelemetryStore, row: ActionRequest, now: float | None = None) -> ActionRequest:
    """Copy the agent's answer (from the device's action log) into a pending row."""
    if row.state != "pending":
        return row
    now = time.time() if now is None else now
    answer = store.action_log(row.device).get(row.request_id)
    if answer is None or answer.get("status") == "running":
        if row.expires_at and now > row.expires_at.timestamp() + GRACE_S:
            row.state = "expired"
            row.result = {"status": "expired", "reason": "no answer before the request expired: "
                          + executor_status(store, row.device, now)["reason"]}
            row.finished_at = _dt(now)
            row.save(update_fields=["state", "result", "finished_at"])
        return row
    result = {k: v for k, v in answer.items() if k not in ("sig", "snapshot", "steps_snapshot")}
    status = result.get("status", "failed")
    row.state = status if status in ActionRequest.FINAL else "failed"
    row.preview = result.get("preview") or []
    row.result = result
    row.finished_at = _dt(float(result.get("ts") or now))
    row.save(update_fields=["state", "preview", "result", "finished_at"])
    if row.action == "undo" and row.state == "undone" and row.undo_of_id:
        ActionRequest.objects.filter(pk=row.undo_of_id).update(state="undone")
    return row


def collect_results(store: TelemetryStore, device: str | None = None) -> int:
    """Refresh every pending row (of one device); returns how many got an answer or expired."""
    rows = ActionRequest.objects.filter(state="pending")
    if device:
        rows = rows.filter(device=device)
    done = 0
    for row in rows[:500]:
        if refresh(store, row).state != "pending":
            done += 1
    return done


# -- recommendations -----------------------------------------------------------------------------
def device_recommendations(store: TelemetryStore, device: str, now: float | None = None) -> list[dict[str, Any]]:
    from advisors.alerting import device_config
    from advisors.recommend import last_used_from_requests, recommend

    now = time.time() if now is None else now
    latest = store.latest(device)
    alerts = [{"rule": a.rule, "labels": a.labels, "severity": a.severity, "summary": a.summary}
              for a in Alert.objects.filter(device=device, state=Alert.FIRING)]
    last_used = last_used_from_requests(store.read(device, "requests", since=now - 3600))
    return recommend(latest["state"], latest["values"], alerts, device_config(device), last_used)


def apply_recommended(store: TelemetryStore, device: str, user, ids: list[str] | None = None) -> ActionRequest:
    """One request ("batch") with every safe recommended tuning step (or the selected ones)."""
    recs = [r for r in device_recommendations(store, device) if r.get("safe") and r.get("action")]
    if ids is not None:
        recs = [r for r in recs if r["id"] in set(ids)]
    if not recs:
        raise ActionError("nothing to apply: no safe tuning recommendation is open (or none was selected)")
    return request_action(store, device, "batch", {"steps": [r["action"] for r in recs]}, user,
                          recommendation=",".join(r["id"] for r in recs))


def apply_recommendation(store: TelemetryStore, device: str, rec_id: str, user,
                         dry_run: bool = False) -> ActionRequest:
    """Apply (or preview) one recommendation's action, looked up server-side by id (never taken
    from a form)."""
    rec = next((r for r in device_recommendations(store, device) if r["id"] == rec_id), None)
    if rec is None:
        raise ActionError(f"no open recommendation {rec_id[:80]!r} for {device}")
    if not rec.get("action"):
        raise ActionError(f"{rec['title']}: advice only, nothing to apply from here")
    return request_action(store, device, rec["action"]["action"], rec["action"]["params"], user,
                          recommendation=rec_id, dry_run=dry_run)


# -- auto mode -----------------------------------------------------------------------------------
def auto_actions(store: TelemetryStore, device: str, now: float | None = None) -> list[ActionRequest]:
    """Auto mode (off by default): on a ceiling breach evict the LRU background model; report it
    as an audited ActionRequest with origin "auto". Never targets a critical runtime (the agent
    enforces that too), never repeats the same eviction within AUTO_COOLDOWN_S."""
    row = DeviceSettings.objects.filter(device=device).first()
    if row is None or not row.auto_mode or not settings.AGENT_KEY:
        return []
    now = time.time() if now is None else now
    made = []
    for rec in device_recommendations(store, device, now):
        if not rec.get("auto_ok") or not rec.get("action"):
            continue
        recent = ActionRequest.objects.filter(
            device=device, origin="auto", recommendation=rec["id"], requested_at__gte=_dt(now - AUTO_COOLDOWN_S),
        ).exclude(state__in=("rejected", "expired"))
        if recent.exists():
            continue
        try:
            made.append(request_action(store, device, rec["action"]["action"], rec["action"]["params"],
                                       None, origin="auto", recommendation=rec["id"]))
        except ActionError as exc:
            log.warning("auto mode on %s: %s", device, exc)
        else:
            log.warning("auto mode on %s: %s (%s)", device, rec["title"], rec["why"])
    return made


def after_evaluation(store: TelemetryStore, device: str) -> dict[str, int]:
    """Run after each evaluation cycle: collect answers, then auto mode."""
    return {"results": collect_results(store, device), "auto": len(auto_actions(store, device))}


def recent_rows(device: str | None = None, limit: int = 200) -> list[ActionRequest]:
    rows = ActionRequest.objects.select_related("requested_by", "undo_of")
    if device:
        rows = rows.filter(device=device)
    return list(rows[:limit])

