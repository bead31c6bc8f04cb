"""Passive latency: scrape a runtime's own counters when no proxy can sit in the request path.

Into the same series the latency proxy publishes (collectors.proxy.series), as means over each
scrape interval (Δsum / Δcount between two reads; the first read is the baseline). Which of a
runtime's metrics map to which series is its kind's `scrape` (collectors/runtimes/<kind>.py); the
kinds that have one are `collectors.runtimes.scrape_kinds()`. Readings of a runtime's /metrics are
shared with the runtimes source within one agent tick (some runtimes reset their gauges on every
read). Extra series: requests_total{model,runtime} (the runtime's counter),
request_compute_seconds, runtime_iteration_seconds, latency_scrape_up{runtime}.

Configured like the runtimes source: entries of the THOXDASH_AGENT_RUNTIMES file with
`"scrape_latency": true` (and a `url`) get one of these sources each.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collectors.runtimes import RuntimeApiError, client_for, get_kind, scrape_kinds
from collectors.runtimes.base import SHARED
from collectors.runtimes.scrape import Scrape
from collectors.sources.base import Source, values_record


@dataclass
class LatencyScrapeSource(Source):
    url: str = ""
    kind: str = ""
    runtime: str = ""
    model: str = ""           # label for single-model servers
    timeout: float = 2.0
    name: str = "latency_scrape"
    _scrape: Scrape | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        found = get_kind(self.kind)
        self.kind = found.name if found is not None else self.kind
        self.runtime = self.runtime or self.kind
        if self.name == "latency_scrape":
            self.name = f"latency_scrape:{self.runtime}"

    def available(self) -> bool:
        return bool(self.url) and self.kind in scrape_kinds()

    def close(self) -> None:
        if self._scrape is not None:
            self._scrape.client.close()
            self._scrape = None

    def _state(self) -> Scrape:
        if self._scrape is None:
            self._scrape = Scrape(client_for(self.kind, self.url, self.timeout), self.runtime, self.model)
        return self._scrape

    def collect(self, now: float) -> list[dict[str, Any]]:
        values: dict[str, float | None] = {}
        error = ""
        sc = self._state()
        kind = get_kind(self.kind)
        try:
            if kind is None or kind.scrape is None:
                raise ValueError(f"no latency scrape for runtime kind {self.kind!r}")
            with SHARED.tick(now):
                kind.scrape(sc, values)
            up = 1.0
        except (RuntimeApiError, ValueError, KeyError, TypeError, AttributeError) as exc:
            sc.prev.clear()
            up = 0.0
            values = {}
            message = exc.message if isinstance(exc, RuntimeApiError) else str(exc)
            error = f"{exc.__class__.__name__}: {message}"[:300]
        values[sc.key("latency_scrape_up")] = up
        records = [values_record(now, self.name, values)]
        if not up:
            records.append({"ts": now, "source": self.name,
                            "state": {f"latency_scrape_error:{self.runtime}": error}})
        return records


def latency_sources(root: Path, interval: Callable[[str], float]) -> list[Source]:
    """One scraper per runtime entry with `"scrape_latency": true` in THOXDASH_AGENT_RUNTIMES."""
    path = os.environ.get("THOXDASH_AGENT_RUNTIMES")
    if not path:
        return []
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []  # the runtimes source reports a bad file
    out: list[Source] = []
    for entry in config.get("runtimes", []) if isinstance(config, dict) else []:
        if not isinstance(entry, dict) or not entry.get("scrape_latency") or not entry.get("url"):
            continue
        kind = get_kind(str(entry.get("kind") or entry.get("name")))
        if kind is not None and kind.scrape is not None:
            out.append(LatencyScrapeSource(root=root, interval=interval("latency_scrape"), url=entry["url"],
                                           kind=kind.name, runtime=str(entry.get("name") or kind.name),
                                           model=str(entry.get("model") or "")))
    return out
