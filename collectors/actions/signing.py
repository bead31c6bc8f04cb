"""HMAC-SHA256 signing of action requests.

A request is a JSON object; its signature is HMAC-SHA256(key, canonical JSON) in hex, where the
canonical JSON has sorted keys, no spaces and ASCII escapes. The stream entry carries the
canonical text in field `j` and the signature in field `sig`, so the agent verifies exactly the
bytes it parses.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

VERSION = 1
DEFAULT_TTL_S = 300.0
CLOCK_SKEW_S = 30.0
REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{7,63}$")
# Per-device keys: the server holds one master secret and signs a device's requests with
# HMAC-SHA256(master, KEY_CONTEXT + device id); each device holds only its own derived key, so a key
# taken from one device signs nothing another device accepts.
KEY_CONTEXT = "thoxdash-action-key:v1:"
MIN_KEY_CHARS = 16


def derive_key(master: str, device: str) -> str:
    if not master:
        raise ValueError("no master key: set THOXDASH_AGENT_MASTER_KEY on the server")
    return hmac.new(master.encode(), (KEY_CONTEXT + device).encode(), hashlib.sha256).hexdigest()


def read_secret(env: Mapping[str, str], name: str) -> str:
    """A secret from `NAME` or from the file named by `NAME_FILE` (systemd credentials, Docker
    secrets): never from the command line."""
    path = env.get(f"{name}_FILE", "")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ValueError(f"{name}_FILE={path}: {exc.strerror or exc}") from None
    return env.get(name, "").strip()


def agent_keys(env: Mapping[str, str] | None = None, now: float | None = None) -> list[str]:
    """The keys this agent accepts: THOXDASH_AGENT_KEY (its own derived key) and, during a key
    rotation, THOXDASH_AGENT_KEY_PREVIOUS until THOXDASH_AGENT_KEY_PREVIOUS_UNTIL (Unix time)."""
    env = os.environ if env is None else env
    now = time.time() if now is None else now
    keys = [k for k in (read_secret(env, "THOXDASH_AGENT_KEY"),) if k]
    if any("change-me" in k.lower() for k in keys):
        raise ValueError("THOXDASH_AGENT_KEY still holds the example's placeholder: use the device's own key "
                         "(manage.py enroll_device on the server)")
    previous = read_secret(env, "THOXDASH_AGENT_KEY_PREVIOUS")
    if previous:
        try:
            until = float(env.get("THOXDASH_AGENT_KEY_PREVIOUS_UNTIL", ""))
        except ValueError:
            until = -math.inf  # a previous key without an end is not accepted
        if now <= until:
            keys.append(previous)
    return keys


class Rejected(ValueError):
    """The agent refuses a request; the message is the reason written to action_results.

    `authentic` is the request when its signature was valid (so its id can be trusted)."""

    def __init__(self, reason: str, authentic: dict[str, Any] | None = None):
        super().__init__(reason)
        self.authentic = authentic


def canonical(message: dict[str, Any]) -> str:
    return json.dumps(message, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def signature(text: str, key: str) -> str:
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()


def new_request_id() -> str:
    return secrets.token_hex(12)


def build(device: str, action: str, params: dict[str, Any], *, request_id: str | None = None,
          origin: str = "user", requested_by: str = "", ttl_s: float = DEFAULT_TTL_S,
          dry_run: bool = False, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    return {"v": VERSION, "id": request_id or new_request_id(), "device": device, "action": action,
            "params": params, "origin": origin, "requested_by": requested_by, "dry_run": dry_run,
            "issued_at": round(now, 3), "expires_at": round(now + ttl_s, 3)}


def sign(message: dict[str, Any], key: str) -> dict[str, str]:
    """The stream entry fields for a request."""
    if not key:
        raise ValueError("THOXDASH_AGENT_KEY is not set: actions cannot be signed")
    text = canonical(message)
    return {"j": text, "sig": signature(text, key)}


def verify(fields: dict[str, str], key: str | Sequence[str], device: str,
           now: float | None = None) -> dict[str, Any]:
    """Return the request when its signature (by `key`, or any of a list of keys during a
    rotation), device and validity window check out; else Rejected."""
    now = time.time() if now is None else now
    keys = [key] if isinstance(key, str) else list(key)
    keys = [k for k in keys if k]
    if not keys:
        raise Rejected("agent has no THOXDASH_AGENT_KEY: every action is refused")
    text, sig = fields.get("j"), fields.get("sig")
    if not text:
        raise Rejected("malformed: no request body")
    if not sig:
        raise Rejected("unsigned request")
    if not any(hmac.compare_digest(signature(text, k), str(sig)) for k in keys):
        raise Rejected("bad signature: the request was tampered with or signed with another key")
    try:
        message = json.loads(text)
    except ValueError:
        raise Rejected("malformed: body is not JSON") from None
    if not isinstance(message, dict) or message.get("v") != VERSION:
        raise Rejected(f"unsupported request version (want {VERSION})")
    if not isinstance(message.get("id"), str) or not REQUEST_ID.match(message["id"]):
        raise Rejected("malformed: invalid request id")
    if message.get("device") != device:
        raise Rejected(f"request is for device {message.get('device')!r}, not {device!r}")
    issued, expires = message.get("issued_at"), message.get("expires_at")
    if not isinstance(issued, (int, float)) or not isinstance(expires, (int, float)):
        raise Rejected("malformed: issued_at/expires_at missing", message)
    if issued > now + CLOCK_SKEW_S:
        raise Rejected("issued in the future: check the clocks of server and device", message)
    if expires < now:
        raise Rejected(f"expired {now - expires:.0f} s ago", message)
    if not isinstance(message.get("params"), dict):
        raise Rejected("malformed: params must be an object", message)
    return message
