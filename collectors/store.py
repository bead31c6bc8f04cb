"""The Redis telemetry store: writes and reads the device streams; with its sibling modules the only
code that touches Redis.

The agent, the proxy, replay, the Celery rules and the web side go through `TelemetryStore`; the
websocket consumer through `collectors/store_async.py`. Every key is named in collectors/keys.py;
record shapes are checked by collectors/entries.py (on ingest and on every read); the small
repositories of collectors/repos.py (rule memos, the action queue and log) sit on the same client,
reached as `store.memos`, `store.action_queue(device)`, `store.action_log(device)`; named locks
are `store.lock(name, ttl_s)`.

Stream IDs carry the record's own timestamp (`<ms>-*`) so time ranges are XRANGE calls.
Streams are capped with MAXLEN ~ (count) and, by the server's rollup pass, trimmed by age (XTRIM
MINID): `trim_before` / `trim_rollups_before`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable
from typing import Any

import redis

from collectors import bounds, registry, slim
from collectors.entries import BadEntry as BadEntry
from collectors.entries import decode, decode_all, encode
from collectors.keys import DEVICE_ID as DEVICE_ID
from collectors.keys import REJECTED_FIELD, GlobalKeys
from collectors.keys import Keys as Keys
from collectors.keys import check_device_id as check_device_id
from collectors.recording import dumps, record_kind
from collectors.repos import ActionLog, ActionQueue, RuleMemos

_log = logging.getLogger(__name__)

DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PREFIX = "thox:"

# Count caps (MAXLEN ~ on every XADD): a safety bound that holds even when nothing else runs.
MAXLEN = {
    "telemetry": 200_000,
    "requests": 100_000,
    "events": 20_000,
    "actions": 5_000,
    "action_results": 5_000,
}
ROLLUP_MAXLEN = 20_000
# Age limits, applied by the server's rollup pass (thoxdash.rollup.trim_device) with the values of
# its settings (THOXDASH_RAW_RETENTION_S, THOXDASH_ROLLUP_RETENTION_S); these are the defaults.
# Raw streams keep hours (the 15 min range and the rules' 5 min window read them); each rollup step
# keeps well beyond the dashboard range it serves (10 s: 1 h, 60 s: 24 h, 600 s: 7 d): 12 h, 2 d, 30 d.
RAW_RETENTION_S = 6 * 3600.0
TIME_TRIMMED = (
    "telemetry",
    "requests",
)  # events stay count-capped: sparse, and the timeline of 7 d
ROLLUP_RETENTION_S = {10: 12 * 3600.0, 60: 2 * 86_400.0, 600: 30 * 86_400.0}


# Processes that ride out a Redis outage retry with a backoff doubling up to this (a refused
# connect is cheap; the cap bounds how long after Redis returns a process notices).
RECONNECT_MAX_S = 5.0
OUTAGE_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


class StoreUnavailable(ConnectionError):
    """Redis cannot be reached; the message names the URL."""


STREAM_FOR_KIND = {
    "values": "telemetry",
    "state": "telemetry",
    "request": "requests",
    "event": "events",
}


def stream_id(ts: float) -> str:
    return f"{int(ts * 1000)}-*"


def connect(url: str | None = None, **kwargs: Any) -> redis.Redis:
    url = url or os.environ.get("REDIS_URL", DEFAULT_URL)
    kwargs.setdefault("socket_connect_timeout", 2)
    kwargs.setdefault("socket_timeout", 5)
    kwargs.setdefault("health_check_interval", 15)
    if "driver_info" not in kwargs and "lib_version" not in kwargs:
        kwargs.update(slim.redis_driver_info())
    return redis.Redis.from_url(url, decode_responses=True, **kwargs)


def ping(client: redis.Redis) -> None:
    """Raise StoreUnavailable with one clear line when Redis does not answer."""
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        url = _describe(client)
        raise StoreUnavailable(
            f"Redis at {url} is unreachable ({exc.__class__.__name__}: {exc})"
        ) from None


def _describe(client: redis.Redis) -> str:
    kw = client.connection_pool.connection_kwargs
    if "path" in kw:
        return f"unix://{kw['path']}"
    return f"redis://{kw.get('host', '?')}:{kw.get('port', '?')}/{kw.get('db', 0)}"


def decode_entry(fields: dict[str, str]) -> dict[str, Any]:
    """One entry's record; raises BadEntry (a ValueError) for one that is not a usable record."""
    return decode(fields)


def decode_state(raw: dict[str, str]) -> dict[str, Any]:
    """A device's state hash (field -> JSON text) as values; text that is not JSON stays text.
    Fields over the bounds of what a device may claim (collectors/bounds.py) are dropped."""
    state: dict[str, Any] = {}
    for k, v in raw.items():
        if k == "__ts":
            continue
        if len(v) > bounds.MAX_STATE_FIELD_CHARS:
            continue  # over the bound: dropped unread
        try:
            state[k] = json.loads(v, parse_constant=_no_constant)
        except (ValueError, RecursionError):  # not JSON (or NaN/Infinity, which JSON has not): kept as text
            state[k] = v
    return bounds.clean_state(state)[0]


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _finite(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


class TelemetryStore:
    """Write and read one Redis's device data. Cheap to construct; holds no state but the client."""

    def __init__(self, client: redis.Redis, prefix: str | None = None):
        # redis-py annotates every command as `Awaitable[Any] | Any` (one stub for its sync and
        # async clients); replies are checked where they are used, so the client is typed as Any
        self.r: Any = client
        self.prefix = (
            prefix
            if prefix is not None
            else os.environ.get("THOXDASH_REDIS_PREFIX", DEFAULT_PREFIX)
        )

    @classmethod
    def from_url(cls, url: str | None = None, prefix: str | None = None) -> TelemetryStore:
        return cls(connect(url), prefix)

    def keys(self, device: str) -> Keys:
        return Keys(self.prefix, device)

    @property
    def global_keys(self) -> GlobalKeys:
        return GlobalKeys(self.prefix)

    # -- small repositories on the same client (collectors/repos.py) -------------------------
    @property
    def memos(self) -> RuleMemos:
        return RuleMemos(self)

    def action_queue(self, device: str) -> ActionQueue:
        return ActionQueue(self, device)

    def action_log(self, device: str) -> ActionLog:
        return ActionLog(self, device)

    def lock(self, name: str, ttl_s: float) -> bool:
        """Take a named lock for `ttl_s` (SET NX EX): True for the one caller that got it."""
        return bool(self.r.set(self.global_keys.lock(name), "1", nx=True, px=max(1, int(ttl_s * 1000))))

    # -- devices -------------------------------------------------------------------------
    def register_device(self, device: str, **meta: Any) -> None:
        check_device_id(device)
        key = self.global_keys.devices
        info, _why = registry.parse_entry(device, self.r.hget(key, device) or "{}")
        info = info or {}
        info.update({k: v for k, v in meta.items() if v is not None})
        info.setdefault("last_seen", None)
        self.r.hset(key, device, dumps(info))

    def report_device(self, device: str, board: dict[str, Any] | None = None) -> bool:
        """What an agent or proxy says about itself: its board into its own key
        (`dev:{id}:info`), and the registry entry where its Redis user may write it (development,
        the server's local agent). In a fleet the registry is server-owned (enrollment): the device
        user is refused there, which is expected; returns whether the registry was written."""
        check_device_id(device)
        if board is not None:
            self.r.set(self.keys(device).info, dumps({"board": registry.clean_board(board)}))
        try:
            self.register_device(device, **({"board": board} if board is not None else {}))
        except redis.exceptions.NoPermissionError:
            return False
        return True

    def registry(self) -> registry.Registry:
        """The registry, validated: invalid entries skipped and reported (collectors/registry.py)."""
        return registry.read(self.r, self.prefix)

    def devices(self) -> dict[str, dict[str, Any]]:
        reg = self.registry()
        names = sorted(reg.devices)
        pipe = self.r.pipeline(transaction=False)
        for device in names:
            pipe.hget(self.keys(device).latest, "__ts")
            pipe.getrange(self.keys(device).info, 0, registry.MAX_ENTRY_BYTES)
        replies = pipe.execute() if names else []
        out = {}
        for i, device in enumerate(names):
            last, reported = replies[2 * i], replies[2 * i + 1]
            out[device] = registry.merge_reported(reg.devices[device], device, reported)
            out[device]["last_seen"] = _finite(last)
        return out

    def device_ids(self) -> list[str]:
        """The registered device ids, sorted (what the Celery fan-outs need): the valid entries only,
        the same set devices() and fleet() list (an entry whose value is junk is not evaluated)."""
        return sorted(self.registry().devices)

    # -- writing -------------------------------------------------------------------------
    def publish(self, device: str, records: Iterable[dict[str, Any]]) -> int:
        """Append recording-format records for a device (one pipeline round trip); returns how
        many were stored. A record of the wrong shape (collectors/entries.py) is skipped and counted
        in the device's `ingest_rejected_total`, never stored and never an exception."""
        keys = self.keys(device)
        pipe = self.r.pipeline(transaction=False)
        latest: dict[str, str] = {}
        state: dict[str, str] = {}
        newest = None
        kept: list[tuple[str, str, float]] = []  # (stream name, entry text, ts)
        rejected = 0
        for record in records:
            text, why = encode(record)
            if text is None:
                rejected += 1
                _log.warning("device %s: record refused at ingest: %s", device, why)
                continue
            kind = record_kind(record)
            name = STREAM_FOR_KIND[kind]
            pipe.xadd(keys.stream(name), {"j": text}, id=stream_id(record["ts"]), maxlen=MAXLEN[name],
                      approximate=True)
            kept.append((name, text, record["ts"]))
            if kind == "values":
                latest.update({k: repr(float(v)) for k, v in record["values"].items()})
            elif kind == "state":
                state.update({k: dumps(v) for k, v in record["state"].items()})
            if kind in ("values", "state"):
                newest = max(newest or 0.0, record["ts"])
        latest.pop(REJECTED_FIELD, None)  # ours: a device cannot reset its own count
        if latest:
            latest["__ts"] = repr(newest)
            pipe.hset(keys.latest, mapping=latest)
        if state:
            state["__ts"] = repr(newest)
            pipe.hset(keys.state, mapping=state)
        if rejected:
            pipe.hincrby(keys.latest, REJECTED_FIELD, rejected)
        if not kept and not rejected:
            return 0
        results = pipe.execute(raise_on_error=False)
        if any(isinstance(r, redis.ResponseError) for r in results[: len(kept)]):
            # An ID older than the stream's newest (clock step, two writers): keep the data,
            # let Redis pick the ID; the record's own `ts` stays authoritative.
            self._publish_auto_ids(keys, kept, results)
        return len(kept)

    def _publish_auto_ids(self, keys: Keys, kept: list[tuple[str, str, float]], results: list[Any]) -> None:
        pipe = self.r.pipeline(transaction=False)
        for (name, text, _ts), result in zip(kept, results, strict=False):
            if isinstance(result, redis.ResponseError):
                pipe.xadd(keys.stream(name), {"j": text}, maxlen=MAXLEN[name], approximate=True)
        pipe.execute()

    # -- reading -------------------------------------------------------------------------
    def latest(self, device: str) -> dict[str, Any]:
        keys = self.keys(device)
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(keys.latest)
        pipe.hgetall(keys.state)
        raw, state_raw = pipe.execute()
        ts = raw.pop("__ts", None)
        values = {}
        for k, v in raw.items():
            try:
                value = float(v)
            except ValueError:
                continue
            if math.isfinite(value):  # NaN/Infinity written around the store is not JSON: skipped
                values[k] = value
        return {"ts": _finite(ts), "values": values, "state": decode_state(state_raw)}

    def last_seen(self, device: str) -> float | None:
        """When the device last published values (its latest hash's `__ts`); None if never. The
        rules' device_down reads it when their cached window is cold."""
        return _finite(self.r.hget(self.keys(device).latest, "__ts"))

    def latest_all(self) -> dict[str, dict[str, str]]:
        """Raw latest-values hashes of every registered device in one pipeline round trip
        (after one HKEYS): device -> {series key: value text, "__ts": ...}. Used by /metrics."""
        devices = self.device_ids()
        return dict(zip(devices, self._bounded_latest(devices), strict=True))

    def _bounded_latest(self, devices: list[str]) -> list[dict[str, str]]:
        """The latest-values hashes of `devices`, each within the series bound: one HLEN round
        trip, then HGETALL where the hash is within it and a bounded HSCAN where it is not."""
        if not devices:
            return []
        limit = bounds.MAX_SERIES_PER_DEVICE
        pipe = self.r.pipeline(transaction=False)
        for device in devices:
            pipe.hlen(self.keys(device).latest)
        sizes = pipe.execute()
        pipe = self.r.pipeline(transaction=False)
        for device, size in zip(devices, sizes, strict=True):
            if size <= limit + 2:
                pipe.hgetall(self.keys(device).latest)
            else:
                pipe.hscan(self.keys(device).latest, 0, count=limit)
                pipe.hmget(self.keys(device).latest, ["__ts", REJECTED_FIELD])
        replies = iter(pipe.execute())
        out = []
        for device, size in zip(devices, sizes, strict=True):
            if size <= limit + 2:
                raw = next(replies)
            else:
                raw = dict(next(replies)[1])
                for name, value in zip(("__ts", REJECTED_FIELD), next(replies), strict=True):
                    if value is not None:
                        raw[name] = value
            kept, dropped = bounds.clean_latest(raw, limit)
            if dropped or size > limit + 2:
                registry.report([f"{device}: series beyond the {limit}-series bound or with reserved names not served"])
            out.append(kept)
        return out

    def read(
        self,
        device: str,
        stream: str = "telemetry",
        since: float | None = None,
        until: float | None = None,
        count: int | None = None,
    ) -> list[dict[str, Any]]:
        """Records of one stream between two epoch times (inclusive)."""
        start = f"{int(since * 1000)}" if since is not None else "-"
        end = f"{int(until * 1000)}" if until is not None else "+"
        key = self.keys(device).stream(stream)
        return decode_all(self.r.xrange(key, start, end, count=count), key)

    def tail(
        self, device: str, stream: str = "telemetry", count: int = 100
    ) -> list[dict[str, Any]]:
        key = self.keys(device).stream(stream)
        return decode_all(reversed(self.r.xrevrange(key, count=count)), key)

    def read_after(self, device: str, streams: Iterable[str], after: dict[str, str], since: float
                   ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Incremental read for a cached window (one round trip): each stream's entries after the
        entry id in `after` (or from `since` when it has none), plus the decoded state hash.
        `after` is advanced to the last entry read, bad entries included (they are skipped, so
        nothing read is read twice and nothing unread is passed over); records sorted by ts."""
        keys = self.keys(device)
        streams = list(streams)
        pipe = self.r.pipeline(transaction=False)
        for stream in streams:
            last = after.get(stream)
            pipe.xrange(keys.stream(stream), f"({last}" if last else str(int(since * 1000)), "+")
        pipe.hgetall(keys.state)
        *results, state_raw = pipe.execute()
        records: list[dict[str, Any]] = []
        for stream, entries in zip(streams, results, strict=True):
            records.extend(decode_all(entries, keys.stream(stream)))
            if entries:
                after[stream] = entries[-1][0]
        records.sort(key=lambda r: r["ts"])
        return records, decode_state(state_raw)

    # -- admission limits (read by the proxy at run time, written by the throttle action) ----
    def set_admission(self, device: str, scope: str, limits: dict[str, Any] | None) -> None:
        """Set (or with None, clear) the limits for `runtime` or `runtime/model`."""
        key = self.keys(device).admission
        if limits is None:
            self.r.hdel(key, scope)
        else:
            self.r.hset(key, scope, dumps(limits))

    def admission(self, device: str) -> dict[str, dict[str, Any]]:
        out = {}
        for scope, text in self.r.hgetall(self.keys(device).admission).items():
            try:
                out[scope] = json.loads(text)
            except ValueError:
                continue
        return out

    # -- rollups (written by Celery for long ranges, read by the dashboard) -----------------
    def write_rollups(self, device: str, step_s: int, records: Iterable[dict[str, Any]]) -> int:
        """Append per-step records `{"ts": bucket_start, "values": {...}}` (one round trip)."""
        key = self.keys(device).rollup(step_s)
        pipe = self.r.pipeline(transaction=False)
        count = 0
        for record in records:
            try:
                text = dumps(record)
            except ValueError:  # a non-finite mean: that bucket is skipped, the pass goes on
                continue
            pipe.xadd(key, {"j": text}, id=stream_id(record["ts"]), maxlen=ROLLUP_MAXLEN, approximate=True)
            count += 1
        if count:
            pipe.execute(raise_on_error=False)  # a bucket already written keeps its first version
        return count

    def read_rollups(
        self,
        device: str,
        step_s: int,
        since: float | None = None,
        until: float | None = None,
        count: int | None = None,
    ) -> list[dict[str, Any]]:
        start = f"{int(since * 1000)}" if since is not None else "-"
        end = f"{int(until * 1000)}" if until is not None else "+"
        key = self.keys(device).rollup(step_s)
        return decode_all(self.r.xrange(key, start, end, count=count), key, rollup=True)

    def last_rollup_ts(self, device: str, step_s: int) -> float | None:
        key = self.keys(device).rollup(step_s)
        records = decode_all(self.r.xrevrange(key, count=5), key, rollup=True)  # the newest usable one
        return records[0]["ts"] if records else None

    # -- age limits (called by the server's rollup pass; the count caps above always apply) ------
    def trim_before(self, device: str, stream: str, ts: float, approximate: bool = False) -> int:
        """Drop entries of one stream older than `ts` (XTRIM MINID); returns how many went."""
        return int(self.r.xtrim(self.keys(device).stream(stream), minid=f"{int(ts * 1000)}",
                                approximate=approximate))

    def trim_rollups_before(
        self, device: str, step_s: int, ts: float, approximate: bool = False
    ) -> int:
        return int(self.r.xtrim(self.keys(device).rollup(step_s), minid=f"{int(ts * 1000)}",
                                approximate=approximate))

    def read_chunks(
        self, device: str, stream: str, since: float, until: float, chunk: int = 5000
    ) -> Iterable[dict[str, Any]]:
        """Records of one stream in [since, until), fetched `chunk` entries per round trip."""
        key = self.keys(device).stream(stream)
        start = f"{int(since * 1000)}"
        end = f"{int(until * 1000) - 1}"  # a bare ms ID as end means every entry of that ms
        while True:
            entries = self.r.xrange(key, start, end, count=chunk)
            yield from decode_all(entries, key)
            if len(entries) < chunk:
                return
            start = f"({entries[-1][0]}"

    def fleet(self) -> dict[str, dict[str, Any]]:
        """Every device's registration info and raw latest-values hash in two round trips:
        device -> {"info": {...}, "latest": {series key: value text, "__ts": ...}}."""
        reg = self.registry()
        devices = sorted(reg.devices)
        pipe = self.r.pipeline(transaction=False)
        for device in devices:
            pipe.getrange(self.keys(device).info, 0, registry.MAX_ENTRY_BYTES)
        infos = pipe.execute() if devices else []
        latest = self._bounded_latest(devices)
        return {device: {"info": registry.merge_reported(reg.devices[device], device, infos[i]),
                         "latest": latest[i]}
                for i, device in enumerate(devices)}

    def delete_prefix(self) -> int:
        """Remove every key under this store's prefix (tests; never FLUSHALL)."""
        removed = 0
        for key in self.r.scan_iter(match=f"{self.prefix}*", count=1000):
            removed += self.r.delete(key)
        return removed

