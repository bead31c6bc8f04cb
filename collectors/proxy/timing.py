"""Per-request timing extraction from a response body, fed chunk by chunk as it streams.

Framings: `ndjson` (e.g. Ollama /api/*), `sse` (OpenAI-compatible servers),
`json` (a non-streaming body), `raw` (anything else: only sizes and times are kept).
Framing is generic; what each JSON object means is each runtime kind's response shape
(`RuntimeKind.shape` in collectors/runtimes/<kind>.py: Ollama's `done: true` durations, OpenAI's
`choices`/`usage`, a runtime's own `timings`), all of them tried on every object. Generic here:
`model`, and errors `{"error": "..."}` or `{"error": {"message": ...}}`, also mid-stream at 200.

Bad input (invalid JSON, non-UTF-8, lines over `max_line` bytes) is counted as a parse error and
never raises: the bytes themselves are forwarded by the proxy untouched whatever happens here.

`defer=True` (what the proxy uses) keeps the event loop out of parsing: `feed` only notes each
chunk and its arrival time, `close` only notes the end, and the parsing runs when `finalize()` is
called (by `request_fields`, in the publisher thread, after the response has gone out). The result
is the same as parsing as it streams, since every chunk keeps its own time. A stream that holds
more than `defer_max` unparsed bytes is parsed on the spot, so memory stays bounded.
"""

from __future__ import annotations

import json
from typing import Any

from collectors.runtimes import SHAPES
from collectors.runtimes.kind import Times

MAX_LINE = 1 << 20  # an NDJSON line / SSE event larger than this is not parsed
MAX_JSON_BODY = 16 << 20  # a non-streaming body larger than this is not parsed
DEFER_MAX = 256 << 10  # unparsed bytes a deferred stream may hold before it is parsed

# the C scanner, without json.loads' wrappers
_scan_once = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_OBSERVERS = tuple(shape.observe for shape in SHAPES)  # every runtime kind's response parser


def framing_for(content_type: str | None, content_encoding: str | None = None) -> str:
    """Which framing a response uses, from its headers."""
    if content_encoding and content_encoding.lower() not in ("identity", ""):
        return "raw"  # compressed: pass through, do not parse
    ct = (content_type or "").split(";", 1)[0].strip().lower()
    if ct == "text/event-stream":
        return "sse"
    if ct in (
        "application/x-ndjson",
        "application/jsonl",
        "application/json-seq",
        "application/ndjson",
    ):
        return "ndjson"
    if ct == "application/json" or ct.endswith("+json"):
        return "json"
    return "raw"


def _error_text(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("message") or value.get("type") or json.dumps(value)[:300]
    return str(value)[:500]


class StreamTiming:
    """Feed it a response body's chunks with their arrival times (perf_counter seconds)."""

    def __init__(
        self,
        framing: str,
        max_line: int = MAX_LINE,
        max_body: int = MAX_JSON_BODY,
        defer: bool = False,
        defer_max: int = DEFER_MAX,
    ):
        self.framing = framing
        self.max_line = max_line
        self.max_body = max_body
        self.bytes = 0
        self.chunks = 0
        self.first_byte_t: float | None = None
        self.first_output_t: float | None = None
        self.last_output_t: float | None = None
        self.output_chunks = 0
        self.seen: dict[str, Any] = {}  # what the response shapes kept (collectors.runtimes)
        self.model: str | None = None
        self.error: str | None = None
        self.parse_errors = 0
        self.parse_error: str | None = None
        self.sse_done = False
        self.objects = 0
        self._buf = b""
        self._skip = False
        self._event: list[bytes] = []
        self._event_size = 0
        self._event_type = b""
        self._body: list[bytes] | None = [] if framing == "json" else None
        # deferred parsing: chunks (with their times) not parsed yet, and the end time once closed
        self._deferred: list[tuple[bytes, float]] | None = (
            [] if defer and framing in ("ndjson", "sse", "json") else None
        )
        self._deferred_bytes = 0
        self._defer_max = defer_max
        self._closed_t: float | None = None

    @property
    def done_reason(self) -> str | None:
        reason = self.seen.get("done_reason")
        return reason if isinstance(reason, str) else None

    # -- feeding ---------------------------------------------------------------------------
    def feed(self, data: bytes, t: float) -> None:
        if not data:
            return
        if self._deferred is not None:
            self._deferred.append((data, t))
            self._deferred_bytes += len(data)
            if self._deferred_bytes > self._defer_max:
                self._drain()
            return
        self._feed(data, t)

    def close(self, t: float) -> None:
        """End of body: parse what is left (a last line without newline, a JSON body)."""
        if self._deferred is not None:
            self._closed_t = t
            return
        self._close(t)

    def finalize(self) -> StreamTiming:
        """Parse whatever `defer` held back (idempotent; call once the stream is over)."""
        if self._deferred is not None:
            self._drain()
            self._deferred = None
            if self._closed_t is not None:
                self._close(self._closed_t)
        return self

    def _drain(self) -> None:
        pending = self._deferred
        if pending:
            self._deferred = []
            self._deferred_bytes = 0
            for data, t in pending:
                self._feed(data, t)

    def _feed(self, data: bytes, t: float) -> None:
        self.bytes += len(data)
        self.chunks += 1
        if self.first_byte_t is None:
            self.first_byte_t = t
        try:
            if self.framing == "ndjson" or self.framing == "sse":
                self._lines(data, t)
            elif self._body is not None:
                if self.bytes > self.max_body:
                    self._bad(f"body over {self.max_body} bytes, not parsed")
                    self._body = None
                else:
                    self._body.append(data)
        except Exception as exc:  # pragma: no cover - defensive: parsing must never break serving
            self._bad(f"{exc.__class__.__name__}: {exc}")

    def _close(self, t: float) -> None:
        try:
            if self.framing == "ndjson":
                if self._buf.strip() and not self._skip:
                    self._ndjson_line(self._buf, t)
            elif self.framing == "sse":
                if self._buf.strip() and not self._skip:
                    self._sse_line(self._buf.rstrip(b"\r"), t)
                if self._event:
                    self._sse_dispatch(t)
            elif self._body is not None and self.bytes:
                body = b"".join(self._body)
                self._body = None
                obj = self._loads(body)
                if obj is not None:
                    self._object(obj, t, streaming=False)
        except Exception as exc:  # pragma: no cover - defensive
            self._bad(f"{exc.__class__.__name__}: {exc}")
        self._buf = b""

    def _bad(self, message: str) -> None:
        self.parse_errors += 1
        if self.parse_error is None:
            self.parse_error = message[:300]

    def _lines(self, data: bytes, t: float) -> None:
        buf = self._buf + data if self._buf else data
        start = 0
        line_fn = self._ndjson_line if self.framing == "ndjson" else self._sse_line
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            if self._skip:
                self._skip = False
            else:
                end = nl - 1 if nl > start and buf[nl - 1] == 13 else nl  # strip \r
                line_fn(buf[start:end], t)
            start = nl + 1
        rest = buf[start:] if start else buf
        if self._skip:
            rest = b""
        elif len(rest) > self.max_line:
            self._bad(f"line over {self.max_line} bytes, not parsed")
            self._skip = True
            rest = b""
        self._buf = rest

    def _loads(self, raw: bytes) -> Any:
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            self._bad("not valid UTF-8")
            return None
        try:
            obj, end = _scan_once(text, 0)
        except StopIteration as exc:
            self._bad(f"invalid JSON: no value at column {exc.value + 1}")
            return None
        except ValueError as exc:
            self._bad(f"invalid JSON: {exc}")
            return None
        if end != len(text):
            self._bad(f"invalid JSON: extra data at column {end + 1}")
            return None
        return obj

    # -- NDJSON ------------------------------------------------------------------------------
    def _ndjson_line(self, line: bytes, t: float) -> None:
        if not line.strip():
            return
        obj = self._loads(line)
        if obj is not None:
            self._object(obj, t, streaming=True)

    # -- SSE ---------------------------------------------------------------------------------
    def _sse_line(self, line: bytes, t: float) -> None:
        if not line:
            if self._event:
                self._sse_dispatch(t)
            self._event_type = b""
            return
        if line[:1] == b":":
            return  # comment / ping
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            self._event_size += len(value)
            if self._event_size > self.max_line:
                if self._event_size - len(value) <= self.max_line:
                    self._bad(f"event over {self.max_line} bytes, not parsed")
                self._event = [b""]
                return
            self._event.append(value)
        elif field == b"event":
            self._event_type = value.strip()

    def _sse_dispatch(self, t: float) -> None:
        data = b"\n".join(self._event)
        oversized = self._event_size > self.max_line
        self._event = []
        self._event_size = 0
        if oversized:
            return
        if data.strip() == b"[DONE]":
            self.sse_done = True
            return
        obj = self._loads(data)
        if obj is None:
            return
        if self._event_type == b"error" and isinstance(obj, dict) and "error" not in obj:
            obj = {"error": obj}
        self._object(obj, t, streaming=True)

    # -- one JSON object, any runtime's shape ---------------------------------------------
    def _object(self, obj: Any, t: float, streaming: bool) -> None:
        if not isinstance(obj, dict):
            self._bad(f"expected a JSON object, got {type(obj).__name__}")
            return
        self.objects += 1
        if "error" in obj and obj["error"] and self.error is None:
            self.error = _error_text(obj["error"])
        model = obj.get("model")
        if isinstance(model, str) and model and self.model is None:
            self.model = model
        seen = self.seen
        output = False
        for observe in _OBSERVERS:
            if observe(obj, seen):
                output = True
        if output:
            self.output_chunks += 1
            if streaming:
                if self.first_output_t is None:
                    self.first_output_t = t
                self.last_output_t = t


def request_fields(st: StreamTiming, t_forward: float, t_end: float) -> dict[str, Any]:
    """The timing part of a `request` record (fields the response did not reveal are omitted)."""
    st.finalize()
    out: dict[str, Any] = {}
    if st.first_output_t is not None:
        out["ttft_s"] = round(st.first_output_t - t_forward, 6)
    times = Times(t_forward, st.first_byte_t, st.first_output_t, st.last_output_t,
                  st.framing in ("ndjson", "sse"), st.output_chunks)
    for shape in SHAPES:
        shape.fields(st.seen, out, times)
    if "completion_tokens" not in out and st.output_chunks and st.first_output_t is not None:
        out["completion_tokens"] = st.output_chunks  # one token per chunk: an estimate
        out["tokens_estimated"] = True
    if (
        "completion_s" not in out
        and st.first_output_t is not None
        and st.last_output_t is not None
        and st.output_chunks > 1
    ):
        # first..last output spans n-1 token intervals: scale to n tokens
        span = st.last_output_t - st.first_output_t
        n = out.get("completion_tokens") or st.output_chunks
        if span > 0 and n > 1:
            out["completion_s"] = round(span * n / (n - 1), 6)
    tokens, secs = out.get("completion_tokens"), out.get("completion_s")
    if tokens and secs:
        out["completion_tokens_per_s"] = round(tokens / secs, 3)
    if st.done_reason:
        out["done_reason"] = st.done_reason
    if st.error:
        out["error"] = st.error
    if st.parse_errors:
        out["parse_errors"] = st.parse_errors
        out["parse_error"] = st.parse_error
    out["response_bytes"] = st.bytes
    return out
