"""The client side: one `ClientConn` per client connection.

It reads requests (collectors.proxy.request: strict, incremental), one at a time (pipelined ones
wait in the buffer), hands each to the proxy as an Exchange, and starts the next one from the
callback that ended the last. Refused requests get their status and the connection is closed.
Idle kept-alive connections close after the idle timeout (one timer per connection).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from collectors.proxy.http1 import MAX_HEAD, HttpError
from collectors.proxy.request import RequestReader

if TYPE_CHECKING:
    from collectors.proxy.exchange import Exchange
    from collectors.proxy.server import Proxy
    from collectors.proxy.upstream import UpstreamConn

log = logging.getLogger(__name__)

LINGER_S = 2.0  # how long a refused connection is drained before it is closed
REASONS = {
    400: b"Bad Request",
    413: b"Content Too Large",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    505: b"HTTP Version Not Supported",
}


class ClientConn(asyncio.Protocol):
    def __init__(self, proxy: Proxy):
        self.proxy = proxy
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.buf = bytearray()
        self.reader = RequestReader(proxy.settings.max_body)
        self.exchange: Exchange | None = None  # the request under way
        self.upstream: UpstreamConn | None = None  # relaying to us now
        self.closed = False
        self.close_after = False
        self.paused = False
        self.refused = False
        self._held = 0  # request bytes this connection holds, counted in proxy.buffered
        self._idle: asyncio.TimerHandle | None = None
        self._idle_since: float | None = None  # loop time the connection went idle; None: busy

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) and peer else ""
        refusal = self.proxy.admit_connection(self)
        if refusal:  # answered and closed at once: a flood over the cap holds nothing
            self.close_after = self.refused = True
            self.reply(503, {"error": refusal})
            transport.close()
            return
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.buf.clear()
        self.proxy.buffered -= self._held
        self._held = 0
        self.proxy.forget_connection(self)
        if self._idle is not None:
            self._idle.cancel()
        if self.exchange is not None:
            self.exchange.abandon()

    def pause_writing(self) -> None:  # the client reads slower than the upstream writes
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.refused or self.closed:
            return  # refused: whatever else comes is read and dropped until the close
        self.buf += data
        if self._account() > 0 and self.proxy.buffered > self.proxy.settings.max_buffered:
            self.fail(503, "the proxy holds too many request bytes now; retry later")
            self._account()
            return
        if self.exchange is None:
            self._dispatch()
            self._account()
        elif len(self.buf) > MAX_HEAD and not self.paused and self.transport is not None:
            self.paused = True  # a pipelined request waits: read no more for now
            self.transport.pause_reading()

    def _account(self) -> int:
        """Count what this connection holds (unparsed bytes, a chunked body so far) in the
        proxy's total; returns the change."""
        held = len(self.buf) + self.reader.held
        delta = held - self._held
        self._held = held
        self.proxy.buffered += delta
        return delta

    # -- writing ----------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

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
        """Refuse and close. The answer goes out with a FIN, and what the client still sends is
        read and dropped for a moment (a "lingering close", as nginx does): closing a socket with
        unread bytes would send a reset that can destroy the answer before the client reads it."""
        self.close_after = True
        self.reply(status, {"error": message})
        self.buf.clear()
        self.refused = True
        transport, loop = self.transport, self.proxy.loop
        if transport is None:
            return
        if loop is None or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        if self.paused:
            self.paused = False
            transport.resume_reading()
        loop.call_later(LINGER_S, transport.close)

    def abort(self) -> None:
        self.close_after = True
        if self.transport is not None:
            self.transport.abort()

    # -- requests, one at a time ------------------------------------------------------------
    def _dispatch(self) -> None:
        try:
            request = self.reader.next(self.buf)
        except HttpError as exc:
            self.fail(exc.status, str(exc))
            return
        if request is None:
            if self.reader.continue_due():
                self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return
        self.close_after = request.version != b"HTTP/1.1" or b"close" in request.head.tokens(
            b"connection"
        )
        self._idle_since = None
        try:
            self.proxy.start(self, request)
        except Exception:  # pragma: no cover - defensive: a bug must not take the listener down
            log.exception("proxy failed to start a request")
            if self.exchange is not None:
                self.exchange.crashed()  # its slot, upstream connection and record, as always
            else:
                self.fail(502, "proxy error")

    def exchange_done(self, exchange: Exchange) -> None:
        """From Exchange.finish: close, or wait for (or start at once) the next request."""
        if self.exchange is not exchange:
            return
        self.exchange = None
        self.upstream = None
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
            self._account()

    # -- idle timeout -------------------------------------------------------------------------
    def _arm_idle(self) -> None:
        """Idle from now on. One timer per connection, re-armed only when it fires."""
        loop = self.proxy.loop
        if loop is None:
            return
        self._idle_since = loop.time()
        if self._idle is None:
            self._idle = loop.call_later(self.proxy.settings.idle_timeout_s, self._idle_close)

    def _idle_close(self) -> None:
        self._idle = None
        loop = self.proxy.loop
        if self.closed or loop is None:
            return
        timeout = self.proxy.settings.idle_timeout_s
        since = self._idle_since
        if since is None or self.exchange is not None:  # busy: look again a full timeout later
            self._idle = loop.call_later(timeout, self._idle_close)
            return
        left = since + timeout - loop.time()
        if left > 0:
            self._idle = loop.call_later(left, self._idle_close)
        elif self.transport is not None:
            self.transport.close()
