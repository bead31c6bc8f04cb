"""The device registry: which devices the server knows, read defensively.

`{prefix}devices` is a hash device id -> JSON object. It is written by the server when a device is
enrolled (`manage.py enroll_device`, the Settings page; in development also by a local agent whose
Redis user may write it). In a fleet deployment device users have no access to it (deploy/redis ACL
patterns): a device writes only `{prefix}dev:{its id}:*`.

Every reader goes through `read()`: an entry whose field is not a valid device id or whose value is
not a JSON object of the expected shape is skipped and reported (`Registry.problems`, one log line
per new problem), never raised, so one junk entry cannot take a page down. Plain functions, no
Django.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from collectors.keys import DEVICE_ID, GlobalKeys

log = logging.getLogger(__name__)

MAX_ENTRY_BYTES = 16_384      # one registry value
MAX_DEVICES = 20_000          # entries read; more are reported, not served
MAX_TEXT = 512                # a string inside board/kind
MAX_NOTES = 2_000
MAX_BOARD_KEYS = 64
TEXT_FIELDS = ("kind", "notes", "enrolled_by")
NUMBER_FIELDS = ("enrolled_at",)
BOOL_FIELDS = ("replay", "enrolled")


@dataclass
class Registry:
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


_reported: set[str] = set()


def report(problems: list[str]) -> None:
    new = [p for p in problems if p not in _reported]
    if new:
        if len(_reported) > 10_000:
            _reported.clear()
        _reported.update(new[:1000])
        log.warning("device registry: skipped %d invalid entr%s: %s", len(new), "y" if len(new) == 1 else "ies",
                    "; ".join(new[:5]) + (" ..." if len(new) > 5 else ""))


def _text(value: Any, limit: int) -> str | None:
    if isinstance(value, str):
        return value[:limit]
    if isinstance(value, (int, float, bool)):
        return str(value)[:limit]
    return None


def clean_board(board: Any) -> dict[str, Any]:
    """A board description: a flat object of short strings and numbers; anything else dropped."""
    if not isinstance(board, dict):
        return {}
    out: dict[str, Any] = {}
    for k, v in list(board.items())[:MAX_BOARD_KEYS]:
        if not isinstance(k, str) or len(k) > 64:
            continue
        if isinstance(v, bool) or v is None:
            out[k] = v
        elif isinstance(v, (int, float)):
            out[k] = v if v == v and abs(v) != float("inf") else None
        elif isinstance(v, str):
            out[k] = v[:MAX_TEXT]
        elif isinstance(v, (list, tuple)):
            out[k] = [x[:MAX_TEXT] if isinstance(x, str) else x for x in v[:32]
                      if isinstance(x, (str, int, float, bool)) and not (isinstance(x, float) and x != x)]
    return out


def parse_entry(device: Any, text: Any) -> tuple[dict[str, Any] | None, str | None]:
    """(info, None) for a valid entry, else (None, why)."""
    if not isinstance(device, str) or not DEVICE_ID.match(device):
        return None, f"invalid device id {str(device)[:80]!r}"
    if not isinstance(text, str) or len(text) > MAX_ENTRY_BYTES:
        return None, f"{device}: entry larger than {MAX_ENTRY_BYTES} bytes"
    try:
        raw = json.loads(text) if text else {}
    except ValueError:
        return None, f"{device}: entry is not JSON"
    if not isinstance(raw, dict):
        return None, f"{device}: entry is {type(raw).__name__}, not an object"
    info: dict[str, Any] = {"board": clean_board(raw.get("board"))}
    for name in TEXT_FIELDS:
        if raw.get(name) is not None:
            value = _text(raw[name], MAX_NOTES if name == "notes" else MAX_TEXT)
            if value is not None:
                info[name] = value
    for name in NUMBER_FIELDS:
        value = raw.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            info[name] = float(value)
    for name in BOOL_FIELDS:
        if isinstance(raw.get(name), bool):
            info[name] = raw[name]
    return info, None


def read_raw(raw: dict[str, Any]) -> Registry:
    """Validate a registry hash as HGETALL returned it."""
    reg = Registry()
    for n, (device, text) in enumerate(sorted(raw.items(), key=lambda kv: str(kv[0]))):
        if n >= MAX_DEVICES:
            reg.problems.append(f"{len(raw) - MAX_DEVICES} entries beyond the {MAX_DEVICES}-device limit")
            break
        info, why = parse_entry(device, text)
        if info is None:
            reg.problems.append(why or "invalid entry")
        else:
            reg.devices[device] = info
    if reg.problems:
        report(reg.problems)
    return reg


def merge_reported(info: dict[str, Any], device: str, reported: Any) -> dict[str, Any]:
    """The registry entry plus what the device reports about itself in its own `dev:{id}:info` key
    (its board, where the enrollment gave none); a malformed report is skipped and reported."""
    if not reported:
        return info
    parsed, why = parse_entry(device, reported)
    if parsed is None:
        report([f"{device}: its info key: {why}"])
        return info
    if parsed.get("board") and not info.get("board"):
        info = {**info, "board": parsed["board"]}
    return info


# What a device's Redis user may do (deploy/redis/thoxdash.acl.example and deploy/install.sh write
# the same rule; tests/test_fleet_trust.py checks all three agree): only its own keys, only the
# commands the agent and the proxy use. No access to the registry hash or another device's keys.
DEVICE_COMMANDS = ("+@connection +ping +set +xadd +xrange +xrevrange +xlen +xreadgroup +xgroup|create +xack "
                   "+xautoclaim +hset +hsetnx +hget +hgetall +hdel +hkeys")


def acl_rules(device: str, prefix: str = "thox:") -> str:
    if not DEVICE_ID.match(device or ""):
        raise ValueError(f"invalid device id {device!r}")
    return f"resetkeys ~{prefix}dev:{device}:* resetchannels -@all {DEVICE_COMMANDS}"


def acl_line(device: str, password: str, prefix: str = "thox:") -> str:
    """The ACL file line of a device's Redis user `agent-<id>` (password stored as its SHA-256)."""
    digest = hashlib.sha256(password.encode()).hexdigest()
    return f"user agent-{device} on #{digest} {acl_rules(device, prefix)}"


def key(prefix: str) -> str:
    return GlobalKeys(prefix).devices


def read(client: Any, prefix: str) -> Registry:
    return read_raw(client.hgetall(key(prefix)))


def enroll(client: Any, prefix: str, device: str, *, notes: str = "", by: str = "", now: float = 0.0,
           board: dict[str, Any] | None = None) -> dict[str, Any]:
    """Add (or update) a device in the server-owned registry; returns its entry."""
    if not DEVICE_ID.match(device or ""):
        raise ValueError(f"invalid device id {device!r}: use 1-64 letters, digits, '.', '_' or '-'")
    current, _ = parse_entry(device, client.hget(key(prefix), device) or "{}")
    info = current or {"board": {}}
    info.update({"enrolled": True, "enrolled_by": by[:MAX_TEXT]})
    if now:
        info.setdefault("enrolled_at", float(now))
    if notes:
        info["notes"] = notes[:MAX_NOTES]
    if board:
        info["board"] = clean_board(board)
    client.hset(key(prefix), device, json.dumps(info, sort_keys=True, separators=(",", ":")))
    return info


def remove(client: Any, prefix: str, device: str) -> bool:
    return bool(client.hdel(key(prefix), device))
