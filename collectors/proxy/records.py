"""From a finished exchange to recording-format records (`request`, `model_loaded`,
`model_unloaded`). The event loop only notes a `Finished`; `build_records` runs later, in the
publisher thread, where the response body is parsed (collectors.proxy.timing)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from collectors.proxy.publisher import Publisher
from collectors.proxy.timing import StreamTiming, request_fields


@dataclass(frozen=True, slots=True)
class Finished:
    """What the event loop notes at the end of an inference request."""

    req: dict[str, Any]  # runtime, model, endpoint, status, priority, error...
    stream: StreamTiming | None  # the response body, noted chunk by chunk (None: no body)
    t_forward: float  # perf_counter when the request went to the runtime
    t_end: float  # perf_counter when it ended
    ts: float  # wall clock of the end
    control: bool  # a load/unload request: events only, no `request` record


def build_records(item: Finished, runtime: str, load_event_s: float) -> list[dict[str, Any]]:
    req, st = item.req, item.stream
    if st is not None:
        req.update(request_fields(st, item.t_forward, item.t_end))
        if not req.get("model") and st.model:
            req["model"] = st.model
        if st.chunks:
            req["stream"] = st.framing in ("ndjson", "sse")
    req["total_s"] = round(item.t_end - item.t_forward, 6)
    now = item.ts
    records: list[dict[str, Any]] = []
    if not item.control:
        records.append({"ts": now, "source": "request", "request": req})
    load_s = req.get("load_s")
    if isinstance(load_s, float) and load_s >= load_event_s:
        event = {
            "kind": "model_loaded",
            "runtime": runtime,
            "model": req.get("model"),
            "load_s": load_s,
            "endpoint": req.get("endpoint"),
        }
        records.append({"ts": now, "source": "proxy", "event": event})
    if req.get("done_reason") == "unload":
        event = {"kind": "model_unloaded", "runtime": runtime, "model": req.get("model")}
        records.append({"ts": now, "source": "proxy", "event": event})
    return records


class Records:
    """Where finished exchanges go: the publisher (built there), or a list kept in memory."""

    def __init__(self, runtime: str, load_event_s: float):
        self.runtime = runtime
        self.load_event_s = load_event_s
        self.publisher: Publisher | None = None
        self.kept: list[dict[str, Any]] | None = None  # set to a list to keep records in memory

    def note(
        self, req: dict[str, Any], stream: StreamTiming | None, t_forward: float, control: bool
    ) -> None:
        item = Finished(req, stream, t_forward, time.perf_counter(), time.time(), control)
        if self.kept is not None:
            self.kept.extend(self.build(item))
        elif self.publisher is not None:
            self.publisher.add((item,))

    def build(self, item: Finished) -> list[dict[str, Any]]:
        return build_records(item, self.runtime, self.load_event_s)
