"""One request and its response: an `Exchange`, ended once, by `finish(outcome)`.

The usual request goes at once (an admission slot free, a kept-alive upstream connection idle):
it is sent from the socket callback that completed it and has no task at all; its upstream
connection's callbacks relay the response and end it. An exchange that has to wait (for an
admission slot, or for a new upstream connection) runs a task until its request is sent, and is
then ended by the same callbacks. Whatever happens (the response ends, the runtime breaks off or
cannot be reached, admission refuses, the client goes away) the clean-up is `finish`: the
upstream connection back to the pool or closed, the admission slot released, the record noted,
the client's next request started.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from collectors.proxy import runtime_hooks
from collectors.proxy.admission import Ticket
from collectors.proxy.request import Request

if TYPE_CHECKING:
    from collectors.proxy.client import ClientConn
    from collectors.proxy.server import Proxy
    from collectors.proxy.upstream import UpstreamConn


class Outcome(enum.Enum):
    DONE = "done"  # the whole response went to the client
    BROKEN = "broken"  # the runtime broke off mid-response: the client's connection is cut
    UNREACHABLE = "unreachable"  # no response at all: 502
    REJECTED = "rejected"  # admission refused: 429/503 with Retry-After
    GONE = "gone"  # the client went away first
    FAILED = "failed"  # a bug in the proxy: 502, logged


@dataclass(eq=False, slots=True)
class Exchange:
    proxy: Proxy
    conn: ClientConn
    request: Request
    req: dict[str, Any] | None  # the record being built; None: not an inference request
    control: bool  # a load/unload request: bypasses admission, events only
    t_recv: float
    ticket: Ticket | None = None
    t_forward: float = 0.0  # perf_counter when the request first went to the runtime; 0: not yet
    up: UpstreamConn | None = None
    reused: bool = False  # `up` was a kept-alive connection
    retried: bool = False
    task: asyncio.Task[None] | None = None  # only while waiting for admission or a connection
    finished: bool = False

    # -- starting ---------------------------------------------------------------------------
    def go(self, admit: bool) -> None:
        """Send now when nothing has to wait, else run a task that waits and then sends."""
        if not admit:
            up = self.proxy.pool.take_idle()
            if up is not None:
                self._send(up, reused=True)
                return
        self._spawn(admit)

    def _spawn(self, admit: bool) -> None:
        self.task = asyncio.get_running_loop().create_task(self._wait_then_send(admit))
        self.task.add_done_callback(self._task_done)

    async def _wait_then_send(self, admit: bool) -> None:
        if admit and not await self._admit():
            return
        if not self.t_forward:
            self.t_forward = time.perf_counter()
            self.proxy.in_flight += 1
        up = self.proxy.pool.take_idle()
        reused = up is not None
        if up is None:
            try:
                up = await self.proxy.pool.connect()
            except (OSError, asyncio.TimeoutError) as exc:
                self.finish(Outcome.UNREACHABLE, f"{exc.__class__.__name__}: {exc}")
                return
        if self.finished:  # the client left while we connected
            self.proxy.pool.release(up)
            return
        self.task = None  # from here the upstream connection's callbacks drive the exchange
        self._send(up, reused)

    async def _admit(self) -> bool:
        req = self.req
        assert req is not None
        ticket = await self.proxy.admission.acquire(req["model"], self.proxy.priority(self.request))
        self.ticket = ticket
        req["priority"] = ticket.priority
        if ticket.wait_s:
            req["admission_wait_s"] = round(ticket.wait_s, 6)
        if ticket.rejected:
            self.finish(Outcome.REJECTED)
            return False
        return True

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.proxy.log_failure(task.exception())
            self.crashed()

    def _send(self, up: UpstreamConn, reused: bool) -> None:
        if not self.t_forward:
            self.t_forward = time.perf_counter()
            self.proxy.in_flight += 1
        self.up = up
        self.reused = reused
        conn = self.conn
        conn.upstream = up
        request = self.request
        up.begin(
            self,
            conn,
            self.proxy.request_bytes(request),
            head_only=request.method == b"HEAD",
            record=self.req is not None,
            http10_client=request.version == b"HTTP/1.0",
        )

    # -- the upstream connection's word --------------------------------------------------------
    def upstream_ended(self, exc: BaseException | None) -> None:
        """From the upstream connection's callbacks: the response ended (exc None) or failed."""
        up = self.up
        if up is None or self.finished:
            return
        if exc is None:
            self.finish(Outcome.DONE)
        elif up.t_head:
            self.finish(Outcome.BROKEN, f"upstream broke off the response: {exc}")
        elif self.reused and not up.got_bytes and not self.retried and not self.conn.closed:
            # a kept-alive connection the runtime had just closed: once more, on another one
            self.retried = True
            self.up = None
            self.conn.upstream = None
            up.detach()
            up.close()
            self._spawn(admit=False)
        else:
            self.finish(Outcome.UNREACHABLE, str(exc))

    def abandon(self) -> None:
        """The client went away."""
        self.finish(Outcome.GONE)

    def crashed(self) -> None:
        """A bug in the proxy broke this exchange: answer 502, close, clean up all the same."""
        self.conn.close_after = True
        self.finish(Outcome.FAILED, "proxy error")

    # -- the end ------------------------------------------------------------------------------
    def finish(self, outcome: Outcome, detail: str = "") -> None:
        """The one end of every exchange (see the module docstring). Idempotent."""
        if self.finished:
            return
        self.finished = True
        proxy, conn, req = self.proxy, self.conn, self.req
        task, self.task = self.task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        stream = None
        up, self.up = self.up, None
        if up is not None:
            conn.upstream = None
            answered = up.t_head > 0
            if answered and req is not None:
                req["status"] = up.status
                req["queue_s"] = round(up.t_head - self.t_forward, 6)
            noted = up.detach()
            stream = noted if answered else None
            if outcome is Outcome.DONE:
                if up.close_client:
                    conn.close_after = True
                proxy.pool.release(up)
            else:
                up.close()  # left mid-exchange: this connection cannot be reused
        if outcome is Outcome.BROKEN:
            if req is not None:
                req["error"] = detail
            conn.abort()  # a truncated body must look truncated too
        elif outcome is Outcome.UNREACHABLE or outcome is Outcome.FAILED:
            self._reply_error(502, f"upstream {proxy.upstream} unreachable: {detail}"[:300]
                              if outcome is Outcome.UNREACHABLE else detail)
        elif outcome is Outcome.REJECTED:
            self._reply_rejected()
        elif outcome is Outcome.GONE:
            proxy.disconnects += 1
            if req is not None:
                req["client_disconnected"] = True
        if self.t_forward:
            proxy.in_flight -= 1
        if req is not None:
            proxy.records.note(req, stream, self.t_forward or self.t_recv, self.control)
        if self.ticket is not None:
            self.ticket.release()
        conn.exchange_done(self)

    def _reply_error(self, status: int, message: str) -> None:
        if self.req is not None:
            self.req.update(status=status, error=message)
        kind = "upstream_unreachable" if status == 502 else "proxy_error"
        payload = runtime_hooks.error_reply(
            self.proxy.runtime, self.request.path, status, message, kind
        )
        self.conn.reply(status, payload)

    def _reply_rejected(self) -> None:
        ticket, req = self.ticket, self.req
        assert ticket is not None and req is not None
        retry = max(1, math.ceil(ticket.retry_after_s))
        message = (
            f"too many requests for {ticket.scope} ({ticket.reason}); retry after {retry} s"
        )
        status, payload = runtime_hooks.busy_reply(self.proxy.runtime, self.request.path, message)
        req.update(status=status, rejected=True, error=ticket.reason)
        self.ticket = None  # a rejected ticket holds no slot
        self.conn.reply(status, payload, (b"Retry-After: %d" % retry,))
