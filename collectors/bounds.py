"""What a device may claim: bounds on every value it sends, checked before anything uses it.

A fleet server trusts devices it does not control. Whatever a device's records say (an honest agent
with a bug, or a stolen device), the server reads them through these functions: CPU numbers below
4096, bounded strings, lists, objects and nesting, finite numbers, a bounded number of series per
device, and no series named like ThoxDash's own families. What fails is dropped and counted, never
trusted. The agent applies the same functions before publishing and reports what it dropped per
source (`agent_source_rejected_total`, beside `agent_source_up`). Plain functions, no Django.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any

from collectors.text import MAX_CPULIST_CHARS, MAX_CPUS, is_uint

MAX_STRING = 4_096        # characters in one string value
MAX_LIST = 4_096          # items in one list
MAX_KEYS = 4_096          # keys in one object
MAX_DEPTH = 6             # nesting of objects/lists in one state value
MAX_SERIES_PER_DEVICE = 2_000
MAX_SERIES_KEY = 512      # characters in one series key (name + labels)
MAX_STATE_FIELD_CHARS = 262_144  # JSON text of one state field; longer is not parsed
STATE_KEY = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")
# Series names a device may not use: ThoxDash's own /metrics families (`thoxdash_device_up`, ...)
# and Prometheus-internal names.
RESERVED_SERIES_PREFIXES = ("device_", "thoxdash_", "__")
# State fields that hold kernel cpulists (checked strictly: every part valid, every CPU < 4096).
CPULIST_KEYS = frozenset({"isolated_cpus", "nohz_full", "irqaffinity", "isolated", "housekeeping", "cpus"})


class Invalid(ValueError):
    """A value over a bound; the message says which."""


def cpulist_ok(text: Any) -> bool:
    """A strict kernel cpulist: parts `N` or `N-M` with N <= M < 4096, bounded length."""
    if not isinstance(text, str) or len(text) > MAX_CPULIST_CHARS:
        return False
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        if not is_uint(lo) or (sep and not is_uint(hi)) or len(lo) > 6 or len(hi) > 6:
            return False
        first, last = int(lo), int(hi) if sep else int(lo)
        if last < first or last >= MAX_CPUS:
            return False
    return True


def bounded(value: Any, depth: int = 0, key: str = "") -> Any:
    """`value` when it is JSON-like and within every bound; else Invalid."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise Invalid(f"{key or 'value'}: not a finite number")
        if isinstance(value, int) and abs(value) >= 2**63:
            raise Invalid(f"{key or 'value'}: integer out of range")
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise Invalid(f"{key or 'value'}: string longer than {MAX_STRING}")
        if key in CPULIST_KEYS and value and not cpulist_ok(value):
            raise Invalid(f"{key}: not a cpulist of CPUs below {MAX_CPUS}")
        return value
    if depth >= MAX_DEPTH:
        raise Invalid(f"{key or 'value'}: nested deeper than {MAX_DEPTH}")
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_LIST:
            raise Invalid(f"{key or 'value'}: list longer than {MAX_LIST}")
        return [bounded(v, depth + 1, key) for v in value]
    if isinstance(value, dict):
        if len(value) > MAX_KEYS:
            raise Invalid(f"{key or 'value'}: object with more than {MAX_KEYS} keys")
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or len(k) > 256:
                raise Invalid(f"{key or 'value'}: a key is not a short string")
            out[k] = bounded(v, depth + 1, k)
        return out
    raise Invalid(f"{key or 'value'}: {type(value).__name__} is not JSON")


def clean_state(state: Any) -> tuple[dict[str, Any], list[str]]:
    """(the state fields within bounds, what was dropped and why)."""
    if not isinstance(state, dict):
        return {}, [f"state is {type(state).__name__}, not an object"]
    clean: dict[str, Any] = {}
    rejected: list[str] = []
    for n, (key, value) in enumerate(state.items()):
        if n >= MAX_KEYS:
            rejected.append(f"{len(state) - MAX_KEYS} fields over the {MAX_KEYS}-field limit")
            break
        if not isinstance(key, str) or not STATE_KEY.match(key):
            rejected.append(f"invalid state field name {str(key)[:64]!r}")
            continue
        try:
            clean[key] = bounded(value, 1, key)
        except Invalid as exc:
            rejected.append(str(exc))
        except RecursionError:
            rejected.append(f"{key}: nested too deep")
    return clean, rejected


def series_reserved(key: str) -> bool:
    name = key.split("{", 1)[0]
    return name.startswith(RESERVED_SERIES_PREFIXES)


@lru_cache(maxsize=65_536)
def series_key_ok(key: Any) -> bool:
    """A series key a device may use: a short string, not a reserved name (cached: keys repeat)."""
    return isinstance(key, str) and 0 < len(key) <= MAX_SERIES_KEY and not series_reserved(key)


def clean_values(values: Any, limit: int = MAX_SERIES_PER_DEVICE) -> tuple[dict[str, float], list[str]]:
    """(the series within bounds as floats, what was dropped and why): finite numbers, short keys,
    no reserved names, at most `limit` series."""
    if not isinstance(values, dict):
        return {}, [f"values is {type(values).__name__}, not an object"]
    clean: dict[str, float] = {}
    rejected: list[str] = []
    for key, value in values.items():
        kind = type(value)
        # the common case first: a finite int/float under a known-good key (x - x is 0 only if finite)
        if (kind is float or kind is int) and value - value == 0 and series_key_ok(key) and len(clean) < limit:
            clean[key] = float(value)
            continue
        if not isinstance(key, str) or not key or len(key) > MAX_SERIES_KEY:
            rejected.append(f"invalid series key {str(key)[:64]!r}")
            continue
        if series_reserved(key):
            rejected.append(f"{key[:64]}: reserved name")
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                value = float(value)  # numeric text, as the latest hash holds it
            except (TypeError, ValueError):
                rejected.append(f"{key[:64]}: not a number")
                continue
        if not math.isfinite(value):
            rejected.append(f"{key[:64]}: not finite")
            continue
        if len(clean) >= limit:
            rejected.append(f"series over the {limit}-series limit")
            break
        clean[key] = float(value)
    return clean, rejected


def clean_latest(raw: dict[str, str], limit: int = MAX_SERIES_PER_DEVICE) -> tuple[dict[str, str], int]:
    """A raw latest-values hash (text values plus `__ts`) within bounds: (kept, dropped count)."""
    kept: dict[str, str] = {}
    dropped = series = 0
    for key, text in raw.items():
        if key == "__ts":
            kept[key] = text
            continue
        if series >= limit or not isinstance(key, str) or len(key) > MAX_SERIES_KEY or series_reserved(key):
            dropped += 1
            continue
        kept[key] = text
        series += 1
    return kept, dropped
