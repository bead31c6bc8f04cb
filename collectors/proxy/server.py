"""`python -m collectors proxy`: a streaming reverse proxy that records every inference request.

Drop-in in front of Ollama (/api/*) or any OpenAI-compatible server (/v1/*): requests and
responses pass through byte for byte (no decompression, no re-chunking: the upstream's chunked
framing itself is forwarded), each response chunk is written to the client from the socket
callback that received it, status codes and error bodies are the upstream's. On the side each
inference request becomes a recording-format `request` record (queue, TTFT, total, tokens, the
runtime's own timings) and a long `load_duration` a `model_loaded` event. Admission limits
(collectors.proxy.admission) are read from the store at run time.

Built on asyncio protocols (uvloop when installed) rather than a web framework: the proxy has to
stay within a fraction of a millisecond of calling the runtime directly (bench/proxy_latency.py).
Parsing and publishing can fail; serving does not. The event loop does as little as it can per
request: one that can go at once (an admission slot free, a kept-alive upstream connection idle)
is forwarded from the socket callback that completed it and seen to its end from the upstream
connection's callbacks (a FastExchange: no task, no future, and the client's next kept-alive or
pipelined request starts from the callback that delivered the last byte); response bodies
are only noted (chunks and their arrival times) and parsed later, with the record built, in the
publisher thread after the last byte has gone to the client.

Environment: THOXDASH_PROXY_PUBLISH_S (0.5), THOXDASH_PROXY_ADMISSION_S (how often limits are
re-read, 1.0), THOXDASH_PROXY_LOAD_EVENT_S (load_duration that counts as a model load, 1.0),
THOXDASH_PROXY_SPILL (outage spill folder, .run/proxy-spill), THOXDASH_REDIS_PREFIX,
THOXDASH_PROXY_SWITCH_S (the interpreter's thread switch interval, 0.0005: how long the publisher
thread may hold the event loop off).
Clients may send X-Thoxdash-Priority: high|normal|low (not forwarded).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import math
import os
import re
import signal
import ssl
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from collectors.buffer import OutboxBuffer
from collectors.proxy.admission import Admission, Ticket
from collectors.proxy.http1 import (
    MAX_HEAD,
    ChunkedBody,
    CloseBody,
    Head,
    HttpError,
    LengthBody,
    content_length,
    dechunk,
    parse_head,
)
from collectors.proxy.publisher import Publisher
from collectors.proxy.series import REJECTED, RUNNING, WAITING
from collectors.proxy.timing import StreamTiming, framing_for, request_fields
from collectors.series import series_key
from collectors.store import TelemetryStore, connect
from collectors.text import is_uint

log = logging.getLogger(__name__)

HOP_BY_HOP = frozenset(
    (
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-connection",
    )
)
PRIORITY_HEADER = b"x-thoxdash-priority"
DROP_REQUEST = HOP_BY_HOP | {b"host", b"content-length", b"expect", PRIORITY_HEADER}
REASONS = {
    400: b"Bad Request",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    505: b"HTTP Version Not Supported",
}

# POST paths that run a model (everything else is forwarded but not recorded or throttled)
_INFERENCE = re.compile(
    r"^(/api/(generate|chat|embed|embeddings)"
    r"|(/v1)?/(chat/completions|completions|embeddings|responses|completion|infill|embedding|rerank|reranking)"
    r"|/v2/models/[^/]+(/versions/[^/]+)?/(infer|generate|generate_stream)"
    r"|/generate)/?$"
)
_MODEL_RE = re.compile(rb'"model"\s*:\s*"((?:[^"\\]|\\.){0,300})"')
PEEK_JSON_MAX = 256 * 1024
IDLE_UPSTREAM_MAX = 256

OLLAMA_BUSY = "server busy, please try again.  maximum pending requests exceeded"


class UpstreamClosed(ConnectionError):
    """The upstream connection ended before the response did."""


def _settle(fut: asyncio.Future[None], exc: BaseException | None = None) -> None:
    if fut.done():
        return
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)
        fut.exception()  # retrieved: no "never retrieved" noise when nobody waits any more


def _ollama_client(path: str) -> bool:
    return path.startswith("/api/")


def _peek(path: str, body: bytes) -> tuple[str | None, bool]:
    """(model, is_control) from a request body, without ever raising.

    A control request is Ollama's load/unload (`/api/generate` with no prompt, `/api/chat` with
    no messages): it bypasses admission and is not a latency sample."""
    if not body:
        return None, False
    if len(body) <= PEEK_JSON_MAX:
        try:
            obj = json.loads(body)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            model = obj.get("model")
            control = (
                path.startswith("/api/generate") and not obj.get("prompt") and not obj.get("images")
            ) or (path.startswith("/api/chat") and not obj.get("messages"))
            return (model if isinstance(model, str) else None), control
        return None, False
    match = _MODEL_RE.search(body)
    if match:
        try:
            return json.loads(b'"' + match.group(1) + b'"'), False
        except ValueError:
            return None, False
    return None, False


@dataclass
class Request:
    method: bytes
    target: bytes
    version: bytes
    head: Head
    body: bytes


# -- the client side -----------------------------------------------------------------------------


class ClientConn(asyncio.Protocol):
    """One client connection: parses requests (one at a time; pipelined ones wait) and runs each
    in a task that the connection cancels if the client goes away."""

    def __init__(self, proxy: Proxy):
        self.proxy = proxy
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.task: asyncio.Task[None] | FastExchange | None = None  # the request under way
        self.upstream: UpstreamConn | None = None
        self.closed = False
        self.close_after = False
        self.sent_continue = False
        self.paused = False
        self.pending: tuple[Any, ...] | None = (
            None  # a request begun here whose task has not run yet
        )
        self._idle: asyncio.TimerHandle | None = None
        self._idle_since: float | None = None  # loop time the connection went idle; None: busy

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.proxy.clients.add(self)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.proxy.clients.discard(self)
        if self._idle is not None:
            self._idle.cancel()
        if self.task is not None:
            self.task.cancel()

    def pause_writing(self) -> None:  # the client reads slower than the upstream writes
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            with contextlib.suppress(RuntimeError):
                self.upstream.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.task is None:
            self._dispatch()
        elif len(self.buf) > MAX_HEAD and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def _arm_idle(self) -> None:
        """Idle from now on. One timer per connection, re-armed only when it fires (not a timer
        made and cancelled per request)."""
        loop = self.proxy.loop
        if loop is None:
            return
        self._idle_since = loop.time()
        if self._idle is None:
            self._idle = loop.call_later(self.proxy.idle_timeout_s, self._idle_close)

    def _idle_close(self) -> None:
        self._idle = None
        loop = self.proxy.loop
        if self.closed or loop is None:
            return
        since = self._idle_since
        if since is None or self.task is not None:  # busy: look again a full timeout later
            self._idle = loop.call_later(self.proxy.idle_timeout_s, self._idle_close)
            return
        left = since + self.proxy.idle_timeout_s - loop.time()
        if left > 0:
            self._idle = loop.call_later(left, self._idle_close)
        elif self.transport is not None:
            self.transport.close()

    def _dispatch(self) -> None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0 or end > MAX_HEAD:
            if len(buf) > MAX_HEAD:
                self.fail(431, "request head too large")
            return
        try:
            head = parse_head(bytes(buf[:end]))
            method, target, version = head.first.split(b" ")
            if not version.startswith(b"HTTP/1."):
                raise HttpError("only HTTP/1.x is supported", 505)
            start = end + 4
            encodings = head.tokens(b"transfer-encoding")
            if encodings:
                if encodings != {b"chunked"} or head.get(b"content-length") is not None:
                    raise HttpError("unsupported Transfer-Encoding")
                got = dechunk(bytes(buf[start:]))
                if got is None:
                    self._continue(head)
                    return
                body, used = got
            else:
                length = content_length(head) or 0
                if len(buf) - start < length:
                    self._continue(head)
                    return
                body, used = bytes(buf[start : start + length]), length
        except (HttpError, ValueError) as exc:
            self.fail(getattr(exc, "status", 400), str(exc))
            return
        del buf[: start + used]
        self.close_after = version != b"HTTP/1.1" or b"close" in head.tokens(b"connection")
        self.sent_continue = False
        self._idle_since = None
        assert self.proxy.loop is not None
        try:  # forwards the request at once when nothing has to wait (see Proxy.start)
            started = self.proxy.start(self, Request(method, target, version, head, body))
        except Exception:  # pragma: no cover - defensive: a bug must not take the listener down
            log.exception("proxy failed to start a request")
            self.fail(502, "proxy error")
            return
        if isinstance(started, FastExchange):
            self.task = started  # no task: its upstream connection ends it (Proxy._fast_end)
            return
        self.task = self.proxy.loop.create_task(started)
        self.task.add_done_callback(self._finished)

    def _continue(self, head: Head) -> None:
        if not self.sent_continue and (head.get(b"expect") or b"").lower() == b"100-continue":
            self.sent_continue = True
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.task = None
        pending, self.pending = self.pending, None
        if pending is not None and task.cancelled():  # cancelled before its first step
            self.proxy.abandon(self, *pending)
        if not task.cancelled() and task.exception() is not None:
            log.error("proxy handler failed", exc_info=task.exception())
            self.close_after = True
        self._next()

    def _next(self) -> None:
        """A request is over: close, or wait for (or start at once) the next one."""
        if self.closed or self.transport is None:
            return
        if self.close_after:
            self.transport.close()
            return
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        self._arm_idle()
        if self.buf:
            self._dispatch()

    def reply(self, status: int, payload: dict[str, Any], extra: tuple[bytes, ...] = ()) -> None:
        body = json.dumps(payload).encode()
        lines = [
            b"HTTP/1.1 %d %s" % (status, REASONS.get(status, b"Error")),
            b"Content-Type: application/json",
            b"Content-Length: %d" % len(body),
            *extra,
        ]
        if self.close_after:
            lines.append(b"Connection: close")
        self.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)

    def fail(self, status: int, message: str) -> None:
        self.close_after = True
        self.reply(status, {"error": message})
        if self.transport is not None:
            self.transport.close()


# -- the upstream side -----------------------------------------------------------------------------

IDLE, HEAD_STATE, BODY, DEAD = range(4)


class UpstreamConn(asyncio.Protocol):
    """A keep-alive connection to the runtime. The response head and body are forwarded to the
    client from data_received itself: no task wake-up per chunk."""

    def __init__(self, proxy: Proxy):
        self.proxy = proxy
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.state = IDLE
        self.client: ClientConn | None = None
        self.buf = b""
        self.body: LengthBody | ChunkedBody | CloseBody | None = None
        self.st: StreamTiming | None = None
        self.status = 0
        self.t_head = 0.0
        self.got_bytes = False
        self.reusable = True
        self.close_client = False
        self.head_only = False
        self.record = False
        self.dechunk = False
        self.waiter: asyncio.Future[None] | None = None  # the whole exchange, done or failed
        self.fast: FastExchange | None = None  # or told synchronously, when no task waits

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def begin(
        self,
        client: ClientConn,
        head_only: bool,
        record: bool,
        http10_client: bool,
        fast: FastExchange | None = None,
    ) -> None:
        loop = self.proxy.loop
        assert loop is not None
        self.client = client
        self.head_only = head_only
        self.record = record
        self.dechunk = http10_client
        self.close_client = client.close_after
        self.state = HEAD_STATE
        self.buf = b""
        self.body = None
        self.st = None
        self.got_bytes = False
        self.reusable = True
        self.t_head = 0.0
        self.fast = fast
        self.waiter = None if fast is not None else loop.create_future()

    def _end(self, exc: BaseException | None = None) -> None:
        """The exchange is over (or failed): tell whoever waits for it."""
        fast = self.fast
        if fast is not None:
            self.fast = None
            self.proxy._fast_end(fast, exc)
        elif self.waiter is not None:
            _settle(self.waiter, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        with contextlib.suppress(ValueError):
            self.proxy.idle.remove(self)
        if self.state == HEAD_STATE:
            self._end(UpstreamClosed("the connection closed before a response"))
        elif self.state == BODY:
            if isinstance(self.body, CloseBody):
                self._done(time.perf_counter())
            else:
                self._end(UpstreamClosed("the connection closed mid-response"))
        self.state = DEAD

    def data_received(self, data: bytes) -> None:
        t = time.perf_counter()
        self.got_bytes = True
        if self.state == BODY:
            self._body(data, t)
            return
        if self.state != HEAD_STATE:  # bytes nobody asked for: do not reuse this connection
            self.reusable = False
            if self.transport is not None:
                self.transport.close()
            return
        buf = self.buf + data if self.buf else data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    self._broken(HttpError("response head too large", 502))
                else:
                    self.buf = buf
                return
            try:
                head = parse_head(buf[:end])
                version, code = head.first.split(b" ", 2)[:2]
                status = int(code)
            except (HttpError, ValueError) as exc:
                self._broken(exc)
                return
            rest = buf[end + 4 :]
            if 100 <= status < 200 and status != 101:  # interim: pass on, wait for the real head
                if not self.dechunk and self.client is not None:
                    self.client.write(buf[: end + 4])
                buf = rest
                continue
            break
        self.buf = b""
        try:
            out = self._start(head, version, status, t)
        except HttpError as exc:
            self._broken(exc)
            return
        if self.body is None or isinstance(self.body, LengthBody) and self.body.remaining == 0:
            if self.client is not None:
                self.client.write(out)
            self._done(t)
        elif rest:
            self._body(rest, t, out)  # head and first bytes of the body in one write
        elif self.client is not None:
            self.client.write(out)

    def _start(self, head: Head, version: bytes, status: int, t: float) -> bytes:
        """Take in the response head; return it as the client gets it."""
        connection = head.tokens(b"connection")
        if version != b"HTTP/1.1" or b"close" in connection:
            self.reusable = False
        encodings = head.tokens(b"transfer-encoding")
        passthrough_chunked = False
        if self.head_only or status in (204, 304) or status < 200:
            self.body = None
        elif encodings:
            if b"chunked" in encodings:
                self.body = ChunkedBody()
                passthrough_chunked = not self.dechunk
                self.close_client = self.close_client or self.dechunk
            else:
                self.body = CloseBody()
        else:
            length = content_length(head)
            self.body = LengthBody(length) if length is not None else CloseBody()
        if isinstance(self.body, CloseBody):
            self.reusable = False
            self.close_client = True
        drop = HOP_BY_HOP | connection if connection else HOP_BY_HOP
        out = [head.first]
        for lname, _value, raw in head.lines:
            if lname in drop and not (passthrough_chunked and lname == b"transfer-encoding"):
                continue
            out.append(raw)
        if self.close_client:
            out.append(b"Connection: close")
        if self.client is not None:
            self.client.close_after = self.client.close_after or self.close_client
        self.status = status
        self.t_head = t
        if self.record:
            # parsed later, in the publisher thread: the loop only notes chunks and their times
            self.st = StreamTiming(
                framing_for(
                    _latin(head.get(b"content-type")), _latin(head.get(b"content-encoding"))
                ),
                defer=True,
            )
        self.state = BODY
        return b"\r\n".join(out) + b"\r\n\r\n"

    def _body(self, data: bytes, t: float, prefix: bytes = b"") -> None:
        assert self.body is not None
        try:
            payload, used, finished = self.body.feed(data)
        except HttpError as exc:
            if prefix and self.client is not None:
                self.client.write(prefix)
            self._broken(exc)
            return
        client = self.client
        if client is not None:
            if self.dechunk and isinstance(self.body, ChunkedBody):
                if payload or prefix:
                    client.write(prefix + payload)
            else:
                client.write(prefix + (data if used == len(data) else data[:used]))
        if self.st is not None and payload:
            self.st.feed(payload, t)
        if finished:
            if used < len(data):
                self.reusable = False
            self._done(t)

    def _done(self, t: float) -> None:
        if self.st is not None:
            self.st.close(t)
        self.state = IDLE
        self._end()

    def _broken(self, exc: Exception) -> None:
        """Framing the proxy cannot follow: end this exchange and the connection."""
        self.reusable = False
        self.state = DEAD
        self._end(UpstreamClosed(f"bad response: {exc}"))
        if self.transport is not None:
            self.transport.close()


def _latin(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


class FastExchange:
    """A request forwarded from the socket callback that completed it, and seen to its end from
    the upstream connection's callbacks (Proxy._fast_end): no task, no wake-ups. Stands in for
    the task in ClientConn.task; `cancel` is the client going away mid-exchange."""

    __slots__ = (
        "proxy",
        "conn",
        "request",
        "up",
        "req",
        "control",
        "path",
        "ticket",
        "t_recv",
        "t_forward",
    )

    def __init__(
        self,
        proxy: Proxy,
        conn: ClientConn,
        request: Request,
        up: UpstreamConn,
        req: dict[str, Any] | None,
        control: bool,
        path: str,
        ticket: Ticket | None,
        t_recv: float,
    ):
        self.proxy = proxy
        self.conn = conn
        self.request = request
        self.up = up
        self.req = req
        self.control = control
        self.path = path
        self.ticket = ticket
        self.t_recv = t_recv
        self.t_forward = t_recv

    def cancel(self) -> None:
        self.proxy._fast_cancel(self)


# -- the proxy ----------------------------------------------------------------------------------------


class Proxy:
    def __init__(
        self,
        upstream: str,
        runtime: str,
        device: str,
        publisher: Publisher | None = None,
        load_event_s: float = 1.0,
        connect_timeout_s: float = 10.0,
        idle_timeout_s: float = 75.0,
    ):
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--upstream must be an http:// or https:// URL, got {upstream!r}")
        self.upstream = upstream
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.host_header = parts.netloc.rpartition("@")[2].encode()
        self.base_path = parts.path.rstrip("/").encode()
        self.runtime = runtime
        self.device = device
        self.publisher = publisher
        self.admission = Admission(runtime)
        self.load_event_s = load_event_s
        self.connect_timeout_s = connect_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.loop: asyncio.AbstractEventLoop | None = None
        self.idle: list[UpstreamConn] = []
        self.clients: set[ClientConn] = set()
        self.records: list[dict[str, Any]] | None = None  # set to a list to keep records in memory
        self.in_flight = 0
        self.disconnects = 0

    async def close(self) -> None:
        for up in list(self.idle):
            if up.transport is not None:
                up.transport.close()
        self.idle.clear()

    def gauges(self) -> dict[str, float]:
        labels = {"runtime": self.runtime}
        return {
            series_key(RUNNING, **labels): float(self.admission.running()),
            series_key(WAITING, **labels): float(self.admission.waiting()),
            series_key(REJECTED, **labels): float(self.admission.rejected_total),
        }

    def set_limits(self, raw: dict[str, Any]) -> None:
        self.admission.update(raw)

    # -- records ---------------------------------------------------------------------------
    def _finish(
        self, req: dict[str, Any], st: StreamTiming | None, t_forward: float, control: bool
    ) -> None:
        """Note the end of a request; the records are built off the event loop, by the publisher."""
        item = (req, st, t_forward, time.perf_counter(), time.time(), control)
        if self.records is not None:
            self.records.extend(self.build_records(item))
        elif self.publisher is not None:
            self.publisher.add((item,))

    def build_records(self, item: tuple[Any, ...]) -> list[dict[str, Any]]:
        req, st, t_forward, t_end, now, control = item
        if st is not None:
            req.update(request_fields(st, t_forward, t_end))
            if not req.get("model") and st.model:
                req["model"] = st.model
            if st.chunks:
                req["stream"] = st.framing in ("ndjson", "sse")
        req["total_s"] = round(t_end - t_forward, 6)
        records: list[dict[str, Any]] = []
        if not control:
            records.append({"ts": now, "source": "request", "request": req})
        load_s = req.get("load_s")
        if isinstance(load_s, float) and load_s >= self.load_event_s:
            records.append(
                {
                    "ts": now,
                    "source": "proxy",
                    "event": {
                        "kind": "model_loaded",
                        "runtime": self.runtime,
                        "model": req.get("model"),
                        "load_s": load_s,
                        "endpoint": req.get("endpoint"),
                    },
                }
            )
        if req.get("done_reason") == "unload":
            records.append(
                {
                    "ts": now,
                    "source": "proxy",
                    "event": {
                        "kind": "model_unloaded",
                        "runtime": self.runtime,
                        "model": req.get("model"),
                    },
                }
            )
        return records

    # -- one request ---------------------------------------------------------------------------
    def start(self, conn: ClientConn, request: Request) -> Coroutine[Any, Any, None] | FastExchange:
        """Begin a request, from the socket callback that completed it. When nothing has to wait
        (admission grants a slot at once and an idle upstream connection is at hand, the usual
        case) the request is forwarded right here and a FastExchange is returned (the upstream
        connection's callbacks end it, `_fast_end`); otherwise a coroutine for a task."""
        t_recv = time.perf_counter()
        path = request.target.split(b"?", 1)[0].decode("latin-1")
        req: dict[str, Any] | None = None
        ticket: Ticket | None = None
        control = False
        if request.method == b"POST" and _INFERENCE.match(path) is not None:
            model, control = _peek(path, request.body)
            if not control:
                raw = request.head.get(PRIORITY_HEADER)
                priority = raw.decode("latin-1").strip().lower() if raw else None
                ticket = self.admission.try_acquire(model, priority)
                if ticket is None:  # has to wait, or is rejected
                    return self.handle(conn, request)
            req = {"runtime": self.runtime, "model": model, "endpoint": path, "status": None}
            if ticket is not None:
                req["priority"] = ticket.priority
        up = self._idle_conn()
        if up is not None:
            payload = self._request_bytes(request)
            self.in_flight += 1
            fast = FastExchange(self, conn, request, up, req, control, path, ticket, t_recv)
            fast.t_forward = self._send(conn, up, request, req, payload, fast)
            return fast
        if ticket is not None:
            conn.pending = (req, control, ticket, None, t_recv)
        return self._exchange(conn, request, req, control, path, ticket)

    def _fast_end(self, fast: FastExchange, exc: BaseException | None) -> None:
        """The end of a FastExchange, from its upstream connection's callback: what `_forward`
        does after its `await`, done synchronously (the next pipelined or kept-alive request of
        the client can start right here)."""
        conn, up, req = fast.conn, fast.up, fast.req
        held: UpstreamConn | None = up  # to be closed: left mid-exchange
        last: UpstreamConn | None = up  # the connection that answered (for the record)
        if exc is None:
            if up.close_client:
                conn.close_after = True
            self._release(up)
            held = None
        elif up.t_head:  # broke off mid-body
            if req is not None:
                req["error"] = f"upstream broke off the response: {exc}"
            conn.close_after = True
            if conn.transport is not None:
                conn.transport.abort()  # a truncated body must look truncated too
        elif not up.got_bytes and not conn.closed:
            # a kept-alive connection the runtime had just closed: once more, in a task
            conn.upstream = None
            assert self.loop is not None
            task = self.loop.create_task(
                self._exchange(
                    conn,
                    fast.request,
                    req,
                    fast.control,
                    fast.path,
                    fast.ticket,
                    retry_from=fast.t_forward,
                )
            )
            conn.task = task
            conn.pending = (req, fast.control, fast.ticket, None, fast.t_forward)
            task.add_done_callback(conn._finished)
            return
        else:
            held = last = None
            self._bad_gateway(conn, req, fast.path, str(exc))
        self.in_flight -= 1
        conn.upstream = None
        st = None
        if held is not None:
            up.client = None
            if up.st is not None and up.t_head:
                st = up.st
            up.st = None
            if up.transport is not None:
                up.transport.close()
        if last is not None and last.t_head and req is not None:
            req["status"] = last.status
            req["queue_s"] = round(last.t_head - fast.t_forward, 6)
            st = st or last.st
        if req is not None:
            self._finish(req, st, fast.t_forward, fast.control)
        if fast.ticket is not None:
            fast.ticket.release()
        if conn.task is fast:
            conn.task = None
            conn._next()

    def _fast_cancel(self, fast: FastExchange) -> None:
        """The client went away during a FastExchange: as a cancelled `_forward` would."""
        fast.up.fast = None  # its closing tells nobody
        if fast.conn.task is fast:
            fast.conn.task = None
        self.abandon(
            fast.conn, fast.req, fast.control, fast.ticket, (fast.up, fast.t_forward), fast.t_recv
        )

    async def _exchange(
        self,
        conn: ClientConn,
        request: Request,
        req: dict[str, Any] | None,
        control: bool,
        path: str,
        ticket: Ticket | None,
        retry_from: float | None = None,
    ) -> None:
        conn.pending = None  # running: from here on _forward's own clean-up applies
        try:
            await self._forward(conn, request, req, control, path, retry_from)
        finally:
            if ticket is not None:
                ticket.release()

    def abandon(
        self,
        conn: ClientConn,
        req: dict[str, Any] | None,
        control: bool,
        ticket: Ticket | None,
        first: tuple[UpstreamConn, float] | None,
        t_recv: float,
    ) -> None:
        """Clean up after a request whose task was cancelled (client gone) before it first ran."""
        self.disconnects += 1
        st = None
        t_forward = t_recv
        if first is not None:
            up, t_forward = first
            self.in_flight -= 1
            conn.upstream = None
            up.client = None
            if up.t_head:
                st = up.st
                if req is not None:
                    req["status"] = up.status
                    req["queue_s"] = round(up.t_head - t_forward, 6)
            up.st = None
            if up.transport is not None:
                up.transport.close()
        if req is not None:
            req["client_disconnected"] = True
            self._finish(req, st, t_forward, control)
        if ticket is not None:
            ticket.release()

    async def handle(self, conn: ClientConn, request: Request) -> None:
        t_recv = time.perf_counter()
        path = request.target.split(b"?", 1)[0].decode("latin-1")
        inference = request.method == b"POST" and _INFERENCE.match(path) is not None
        req: dict[str, Any] | None = None
        ticket: Ticket | None = None
        control = False
        if inference:
            model, control = _peek(path, request.body)
            req = {"runtime": self.runtime, "model": model, "endpoint": path, "status": None}
            if not control:
                raw = request.head.get(PRIORITY_HEADER)
                priority = raw.decode("latin-1").strip().lower() if raw else None
                try:
                    ticket = await self.admission.acquire(model, priority)
                except asyncio.CancelledError:
                    req["client_disconnected"] = True
                    self._finish(req, None, t_recv, control=False)
                    raise
                req["priority"] = ticket.priority
                if ticket.wait_s:
                    req["admission_wait_s"] = round(ticket.wait_s, 6)
                if ticket.rejected:
                    self._rejected(conn, req, ticket, path, t_recv)
                    return
        try:
            await self._forward(conn, request, req, control, path)
        finally:
            if ticket is not None:
                ticket.release()

    def _rejected(
        self, conn: ClientConn, req: dict[str, Any], ticket: Ticket, path: str, t_recv: float
    ) -> None:
        retry = max(1, math.ceil(ticket.retry_after_s))
        if _ollama_client(path):
            status, payload = 503, {"error": OLLAMA_BUSY}
        else:
            status, payload = (
                429,
                {
                    "error": {
                        "message": f"too many requests for {ticket.scope} ({ticket.reason}); retry after {retry} s",
                        "type": "rate_limit_exceeded",
                        "code": 429,
                    }
                },
            )
        req.update(status=status, rejected=True, error=ticket.reason)
        self._finish(req, None, t_recv, control=False)
        conn.reply(status, payload, (b"Retry-After: %d" % retry,))

    def _request_bytes(self, request: Request) -> bytes:
        listed = request.head.tokens(b"connection")
        drop = DROP_REQUEST | listed if listed else DROP_REQUEST
        lines = [
            request.method + b" " + self.base_path + request.target + b" HTTP/1.1",
            b"Host: " + self.host_header,
        ]
        lines += [raw for lname, _value, raw in request.head.lines if lname not in drop]
        if request.body or request.method in (b"POST", b"PUT", b"PATCH"):
            lines.append(b"Content-Length: %d" % len(request.body))
        return b"\r\n".join(lines) + b"\r\n\r\n" + request.body

    def _idle_conn(self) -> UpstreamConn | None:
        idle = self.idle
        while idle:
            up = idle.pop()
            if not up.closed:
                return up
        return None

    def _send(
        self,
        conn: ClientConn,
        up: UpstreamConn,
        request: Request,
        req: dict[str, Any] | None,
        payload: bytes,
        fast: FastExchange | None = None,
    ) -> float:
        """Start the exchange on `up` (the response is relayed by its protocol); returns t_forward."""
        conn.upstream = up
        up.begin(
            conn, request.method == b"HEAD", req is not None, request.version == b"HTTP/1.0", fast
        )
        assert up.transport is not None
        t_forward = time.perf_counter()
        up.transport.write(payload)
        return t_forward

    async def _acquire(self) -> tuple[UpstreamConn, bool]:
        up = self._idle_conn()
        if up is not None:
            return up, True
        assert self.loop is not None
        _, up = await asyncio.wait_for(
            self.loop.create_connection(
                lambda: UpstreamConn(self), self.host, self.port, ssl=self.ssl
            ),
            self.connect_timeout_s,
        )
        return up, False

    def _release(self, up: UpstreamConn) -> None:
        up.client = None
        if up.closed or not up.reusable or len(self.idle) >= IDLE_UPSTREAM_MAX:
            if up.transport is not None:
                up.transport.close()
            return
        if up.transport is not None:
            with contextlib.suppress(RuntimeError):
                up.transport.resume_reading()
        self.idle.append(up)

    async def _forward(
        self,
        conn: ClientConn,
        request: Request,
        req: dict[str, Any] | None,
        control: bool,
        path: str,
        retry_from: float | None = None,
    ) -> None:
        """Forward and relay one exchange (one that waited for admission or for an upstream
        connection); `retry_from`: the second attempt of a FastExchange whose kept-alive
        connection had closed (counted in flight already, first sent at that time)."""
        up: UpstreamConn | None = None  # held, to be closed if we leave mid-exchange
        last: UpstreamConn | None = None  # the connection that answered (for the record)
        payload: bytes | None = None
        attempts: tuple[int, ...] = (0, 1)
        if retry_from is not None:
            t_forward = retry_from
            attempts = (1,)
        else:
            t_forward = time.perf_counter()
            self.in_flight += 1
        try:
            for attempt in attempts:
                if payload is None:
                    payload = self._request_bytes(request)
                try:
                    up, reused = await self._acquire()
                except (OSError, asyncio.TimeoutError) as exc:
                    up = None
                    self._bad_gateway(conn, req, path, f"{exc.__class__.__name__}: {exc}")
                    return
                last = up
                self._send(conn, up, request, req, payload)
                assert up.waiter is not None
                try:
                    await up.waiter  # head and body are relayed by the protocol meanwhile
                    break
                except UpstreamClosed as exc:
                    if up.t_head:  # broke off mid-body
                        if req is not None:
                            req["error"] = f"upstream broke off the response: {exc}"
                        conn.close_after = True
                        if conn.transport is not None:
                            conn.transport.abort()  # a truncated body must look truncated too
                        return
                    conn.upstream = None
                    if reused and not up.got_bytes and attempt == 0:
                        continue  # a kept-alive connection the runtime had just closed: once more
                    up = last = None
                    self._bad_gateway(conn, req, path, str(exc))
                    return
            assert up is not None
            if up.close_client:
                conn.close_after = True
            self._release(up)
            up = None
        except asyncio.CancelledError:
            self.disconnects += 1
            if req is not None:
                req["client_disconnected"] = True
            raise
        finally:
            self.in_flight -= 1
            conn.upstream = None
            st = None
            if up is not None:  # mid-exchange: this connection cannot be reused
                up.client = None
                if up.st is not None and last is up and last.t_head:
                    st = up.st
                up.st = None  # nothing more is fed to it: the publisher thread owns it now
                if up.transport is not None:
                    up.transport.close()
            if last is not None and last.t_head and req is not None:
                req["status"] = last.status
                req["queue_s"] = round(last.t_head - t_forward, 6)
                st = st or last.st
            if req is not None:
                self._finish(req, st, t_forward, control)

    def _bad_gateway(
        self, conn: ClientConn, req: dict[str, Any] | None, path: str, detail: str
    ) -> None:
        message = f"upstream {self.upstream} unreachable: {detail}"[:300]
        if req is not None:
            req.update(status=502, error=message)
        if _ollama_client(path):
            payload: dict[str, Any] = {"error": message}
        else:
            payload = {"error": {"message": message, "type": "upstream_unreachable", "code": 502}}
        conn.reply(502, payload)


class Served:
    """A listening proxy: `addresses` and `cleanup()` (closes the listener and every connection)."""

    def __init__(self, server: asyncio.base_events.Server, proxy: Proxy):
        self.server = server
        self.proxy = proxy

    @property
    def addresses(self) -> list[Any]:
        return [sock.getsockname() for sock in self.server.sockets]

    async def cleanup(self) -> None:
        self.server.close()
        for conn in list(self.proxy.clients):
            if conn.transport is not None:
                conn.transport.abort()
        await self.proxy.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.server.wait_closed(), 5)


async def serve(proxy: Proxy, host: str, port: int) -> Served:
    """Start serving on host:port (port 0 picks one: read it from `.addresses`)."""
    loop = asyncio.get_running_loop()
    proxy.loop = loop
    server = await loop.create_server(
        lambda: ClientConn(proxy), host, port, backlog=1024, reuse_address=True
    )
    return Served(server, proxy)


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not is_uint(port):
        raise ValueError(f"--listen must be HOST:PORT, got {value!r}")
    return (host.strip("[]") or "127.0.0.1"), int(port)


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        log.warning("%s is not a number; using %s", name, default)
        return default


async def _amain(args: Any) -> int:
    host, port = parse_listen(args.listen)
    loop = asyncio.get_running_loop()
    spill_dir = Path(os.environ.get("THOXDASH_PROXY_SPILL", ".run/proxy-spill"))
    store = TelemetryStore(connect(args.redis))
    proxy = Proxy(
        args.upstream,
        args.runtime,
        args.device,
        load_event_s=_env_float("THOXDASH_PROXY_LOAD_EVENT_S", 1.0),
    )
    publisher = Publisher(
        store,
        args.device,
        args.runtime,
        buffer=OutboxBuffer(spill_path=spill_dir / f"{args.device}-{args.runtime}.jsonl"),
        interval=_env_float("THOXDASH_PROXY_PUBLISH_S", 0.5),
        admission_interval=_env_float("THOXDASH_PROXY_ADMISSION_S", 1.0),
        on_admission=lambda raw: loop.call_soon_threadsafe(proxy.set_limits, raw),
        gauges=proxy.gauges,
        build=proxy.build_records,
    )
    proxy.publisher = publisher
    # the publisher thread must never hold the event loop off the GIL for long (default: 5 ms)
    sys.setswitchinterval(_env_float("THOXDASH_PROXY_SWITCH_S", 0.0005))
    # what exists at start-up lives forever: keep the collector off it, and collect less often
    # (a request allocates a few dozen short-lived, acyclic objects)
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 50)
    try:
        served = await serve(proxy, host, port)
    except OSError as exc:
        print(f"error: cannot listen on {args.listen}: {exc.strerror or exc}")
        return 2
    publisher.start()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    log.info(
        "proxy %s -> %s (runtime %s, device %s)",
        args.listen,
        args.upstream,
        args.runtime,
        args.device,
    )
    await stop.wait()
    await served.cleanup()
    await asyncio.to_thread(publisher.stop)
    return 0


def main(args: Any) -> int:
    try:
        parse_listen(args.listen)
        Proxy(args.upstream, args.runtime, args.device)
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_amain(args))
    return uvloop.run(_amain(args))
