"""The runtime side: kept-alive connections (`UpstreamConn`) and their pool (`UpstreamPool`).

An UpstreamConn relays one exchange at a time: the response head and each body chunk are written
to the client from `data_received` itself (no task wake-up per chunk); the upstream's own chunked
framing is forwarded as is (re-framed only for an HTTP/1.0 client). When the response has ended,
or failed, it tells its exchange (`Exchange.upstream_ended`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from time import perf_counter
from typing import TYPE_CHECKING

from collectors.proxy.http1 import (
    MAX_HEAD,
    ChunkedBody,
    CloseBody,
    Head,
    HttpError,
    LengthBody,
    content_length,
    parse_head,
)
from collectors.proxy.timing import StreamTiming, framing_for

if TYPE_CHECKING:
    from collectors.proxy.client import ClientConn
    from collectors.proxy.exchange import Exchange

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
IDLE_UPSTREAM_MAX = 256
IDLE, HEAD_STATE, BODY, DEAD = range(4)


class UpstreamClosed(ConnectionError):
    """The upstream connection ended before the response did."""


def _latin(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


class UpstreamConn(asyncio.Protocol):
    """A keep-alive connection to the runtime, relaying one exchange at a time."""

    def __init__(self, pool: UpstreamPool):
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.state = IDLE
        self.exchange: Exchange | None = None
        self.client: ClientConn | None = None
        self.buf = b""
        self.body: LengthBody | ChunkedBody | CloseBody | None = None
        self.stream: StreamTiming | None = None  # the response body, noted for the record
        self.status = 0
        self.t_head = 0.0  # perf_counter of the response head; 0: none yet
        self.got_bytes = False
        self.reusable = True
        self.close_client = False
        self.head_only = False
        self.record = False
        self.dechunk = False
        self.relay_chunks: ChunkedBody | None = None  # a chunked body forwarded as it is

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def begin(self, exchange: Exchange, client: ClientConn, payload: bytes, *, head_only: bool,
              record: bool, http10_client: bool) -> None:
        """Send a request; the response is relayed to `client` and its end told to `exchange`."""
        self.exchange = exchange
        self.client = client
        self.head_only = head_only
        self.record = record
        self.dechunk = http10_client
        self.close_client = client.close_after
        self.state = HEAD_STATE
        self.buf = b""
        self.body = None
        self.relay_chunks = None
        self.stream = None
        self.got_bytes = False
        self.reusable = True
        self.t_head = 0.0
        assert self.transport is not None
        self.transport.write(payload)

    def detach(self) -> StreamTiming | None:
        """Leave the exchange: nothing more is relayed or told. Returns the noted response body
        (ownership passes to the caller: the publisher thread parses it)."""
        stream = self.stream
        self.exchange = None
        self.client = None
        self.stream = None
        return stream

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()

    def pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None:
            with contextlib.suppress(RuntimeError):
                self.transport.resume_reading()

    def _end(self, exc: BaseException | None = None) -> None:
        exchange = self.exchange
        if exchange is not None:
            exchange.upstream_ended(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.state == HEAD_STATE:
            self._end(UpstreamClosed("the connection closed before a response"))
        elif self.state == BODY:
            if isinstance(self.body, CloseBody):
                self._done(perf_counter())
            else:
                self._end(UpstreamClosed("the connection closed mid-response"))
        self.state = DEAD

    def data_received(self, data: bytes) -> None:
        t = perf_counter()
        self.got_bytes = True
        if self.state == BODY:
            chunks = self.relay_chunks
            if chunks is not None:  # the hot path of a token stream: one read, one chunk
                payload = chunks.one_chunk(data)
                if payload is not None:
                    client = self.client
                    if client is not None:
                        client.write(data)
                    if self.stream is not None:
                        self.stream.feed(payload, t)
                    return
            self._body(data, t)
            return
        if self.state != HEAD_STATE:  # bytes nobody asked for: do not reuse this connection
            self.close()
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
        """Take in the response head; return it as the client gets it (rebuilt line by line)."""
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
                self.relay_chunks = self.body if passthrough_chunked else None
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
        for lname, name, value in head.lines:
            if lname in drop and not (passthrough_chunked and lname == b"transfer-encoding"):
                continue
            out.append(name + b": " + value)
        if self.close_client:
            out.append(b"Connection: close")
        if self.client is not None and self.close_client:
            self.client.close_after = True
        self.status = status
        self.t_head = t
        if self.record:
            # parsed later, in the publisher thread: the loop only notes chunks and their times
            self.stream = StreamTiming(
                framing_for(_latin(head.get(b"content-type")), _latin(head.get(b"content-encoding"))),
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
        if self.stream is not None and payload:
            self.stream.feed(payload, t)
        if finished:
            if used < len(data):
                self.reusable = False
            self._done(t)

    def _done(self, t: float) -> None:
        if self.stream is not None:
            self.stream.close(t)
        self.state = IDLE
        self._end()

    def _broken(self, exc: Exception) -> None:
        """Framing the proxy cannot follow: end this exchange and the connection."""
        self.reusable = False
        self.state = DEAD
        self._end(UpstreamClosed(f"bad response: {exc}"))
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    """Kept-alive connections to one runtime: taken idle when there is one, else opened."""

    def __init__(self, host: str, port: int, tls: bool, connect_timeout_s: float):
        self.host = host
        self.port = port
        self.ssl = ssl.create_default_context() if tls else None
        self.connect_timeout_s = connect_timeout_s
        self.idle: list[UpstreamConn] = []

    def take_idle(self) -> UpstreamConn | None:
        idle = self.idle
        while idle:
            up = idle.pop()
            if not up.closed:
                return up
        return None

    async def connect(self) -> UpstreamConn:
        loop = asyncio.get_running_loop()
        _, up = await asyncio.wait_for(
            loop.create_connection(lambda: UpstreamConn(self), self.host, self.port, ssl=self.ssl),
            self.connect_timeout_s,
        )
        return up

    def release(self, up: UpstreamConn) -> None:
        """An exchange ended cleanly on `up`: keep it for the next one, or close it."""
        up.detach()
        if up.closed or not up.reusable or len(self.idle) >= IDLE_UPSTREAM_MAX:
            up.close()
            return
        up.resume_reading()
        self.idle.append(up)

    def forget(self, up: UpstreamConn) -> None:
        with contextlib.suppress(ValueError):
            self.idle.remove(up)

    def close(self) -> None:
        for up in self.idle:
            up.close()
        self.idle.clear()
