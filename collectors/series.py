"""Series keys: a metric name with optional labels in Prometheus text syntax.

`runtime_memory_bytes{runtime="ollama"}` -- labels sorted by name, values escaped as in the
Prometheus exposition format (backslash, double quote, newline).
"""

from __future__ import annotations

import re

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_LABEL_PAIR = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


class SeriesKeyError(ValueError):
    """A series key that is not `name` or `name{label="value",...}`."""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append({"n": "\n", "\\": "\\", '"': '"'}.get(nxt, "\\" + nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def series_key(name: str, **labels: object) -> str:
    """Build a series key; labels are sorted by name and their values escaped."""
    if not _NAME.match(name):
        raise SeriesKeyError(f"invalid metric name {name!r}")
    if not labels:
        return name
    parts = []
    for key in sorted(labels):
        if not _LABEL_NAME.match(key):
            raise SeriesKeyError(f"invalid label name {key!r}")
        parts.append(f'{key}="{_escape(str(labels[key]))}"')
    return f"{name}{{{','.join(parts)}}}"


def parse_series_key(key: str) -> tuple[str, dict[str, str]]:
    """Split a series key into (name, labels). Raises SeriesKeyError on bad syntax."""
    if "{" not in key:
        if not _NAME.match(key):
            raise SeriesKeyError(f"invalid series key {key!r}")
        return key, {}
    name, _, rest = key.partition("{")
    if not _NAME.match(name) or not rest.endswith("}"):
        raise SeriesKeyError(f"invalid series key {key!r}")
    body = rest[:-1]
    labels: dict[str, str] = {}
    pos = 0
    while pos < len(body):
        match = _LABEL_PAIR.match(body, pos)
        if not match or match.end() == pos:
            raise SeriesKeyError(f"invalid labels in series key {key!r}")
        labels[match.group(1)] = _unescape(match.group(2))
        pos = match.end()
    return name, labels


def normalize_series_key(key: str) -> str:
    """Re-emit a key with labels sorted (the canonical form stored everywhere)."""
    name, labels = parse_series_key(key)
    return series_key(name, **labels)
