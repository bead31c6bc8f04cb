"""`python -m collectors proxy`: a streaming reverse proxy that records every inference request.

Drop-in in front of Ollama (/api/*) or any OpenAI-compatible server (/v1/*): response bytes pass
through as they come (no decompression, no re-chunking: the upstream's chunked framing itself is
forwarded), each response chunk is written to the client from the socket callback that received
it, status codes and error bodies are the upstream's. Requests are read strictly and forwarded with
a rebuilt head (collectors.proxy.request). On the side each inference request becomes a
recording-format `request` record (queue, TTFT, total, tokens, the runtime's own timings) and a long
`load_duration` a `model_loaded` event. Admission limits (collectors.proxy.admission) are read from
the store at run time.

Built on asyncio protocols (uvloop when installed) rather than a web framework: the proxy has to
stay within a fraction of a millisecond of calling the runtime directly (bench/proxy_latency.py).
Parsing and publishing can fail; serving does not. The parts:
  client.py      ClientConn: a client connection, its requests one at a time
  request.py     strict, incremental request reading; the normalised path
  exchange.py    Exchange: one request and its response, ended once by `finish(outcome)`
  upstream.py    UpstreamConn (relays a response from its callbacks) and UpstreamPool
  records.py     from a finished exchange to records, built in the publisher thread
  runtime_hooks  what is particular to a runtime kind (inference paths, busy replies, body peek)
  settings.py    the environment (THOXDASH_PROXY_*)
Clients may send X-Thoxdash-Priority: high|normal|low (not forwarded), honoured when the value is
in THOXDASH_PROXY_CLIENT_PRIORITY.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from collectors.buffer import OutboxBuffer
from collectors.proxy import runtime_hooks
from collectors.proxy.admission import Admission
from collectors.proxy.client import ClientConn
from collectors.proxy.exchange import Exchange
from collectors.proxy.publisher import Publisher
from collectors.proxy.records import Records
from collectors.proxy.request import Request
from collectors.proxy.series import REJECTED, RUNNING, WAITING
from collectors.proxy.settings import ProxySettings, env_float
from collectors.proxy.upstream import HOP_BY_HOP, UpstreamPool
from collectors.series import series_key
from collectors.store import TelemetryStore, connect
from collectors.text import is_uint

log = logging.getLogger(__name__)

PRIORITY_HEADER = b"x-thoxdash-priority"
DROP_REQUEST = HOP_BY_HOP | {b"host", b"content-length", b"expect", PRIORITY_HEADER}


class Proxy:
    def __init__(
        self,
        upstream: str,
        runtime: str,
        device: str,
        publisher: Publisher | None = None,
        settings: ProxySettings | None = None,
    ):
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--upstream must be an http:// or https:// URL, got {upstream!r}")
        self.settings = settings or ProxySettings()
        self.upstream = upstream
        self.host_header = parts.netloc.rpartition("@")[2].encode()
        self.base_path = parts.path.rstrip("/").encode()
        self.pool = UpstreamPool(
            parts.hostname,
            parts.port or (443 if parts.scheme == "https" else 80),
            parts.scheme == "https",
            self.settings.connect_timeout_s,
        )
        self.runtime = runtime
        self.device = device
        self.admission = Admission(runtime)
        self.records = Records(runtime, self.settings.load_event_s)
        self.records.publisher = publisher
        self.loop: asyncio.AbstractEventLoop | None = None
        self.clients: set[ClientConn] = set()
        self.per_client: dict[str, int] = {}
        self.in_flight = 0
        self.disconnects = 0
        self.refused_connections = 0
        self.buffered = 0  # request bytes held by every client connection (bounded: max_buffered)

    async def close(self) -> None:
        self.pool.close()

    def gauges(self) -> dict[str, float]:
        labels = {"runtime": self.runtime}
        return {
            series_key(RUNNING, **labels): float(self.admission.running()),
            series_key(WAITING, **labels): float(self.admission.waiting()),
            series_key(REJECTED, **labels): float(self.admission.rejected_total),
        }

    def set_limits(self, raw: dict[str, Any]) -> None:
        self.admission.update(raw)

    # -- connections ----------------------------------------------------------------------------
    def admit_connection(self, conn: ClientConn) -> str | None:
        """Count a new client connection in; a reason when it is over a cap (503 and close)."""
        settings = self.settings
        if len(self.clients) >= settings.max_connections:
            self.refused_connections += 1
            return "too many connections"
        count = self.per_client.get(conn.peer, 0)
        if settings.max_per_client and count >= settings.max_per_client:
            self.refused_connections += 1
            return "too many connections from this address"
        self.clients.add(conn)
        self.per_client[conn.peer] = count + 1
        return None

    def forget_connection(self, conn: ClientConn) -> None:
        if conn not in self.clients:
            return
        self.clients.discard(conn)
        left = self.per_client.get(conn.peer, 1) - 1
        if left > 0:
            self.per_client[conn.peer] = left
        else:
            self.per_client.pop(conn.peer, None)

    # -- one request ----------------------------------------------------------------------------
    def priority(self, request: Request) -> str | None:
        """The client's X-Thoxdash-Priority, when it is one clients may choose here."""
        raw = request.head.get(PRIORITY_HEADER)
        if not raw:
            return None
        value = raw.decode("latin-1").strip().lower()
        return value if value in self.settings.client_priorities else None

    def start(self, conn: ClientConn, request: Request) -> None:
        """Begin a request, from the socket callback that completed it. When nothing has to wait
        (admission grants a slot at once and an idle upstream connection is at hand, the usual
        case) it is forwarded right here; otherwise its Exchange runs a task until it can go."""
        t_recv = time.perf_counter()
        req: dict[str, Any] | None = None
        control = False
        ticket = None
        admit = False
        path = request.path
        if runtime_hooks.is_inference(self.runtime, request.method, path):
            peek = runtime_hooks.peek(self.runtime, path, request.body)
            control = peek.control
            req = {"runtime": self.runtime, "model": peek.model, "endpoint": path, "status": None}
            if not control:
                ticket = self.admission.try_acquire(peek.model, self.priority(request))
                if ticket is None:
                    admit = True  # has to wait, or is rejected
                else:
                    req["priority"] = ticket.priority
        exchange = Exchange(self, conn, request, req, control, t_recv, ticket)
        conn.exchange = exchange
        exchange.go(admit)

    def request_bytes(self, request: Request) -> bytes:
        """The request as the runtime gets it: the head rebuilt from parsed names and values."""
        listed = request.head.tokens(b"connection")
        drop = DROP_REQUEST | listed if listed else DROP_REQUEST
        lines = [
            request.method + b" " + self.base_path + request.target + b" HTTP/1.1",
            b"Host: " + self.host_header,
        ]
        lines += [name + b": " + value for lname, name, value in request.head.lines if lname not in drop]
        if request.body or request.method in (b"POST", b"PUT", b"PATCH"):
            lines.append(b"Content-Length: %d" % len(request.body))
        return b"\r\n".join(lines) + b"\r\n\r\n" + request.body

    def log_failure(self, exc: BaseException | None) -> None:
        log.error("proxy exchange failed", exc_info=exc)


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
            conn.abort()
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


async def _amain(args: Any) -> int:
    host, port = parse_listen(args.listen)
    loop = asyncio.get_running_loop()
    spill_dir = Path(os.environ.get("THOXDASH_PROXY_SPILL", ".run/proxy-spill"))
    store = TelemetryStore(connect(args.redis))
    proxy = Proxy(args.upstream, args.runtime, args.device, settings=ProxySettings.from_env())
    publisher = Publisher(
        store,
        args.device,
        args.runtime,
        buffer=OutboxBuffer(spill_path=spill_dir / f"{args.device}-{args.runtime}.jsonl"),
        interval=env_float("THOXDASH_PROXY_PUBLISH_S", 0.5, 0.001),
        admission_interval=env_float("THOXDASH_PROXY_ADMISSION_S", 1.0, 0.001),
        on_admission=lambda raw: loop.call_soon_threadsafe(proxy.set_limits, raw),
        gauges=proxy.gauges,
        build=proxy.records.build,
    )
    proxy.records.publisher = publisher
    # the publisher thread must never hold the event loop off the GIL for long (default: 5 ms)
    sys.setswitchinterval(env_float("THOXDASH_PROXY_SWITCH_S", 0.0005, 1e-6))
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
        "proxy %s -> %s (runtime %s, device %s)", args.listen, args.upstream, args.runtime, args.device
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
