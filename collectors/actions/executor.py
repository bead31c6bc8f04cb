"""The agent side: consume signed action requests from Redis, execute them, write results.

Stream entries of `{p}dev:{id}:actions` are read with the consumer group `agent`. Each request
gets exactly one result in `{p}dev:{id}:action_results` (field `j`), and its full record (with
the saved old values for undo) in the hash `{p}dev:{id}:action_log` keyed by request id, which is
also what makes requests idempotent: a request id already in the log is never applied again.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from collectors.actions import registry
from collectors.actions.base import ApplyError, Outcome, execute, undo
from collectors.actions.context import ActionContext, ToolError, config_path, load_config, priority
from collectors.actions.params import ParamError
from collectors.actions.signing import CLOCK_SKEW_S, Rejected, agent_keys, verify
from collectors.keys import ACTION_GROUP
from collectors.store import RECONNECT_MAX_S, TelemetryStore

log = logging.getLogger(__name__)
GROUP = ACTION_GROUP
FAILURES = (ApplyError, ParamError, ToolError, OSError)
LOG_MAX = 5_000          # records kept in the action log (undo needs the record)
LOG_KEEP_S = 86_400.0    # ... but none younger than this is dropped


SEEN_MAX = 50_000


def _load_seen(path: Path | None) -> dict[str, float]:
    if path is None:
        return {}
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {str(k): float(v) for k, v in list(raw.items())[:SEEN_MAX]
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


class Executor:
    def __init__(self, store: TelemetryStore, device: str, root: Path, key: str | None = None,
                 config: dict[str, Any] | None = None, consumer: str | None = None,
                 seen_path: Path | None = None, previous_keys: tuple[str, ...] = (),
                 tools_root: Path | None = None):
        self.store = store
        self.device = device
        # The agent's own derived key (THOXDASH_AGENT_KEY or _FILE), plus a previous one during a
        # rotation window (signing.agent_keys); an explicit `key` (tests) replaces the environment.
        self._from_env = key is None
        self.key = (agent_keys() or [""])[0] if key is None else key
        self.previous_keys = previous_keys
        # Request ids this agent has handled, with their expiry: kept here too (and in a file when
        # given), so a captured request re-added after its Redis log entry was deleted is refused.
        self.seen_path = seen_path
        self.seen: dict[str, float] = _load_seen(seen_path)
        # the allow-list file is re-read when it changes (no agent restart needed)
        self.config_file = Path(config_path(Path(root))) if config is None else None
        self._config_mtime = self._mtime()
        self.ctx = ActionContext(root=Path(root), device=device,
                                 config=load_config(Path(root)) if config is None else config, store=store,
                                 tools_root=tools_root)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.queue = store.action_queue(device)
        self.action_log = store.action_log(device)
        self.current_id = ""
        self.handled = 0

    # -- the stream ------------------------------------------------------------------------------
    def ensure_group(self) -> None:
        self.queue.ensure_group(self.consumer)

    def _mtime(self) -> float | None:
        try:
            return self.config_file.stat().st_mtime if self.config_file else None
        except OSError:
            return None

    def poll(self, now: float | None = None, count: int = 10) -> list[dict[str, Any]]:
        """Handle waiting requests (own pending first, then new ones); return their results."""
        if self.config_file is not None and self._mtime() != self._config_mtime:
            self._config_mtime = self._mtime()
            self.ctx.config = load_config(self.ctx.root, str(self.config_file))
            log.info("action allow-list reloaded from %s", self.config_file)
        results = []
        for start in ("0", ">"):
            for entry_id, fields in self.queue.read(self.consumer, start, count):
                if fields:
                    results.append(self.handle(fields, time.time() if now is None else now))
                self.queue.ack(entry_id)
        return results

    # -- one request -----------------------------------------------------------------------------
    def accepted_keys(self, now: float) -> list[str]:
        if self._from_env:
            return agent_keys(now=now)
        return [self.key, *self.previous_keys]

    def remember(self, rid: str, expires_at: float, now: float) -> None:
        self.seen = {r: e for r, e in self.seen.items() if e + CLOCK_SKEW_S >= now}
        if len(self.seen) >= SEEN_MAX:  # far beyond any real rate: drop the soonest-expiring
            for r, _e in sorted(self.seen.items(), key=lambda kv: kv[1])[: len(self.seen) - SEEN_MAX + 1]:
                del self.seen[r]
        self.seen[rid] = expires_at
        if self.seen_path is not None:
            try:
                tmp = self.seen_path.with_suffix(".tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as fh:
                    json.dump(self.seen, fh)
                os.replace(tmp, self.seen_path)
            except OSError as exc:
                log.warning("could not keep seen request ids in %s: %s", self.seen_path, exc)

    def handle(self, fields: dict[str, str], now: float) -> dict[str, Any]:
        try:
            message = verify(fields, self.accepted_keys(now), self.device, now)
        except Rejected as exc:
            rejected: dict[str, Any] = {"request_id": _claimed_id(fields), "status": "rejected", "reason": str(exc)}
            if exc.authentic is not None:  # signed by us but expired/misaddressed: log it by id
                rejected["action"] = exc.authentic.get("action")
                self.action_log.claim(exc.authentic["id"], {**rejected, "sig": fields["sig"]})
            return self._emit(rejected, now)
        rid = message["id"]
        record = {"status": "running", "sig": fields["sig"], "action": message.get("action")}
        if not self.action_log.claim(rid, record):
            return self._duplicate(rid, fields["sig"], now)
        if rid in self.seen:  # handled before, yet its log entry was gone: a replay
            rejected = {"request_id": rid, "status": "rejected", "action": message.get("action"),
                        "reason": "replayed request: this agent already handled this request id"}
            self.action_log.put(rid, {**rejected, "ts": now, "sig": fields["sig"]})
            return self._emit(rejected, now)
        self.remember(rid, float(message["expires_at"]), now)
        result: dict[str, Any]
        try:
            result = self.dispatch(message)
        except Exception as exc:  # a bug must still answer the request
            log.exception("action %s failed", rid)
            result = {"status": "failed", "reason": f"internal error: {exc.__class__.__name__}: {exc}"}
        result.update({"request_id": rid, "action": message.get("action"),
                       "requested_by": message.get("requested_by", ""), "origin": message.get("origin", "user")})
        result.setdefault("ts", now)
        saved = {**result, "sig": fields["sig"], "params": result.get("params", message.get("params"))}
        self.action_log.put(rid, saved)
        self.handled += 1
        if self.handled % 50 == 0:
            self.trim_log(now)
        return self._emit(result, now)

    def trim_log(self, now: float) -> int:
        """Keep the log to LOG_MAX records: drop the oldest, never one younger than LOG_KEEP_S
        (requests expire long before that, so replay protection is kept)."""
        return self.action_log.trim(now, LOG_MAX, LOG_KEEP_S)

    def _duplicate(self, rid: str, sig: str, now: float) -> dict[str, Any]:
        previous = self.lookup(rid) or {}
        if previous.get("sig") != sig:
            return self._emit({"request_id": rid, "status": "rejected",
                               "reason": "request id reused with different content"}, now)
        out = {k: v for k, v in previous.items() if k not in ("sig", "snapshot", "steps_snapshot")}
        out.update({"duplicate": True, "ts": now,
                    "note": "already handled: replayed or retried request, not applied again"})
        return self._emit(out, now, event=False)

    def _emit(self, result: dict[str, Any], now: float, event: bool = True) -> dict[str, Any]:
        result = {k: v for k, v in result.items() if k not in ("sig", "snapshot", "steps_snapshot")}
        result.setdefault("ts", now)
        result["device"] = self.device
        self.queue.add_result(result)
        if event and result.get("status") in ("applied", "partial", "rolled_back", "undone"):
            self.store.publish(self.device, [{"ts": now, "source": "agent", "event": {
                "kind": "action_applied", "action": result.get("action"), "request_id": result.get("request_id"),
                "status": result["status"], "reason": result.get("reason", ""),
                "changes": result.get("preview", [])}}])
        log.info("action %s %s: %s %s", result.get("request_id"), result.get("action"),
                 result.get("status"), result.get("reason", ""))
        return result

    def lookup(self, rid: str) -> dict[str, Any] | None:
        return self.action_log.get(rid)

    # -- dispatch --------------------------------------------------------------------------------
    def dispatch(self, message: dict[str, Any]) -> dict[str, Any]:
        name = message.get("action")
        if not isinstance(name, str) or not registry.known(name):
            return {"status": "rejected", "reason": f"unknown action {str(name)[:64]!r}: not in the allow-list"}
        self.current_id = self.ctx.request_id = message["id"]
        dry_run = message.get("dry_run") is True
        if name == "undo":
            return self.undo(message["params"])
        if name == "batch":
            return self.batch(message["params"], message.get("origin", "user"), dry_run)
        return self.single(name, message["params"], message.get("origin", "user"), dry_run)

    def prepare(self, name: str, params: Any, origin: str) -> dict[str, Any]:
        """Validate against this device; apply the priority policy. Raises ParamError/Rejected."""
        action = registry.ACTIONS[name]
        if not isinstance(params, dict):
            raise ParamError("params must be an object")
        clean = action.validate(params, self.ctx)
        if action.runtime_scoped and origin == "auto":
            runtime = self.ctx.runtime(clean["runtime"])
            if priority(runtime) == "critical":
                raise Rejected(f"policy: runtime {runtime['name']!r} is critical and is never "
                               f"{name}ed automatically")
        return clean

    def single(self, name: str, params: dict[str, Any], origin: str, dry_run: bool) -> dict[str, Any]:
        try:
            clean = self.prepare(name, params, origin)
        except ParamError as exc:
            return {"status": "rejected", "reason": f"invalid parameter: {exc}", "params": params}
        except Rejected as exc:
            return {"status": "rejected", "reason": str(exc), "params": params}
        outcome = self._run(name, clean, dry_run)
        return {**_outcome(outcome), "params": clean, "snapshot": outcome.snapshot}

    def _run(self, name: str, params: dict[str, Any], dry_run: bool) -> Outcome:
        try:
            return execute(registry.ACTIONS[name], self.ctx, params, dry_run)
        except FAILURES as exc:
            return Outcome("failed", f"could not read the current value: {exc}")

    def batch(self, params: dict[str, Any], origin: str, dry_run: bool) -> dict[str, Any]:
        steps = params.get("steps")
        if not isinstance(steps, list) or not 0 < len(steps) <= registry.MAX_BATCH:
            return {"status": "rejected",
                    "reason": f"invalid parameter: 'steps' must list 1-{registry.MAX_BATCH} actions"}
        prepared = []
        for index, step in enumerate(steps):
            name = step.get("action") if isinstance(step, dict) else None
            action = registry.ACTIONS.get(name) if isinstance(name, str) else None
            if not isinstance(name, str) or action is None or not action.safe:
                return {"status": "rejected", "reason": f"step {index + 1}: {name!r} is not a safe tuning action"}
            try:
                prepared.append((name, self.prepare(name, step.get("params") or {}, origin)))
            except (ParamError, Rejected) as exc:
                return {"status": "rejected", "reason": f"step {index + 1} ({name}): invalid parameter: {exc}"}
        results, snapshots = [], []
        for name, clean in prepared:
            outcome = self._run(name, clean, dry_run)
            results.append({"action": name, "params": clean, **_outcome(outcome)})
            snapshots.append(outcome.snapshot)
        statuses = {r["status"] for r in results}
        status = next(iter(statuses)) if len(statuses) == 1 else "partial"
        if status == "partial" and "applied" not in statuses:
            status = "failed"
        applied = sum(r["status"] == "applied" for r in results)
        return {"status": status, "reason": f"{applied} of {len(results)} steps applied", "steps": results,
                "preview": [c for r in results for c in r["preview"]], "params": params,
                "steps_snapshot": snapshots}

    def undo(self, params: dict[str, Any]) -> dict[str, Any]:
        target = params.get("request_id")
        if not isinstance(target, str):
            return {"status": "rejected", "reason": f"nothing to undo: unknown request {str(target)[:64]!r}"}
        original = self.lookup(target)
        if original is None:
            return {"status": "rejected", "reason": f"nothing to undo: unknown request {str(target)[:64]!r}"}
        if original.get("undone_by"):
            return {"status": "rejected", "reason": f"already undone by request {original['undone_by']}"}
        if original.get("status") not in ("applied", "partial"):
            return {"status": "rejected", "reason": f"request {target} was {original.get('status')}: nothing to undo"}
        self.ctx.request_id = target
        result: dict[str, Any]
        if original.get("action") == "batch":
            results = []
            pairs = list(zip(original.get("steps") or [], original.get("steps_snapshot") or [], strict=False))
            for step, snapshot in reversed(pairs):
                if step.get("status") == "applied":
                    outcome = self._undo_one(step.get("action"), step.get("params"), snapshot)
                    results.append({"action": step.get("action"), "params": step.get("params"), **_outcome(outcome)})
            ok = all(r["status"] == "undone" for r in results)
            result = {"status": "undone" if ok else "failed", "steps": results,
                      "reason": f"{sum(r['status'] == 'undone' for r in results)} of {len(results)} steps undone",
                      "preview": [c for r in results for c in r["preview"]]}
        else:
            outcome = self._undo_one(original.get("action"), original.get("params"), original.get("snapshot"))
            result = _outcome(outcome)
        result["params"] = {"request_id": target}
        if result["status"] == "undone":
            original["undone_by"] = self.current_id
            self.action_log.put(target, original)
        return result

    def _undo_one(self, name: Any, params: Any, snapshot: Any) -> Outcome:
        action = registry.ACTIONS.get(name) if isinstance(name, str) else None
        if action is None or not isinstance(params, dict) or not isinstance(snapshot, dict):
            return Outcome("failed", "the saved record is incomplete")
        try:
            clean = action.validate({k: v for k, v in params.items()}, self.ctx)
            return undo(action, self.ctx, clean, snapshot)
        except FAILURES as exc:
            return Outcome("failed", f"undo refused: {exc}")


def _outcome(outcome: Outcome) -> dict[str, Any]:
    out: dict[str, Any] = {"status": outcome.status, "reason": outcome.reason, "preview": outcome.preview}
    if outcome.skipped:
        out["skipped"] = outcome.skipped
    return out


def _claimed_id(fields: dict[str, str]) -> str | None:
    try:
        value = json.loads(fields.get("j") or "{}").get("id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and len(value) <= 64 else None


class ExecutorHook:
    """The agent hook: each tick, start a poll in the executor's own thread unless one is still
    running, so a slow action (a tool taking seconds) never delays telemetry. After a failed poll
    (Redis away) the next one waits 1 s doubling to RECONNECT_MAX_S: one warning per retry, not per tick."""

    def __init__(self, executor: Executor):
        self.executor = executor
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="actions")
        self.running: Future[Any] | None = None
        self.backoff = 0.0
        self.retry_at = 0.0

    def __call__(self, agent: Any, now: float) -> None:
        if self.running is not None and not self.running.done():
            return
        if self.running is not None:
            error = self.running.exception()
            self.running = None
            if error is not None:
                self.backoff = min(RECONNECT_MAX_S, max(1.0, self.backoff * 2))
                self.retry_at = time.monotonic() + self.backoff
                log.warning("action executor: %s: %s (retry in %.0f s)", error.__class__.__name__, error,
                            self.backoff)
            else:
                self.backoff = 0.0
        if time.monotonic() < self.retry_at:
            return
        self.running = self.pool.submit(self.executor.poll)


def attach_executor(agent: Any, root: Path | str) -> Executor | None:
    """Called by `python -m collectors agent`: poll for signed actions on every agent tick."""
    if agent.store is None:
        return None
    state_dir = os.environ.get("THOXDASH_AGENT_STATE_DIR") or (
        str(agent.buffer.spill_path.parent) if getattr(agent.buffer, "spill_path", None) else "")
    seen = Path(state_dir) / f"{agent.device}.seen-requests.json" if state_dir else None
    try:
        # tools from the real `/` whatever --root is (a test tree names its own tools root)
        tools_root = Path(os.environ.get("THOXDASH_AGENT_TOOLS_ROOT", "/"))
        executor = Executor(agent.store, agent.device, Path(root), seen_path=seen, tools_root=tools_root)
    except ValueError as exc:  # a placeholder or unreadable key file: refuse to start
        from collectors.sources.registry import AgentConfigError

        raise AgentConfigError(str(exc)) from None
    if not executor.key:
        log.warning("THOXDASH_AGENT_KEY is not set: every action request will be rejected")
    agent.hooks.append(ExecutorHook(executor))
    return executor
