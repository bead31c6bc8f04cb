"""Small repositories on the telemetry store's Redis client: rule memos, a device's action queue
and action log. Their keys come from collectors/keys.py; reach them through `TelemetryStore`
(`store.memos`, `store.action_queue(device)`, `store.action_log(device)`, `store.lock(...)`).
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

import redis

from collectors.keys import ACTION_GROUP, RULE_MEMO_TTL_S
from collectors.recording import dumps

if TYPE_CHECKING:
    from collectors.store import TelemetryStore

ACTIONS_MAXLEN = 5_000
RESULTS_MAXLEN = 5_000


def _object(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class RuleMemos:
    """Per-device JSON memos of the rules' own state (what fired when, counters), kept a week."""

    def __init__(self, store: TelemetryStore):
        self.store = store

    def get(self, device: str) -> dict[str, Any]:
        return _object(self.store.r.get(self.store.keys(device).rulememo))

    def get_many(self, devices: list[str]) -> dict[str, dict[str, Any]]:
        if not devices:
            return {}
        raw = self.store.r.mget([self.store.keys(d).rulememo for d in devices])
        return {device: _object(text) for device, text in zip(devices, raw, strict=True)}

    def put(self, device: str, memo: dict[str, Any]) -> None:
        self.put_many({device: memo})

    def put_many(self, memos: dict[str, dict[str, Any]]) -> None:
        if not memos:
            return
        pipe = self.store.r.pipeline(transaction=False)
        for device, memo in memos.items():
            pipe.set(self.store.keys(device).rulememo, json.dumps(memo, separators=(",", ":")),
                     ex=RULE_MEMO_TTL_S)
        pipe.execute()


class ActionQueue:
    """A device's signed action requests (a stream read with the consumer group ACTION_GROUP) and
    the results the agent writes back. The group is (re)created whenever Redis says NOGROUP or the
    connection was lost (a restarted Redis without persistence has neither stream nor group)."""

    def __init__(self, store: TelemetryStore, device: str):
        self.store = store
        self.keys = store.keys(device)
        self.ready = False

    def submit(self, fields: dict[str, str]) -> str:
        return str(self.store.r.xadd(self.keys.actions, fields, maxlen=ACTIONS_MAXLEN, approximate=True))

    def ensure_group(self, consumer: str) -> None:
        if self.ready:
            return
        try:
            self.store.r.xgroup_create(self.keys.actions, ACTION_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        # take over requests another (dead) agent process read but never acknowledged
        with contextlib.suppress(redis.ResponseError):
            self.store.r.xautoclaim(self.keys.actions, ACTION_GROUP, consumer, min_idle_time=60_000, count=100)
        self.ready = True

    def read(self, consumer: str, start: str, count: int) -> list[tuple[str, dict[str, str]]]:
        """Entries for this consumer: its own pending ones (`start="0"`) or new ones (`">"`)."""
        self.ensure_group(consumer)
        try:
            reply = self._read(consumer, start, count)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ready = False  # the group is gone (Redis restarted empty): make it again, once
            self.ensure_group(consumer)
            reply = self._read(consumer, start, count)
        except (redis.ConnectionError, redis.TimeoutError):
            self.ready = False
            raise
        return [(entry_id, fields) for _stream, entries in reply or [] for entry_id, fields in entries]

    def _read(self, consumer: str, start: str, count: int) -> Any:
        return self.store.r.xreadgroup(ACTION_GROUP, consumer, {self.keys.actions: start}, count=count)

    def ack(self, entry_id: str) -> None:
        self.store.r.xack(self.keys.actions, ACTION_GROUP, entry_id)

    def add_result(self, result: dict[str, Any]) -> None:
        self.store.r.xadd(self.keys.action_results, {"j": dumps(result)}, maxlen=RESULTS_MAXLEN, approximate=True)

    def results(self, count: int = 100) -> list[dict[str, Any]]:
        """The newest results, oldest first (what the web side and tests read back)."""
        entries = self.store.r.xrevrange(self.keys.action_results, count=count)
        return [_object(fields.get("j")) for _id, fields in reversed(entries)]


class ActionLog:
    """request id -> the agent's record of it (result, saved old values for undo); claiming an id
    (HSETNX) is what makes a request idempotent."""

    def __init__(self, store: TelemetryStore, device: str):
        self.store = store
        self.key = store.keys(device).action_log

    def claim(self, rid: str, record: dict[str, Any]) -> bool:
        """Write `record` for `rid` unless the id is already logged; True when this call wrote it."""
        return bool(self.store.r.hsetnx(self.key, rid, dumps(record)))

    def put(self, rid: str, record: dict[str, Any]) -> None:
        self.store.r.hset(self.key, rid, dumps(record))

    def get(self, rid: str) -> dict[str, Any] | None:
        text = self.store.r.hget(self.key, rid)
        return _object(text) if text else None

    def trim(self, now: float, keep: int, keep_s: float) -> int:
        """Keep `keep` records: drop the oldest, never one younger than `keep_s`."""
        if self.store.r.hlen(self.key) <= keep:
            return 0
        entries = []
        for rid, text in self.store.r.hgetall(self.key).items():
            ts = _object(text).get("ts")
            entries.append((float(ts) if isinstance(ts, (int, float)) else 0.0, rid))
        entries.sort()
        doomed = [rid for ts, rid in entries[: len(entries) - keep] if ts < now - keep_s]
        if doomed:
            self.store.r.hdel(self.key, *doomed)
        return len(doomed)
