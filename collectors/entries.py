"""What a stream entry must look like, checked on the way in (ingest) and on the way out (readers).

A record is trusted only after `problem(record)` found nothing: a JSON object with a finite `ts`, a
non-empty `source`, exactly one known body (values/state/request/event) that is an object, finite
numbers as values, an `event` with a string `kind`, at most MAX_RECORD_BYTES once encoded. Ingest
(`TelemetryStore.publish`) skips and counts what fails (`ingest_rejected_total` in the device's
latest hash); readers skip entries that fail (written around the store, by hand or by an old
version) and log each one once, so one bad entry never poisons a device's rules, charts or APIs.

This is about shape only; bounds on what a device may claim belong to the fleet-trust checks.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable
from typing import Any

from collectors.recording import KINDS, dumps

log = logging.getLogger(__name__)


def _env_int(name: str, default: int) -> int:
    try:
        return max(1024, int(os.environ.get(name, "") or default))
    except ValueError:
        return default


# A values record of ~10,000 series is ~400 KB; anything past 1 MiB is refused whole.
MAX_RECORD_BYTES = _env_int("THOXDASH_MAX_RECORD_BYTES", 1 << 20)
_logged: set[str] = set()  # entry ids already reported by this process (bounded below)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def problem(record: Any, rollup: bool = False) -> str | None:
    """Why this record cannot be stored or used, or None when its shape is right. Rollup records
    (`{"ts", "step", "values"}`, written by the server) carry a step instead of a source."""
    if not isinstance(record, dict):
        return f"not an object ({type(record).__name__})"
    if not _finite(record.get("ts")):
        return f"'ts' is not a finite number ({str(record.get('ts'))[:40]!r})"
    if rollup:
        if not _finite(record.get("step")):
            return "'step' is not a finite number"
    elif not isinstance(record.get("source"), str) or not record["source"]:
        return "'source' is not a non-empty string"
    kinds = [k for k in KINDS if k in record]
    if len(kinds) != 1:
        return "needs exactly one of values/state/request/event"
    body = record[kinds[0]]
    if not isinstance(body, dict):
        return f"'{kinds[0]}' is not an object"
    if kinds[0] == "values":
        for key, value in body.items():
            if not _finite(value):
                return f"value of {str(key)[:80]!r} is not a finite number"
    elif kinds[0] == "event" and not isinstance(body.get("kind"), str):
        return "'event' needs a string 'kind'"
    return None


def encode(record: Any) -> tuple[str | None, str]:
    """(the entry text, "") for a good record, (None, why) for one ingest must refuse."""
    why = problem(record)
    if why:
        return None, why
    try:
        text = dumps(record)  # also refuses NaN/Infinity nested anywhere
    except (TypeError, ValueError) as exc:
        return None, f"not encodable as JSON ({exc})"
    if len(text) > MAX_RECORD_BYTES:
        return None, f"{len(text)} bytes, over the {MAX_RECORD_BYTES}-byte limit"
    return text, ""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class BadEntry(ValueError):
    """A stream entry that is not a usable record."""


def decode(fields: dict[str, str], rollup: bool = False) -> dict[str, Any]:
    """One stream entry's record; BadEntry (a ValueError) says what is wrong with it."""
    text = fields.get("j") if isinstance(fields, dict) else None
    if not isinstance(text, str):
        raise BadEntry("no 'j' field")
    if len(text) > MAX_RECORD_BYTES:
        raise BadEntry(f"{len(text)} bytes, over the {MAX_RECORD_BYTES}-byte limit")
    try:
        record = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        raise BadEntry(f"not JSON ({exc})") from None
    why = problem(record, rollup)
    if why:
        raise BadEntry(why)
    checked: dict[str, Any] = record
    return checked


def decode_all(entries: Iterable[tuple[str, dict[str, str]]], where: str = "",
               rollup: bool = False) -> list[dict[str, Any]]:
    """The usable records of (entry id, fields) pairs, in order; bad ones skipped and logged once."""
    out = []
    for entry_id, fields in entries:
        try:
            out.append(decode(fields, rollup))
        except BadEntry as exc:
            report(f"{where}/{entry_id}", str(exc))
    return out


def report(what: str, why: str) -> None:
    if what in _logged:
        return
    if len(_logged) > 10_000:
        _logged.clear()
    _logged.add(what)
    log.warning("skipped a bad stream entry %s: %s", what, why)
