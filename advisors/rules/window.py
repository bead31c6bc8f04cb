"""A rule's view of a device: recent series, requests, events and state, as of `now`."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from collectors.bounds import MAX_SERIES_PER_DEVICE, clean_state, series_key_ok
from collectors.series import parse_series_key

_parse = lru_cache(maxsize=65536)(parse_series_key)


@dataclass
class Window:
    now: float
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    # Rule memory carried from one cycle to the next (e.g. throughput baselines that must outlive
    # the window). Each rule owns one key; the engine keeps it in process, the live path in Redis.
    memo: dict[str, Any] = field(default_factory=dict)
    # When the device last sent anything (any record; live also its latest-values hash), kept when
    # the points leave the window: device_down measures silence from it.
    last_seen: float | None = None

    @classmethod
    def from_records(cls, now: float, records: Iterable[dict[str, Any]]) -> Window:
        window = cls(now=now)
        for record in records:
            window.add(record)
        return window

    def add(self, record: dict[str, Any]) -> None:
        ts = record["ts"]
        if self.last_seen is None or ts > self.last_seen:
            self.last_seen = ts
        if "values" in record:
            # only what a device may claim (collectors/bounds.py): finite numbers, no reserved
            # names, a bounded number of series per device (inlined: this is the rules' hot path)
            series = self.series
            for key, value in record["values"].items():
                kind = type(value)
                if not ((kind is float or kind is int) and value - value == 0 and series_key_ok(key)):
                    continue
                points = series.get(key)
                if points is None:
                    if len(series) >= MAX_SERIES_PER_DEVICE:
                        continue
                    points = series[key] = []
                points.append((ts, float(value)))
        elif "state" in record:
            self.state.update(clean_state(record["state"])[0])
        elif "request" in record:
            self.requests.append({"ts": ts, **record["request"]})
        elif "event" in record:
            self.events.append({"ts": ts, **record["event"]})

    def trim(self, since: float) -> None:
        """Drop points, requests and events older than `since` (state is kept: it is the latest)."""
        for key in list(self.series):
            points = self.series[key]
            if points and points[0][0] < since:
                cut = bisect_left(points, (since, float("-inf")))
                if cut >= len(points):
                    del self.series[key]
                else:
                    del points[:cut]
        for items in (self.requests, self.events):
            cut = 0
            while cut < len(items) and items[cut]["ts"] < since:
                cut += 1
            del items[:cut]

    def last(self, key: str) -> float | None:
        points = self.series.get(key)
        return points[-1][1] if points else None

    def points(self, key: str, since: float | None = None) -> list[tuple[float, float]]:
        points = self.series.get(key, [])
        if since is None:
            return points
        return [p for p in points if p[0] >= since]

    def by_metric(self, name: str) -> dict[str, tuple[dict[str, str], list[tuple[float, float]]]]:
        """Every series of one metric: key -> (labels, points)."""
        out = {}
        for key, points in self.series.items():
            if key == name or key.startswith(name + "{"):
                metric, labels = _parse(key)
                if metric == name:
                    out[key] = (labels, points)
        return out

    def newest_ts(self) -> float | None:
        """Time of the newest telemetry point in the window (None when there is none)."""
        newest = None
        for points in self.series.values():
            if points and (newest is None or points[-1][0] > newest):
                newest = points[-1][0]
        return newest
