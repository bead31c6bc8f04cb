"""The ThoxDash recording format (JSONL): input of replay and evaluate, output of record.

One JSON object per line. Optional header first:
  {"thoxdash_recording": 1, "device": ..., "board": {...}, "config": {...}, "notes": ...}
then records in time order, each with `ts` (epoch seconds) and `source`:
  values  -- {"ts", "source", "values": {series_key: number}}
  state   -- {"ts", "source": "tuning", "state": {...}}
  request -- {"ts", "source": "request", "request": {...}}
  event   -- {"ts", "source": "event", "event": {"kind": ..., ...}}
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from collectors.series import SeriesKeyError, normalize_series_key

FORMAT_VERSION = 1
KINDS = ("values", "state", "request", "event")


class RecordingError(ValueError):
    """A recording line that cannot be used; names the file and line number."""

    def __init__(self, message: str, *, line: int | None = None, path: str | None = None):
        self.line = line
        self.path = path
        where = ""
        if path:
            where += f"{path}:"
        if line is not None:
            where += f"line {line}: "
        elif where:
            where += " "
        super().__init__(f"{where}{message}")


@dataclass
class Recording:
    header: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def config(self) -> dict[str, Any]:
        return self.header.get("config") or {}

    @property
    def device(self) -> str | None:
        return self.header.get("device")


def record_kind(record: dict[str, Any]) -> str:
    for kind in KINDS:
        if kind in record:
            return kind
    raise RecordingError("record has none of values/state/request/event")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_record(obj: Any) -> dict[str, Any]:
    """Check one record's shape; return it with series keys in canonical form."""
    if not isinstance(obj, dict):
        raise RecordingError(f"expected a JSON object, got {type(obj).__name__}")
    ts = obj.get("ts")
    if not _number(ts):
        raise RecordingError(f"'ts' must be a finite number of epoch seconds, got {ts!r}")
    if not isinstance(obj.get("source"), str) or not obj["source"]:
        raise RecordingError("'source' must be a non-empty string")
    kind = record_kind(obj)
    body = obj[kind]
    if not isinstance(body, dict):
        raise RecordingError(f"'{kind}' must be an object")
    if kind == "values":
        values: dict[str, float] = {}
        for key, value in body.items():
            if not _number(value):
                raise RecordingError(f"value of {key!r} must be a finite number, got {value!r}")
            try:
                values[normalize_series_key(key)] = value
            except SeriesKeyError as exc:
                raise RecordingError(str(exc)) from None
        obj = {**obj, "values": values}
    elif kind == "event" and not isinstance(body.get("kind"), str):
        raise RecordingError("'event' needs a string 'kind'")
    return cast("dict[str, Any]", obj)


def parse_line(text: str, *, line: int | None = None, path: str | None = None) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordingError(f"invalid JSON ({exc.msg} at column {exc.colno})", line=line, path=path) from None
    try:
        return validate_record(obj)
    except RecordingError as exc:
        raise RecordingError(str(exc), line=line, path=path) from None


def iter_lines(stream: Iterable[str | bytes], path: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line_number, object) for a recording; the header is yielded as-is (unvalidated)."""
    for number, raw in enumerate(stream, start=1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise RecordingError("not valid UTF-8", line=number, path=path) from None
        text = raw.strip()
        if not text:
            continue
        if number == 1 or text.startswith('{"thoxdash_recording"'):
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise RecordingError(f"invalid JSON ({exc.msg} at column {exc.colno})", line=number,
                                     path=path) from None
            if isinstance(obj, dict) and "thoxdash_recording" in obj:
                if obj["thoxdash_recording"] != FORMAT_VERSION:
                    raise RecordingError(f"unsupported recording version {obj['thoxdash_recording']!r}",
                                         line=number, path=path)
                yield number, obj
                continue
        yield number, parse_line(text, line=number, path=path)


def load(path: str | Path) -> Recording:
    """Read a whole recording; RecordingError names the bad line."""
    path = Path(path)
    recording = Recording()
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise RecordingError(f"cannot open: {exc.strerror}", path=str(path)) from None
    with handle:
        last_ts = -math.inf
        for number, obj in iter_lines(handle, path=str(path)):
            if "thoxdash_recording" in obj:
                recording.header = obj
                continue
            if obj["ts"] < last_ts:
                raise RecordingError(f"records must be in time order (ts {obj['ts']} < {last_ts})", line=number,
                                     path=str(path))
            last_ts = obj["ts"]
            recording.records.append(obj)
    return recording


def dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def write(handle: IO[str], header: dict[str, Any] | None, records: Iterable[dict[str, Any]]) -> int:
    count = 0
    if header is not None:
        handle.write(dumps({"thoxdash_recording": FORMAT_VERSION, **header}) + "\n")
    for record in records:
        handle.write(dumps(record) + "\n")
        count += 1
    return count
