"""A proxy and a recording upstream in a background event loop, for tests that speak raw sockets
from plain (Hypothesis) test functions.

`RecordingUpstream` keeps every byte that reaches it, so a test can assert that a refused request
never got to the runtime. `ThreadedProxy` is a context manager: the proxy (no publisher: records
are dropped) in front of that upstream, with the given settings.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from typing import Any

from collectors.proxy.server import Proxy, Served, serve
from collectors.proxy.settings import ProxySettings

OK_BODY = b'{"ok":true}'


class RecordingUpstream:
    """A loopback HTTP/1.1 server: every received byte is kept; each request is answered 200."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.heads: list[bytes] = []
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.received += head
                self.heads.append(head)
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                if length:
                    self.received += await reader.readexactly(length)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(OK_BODY), OK_BODY)
                )
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


class ThreadedProxy:
    def __init__(self, settings: ProxySettings | None = None, runtime: str = "ollama"):
        self.settings = settings or ProxySettings()
        self.runtime = runtime
        self.loop = asyncio.new_event_loop()
        self.upstream = RecordingUpstream()
        self.proxy: Proxy | None = None
        self.served: Served | None = None
        self.port = 0
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ThreadedProxy:
        self._thread.start()
        self.run(self._start())
        return self

    def __exit__(self, *exc: Any) -> None:
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    async def _start(self) -> None:
        await self.upstream.start()
        self.proxy = Proxy(
            f"http://127.0.0.1:{self.upstream.port}", self.runtime, "fuzz", settings=self.settings
        )
        self.served = await serve(self.proxy, "127.0.0.1", 0)
        self.port = self.served.addresses[0][1]

    async def _stop(self) -> None:
        if self.served is not None:
            await self.served.cleanup()
        await self.upstream.stop()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the proxy's loop (where its state lives) and return what it returns."""

        async def wrapped() -> Any:
            return fn()

        return self.run(wrapped())

    def set_limits(self, raw: dict[str, Any]) -> None:
        assert self.proxy is not None
        proxy = self.proxy
        self.call(lambda: proxy.set_limits(raw))

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.settimeout(10)
        return sock

    def exchange(self, raw: bytes) -> tuple[int | None, bytes]:
        """Send `raw` on a new connection; (status, head) of the first response, or (None, b"")
        when the proxy closed without one."""
        with self.connect() as sock:
            sock.sendall(raw)
            return read_response(sock)


def read_response(sock: socket.socket) -> tuple[int | None, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        try:
            got = sock.recv(65536)
        except ConnectionResetError:
            got = b""
        if not got:
            return None, buf
        buf += got
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        got = sock.recv(65536)
        if not got:
            break
        rest += got
    return int(head.split(b" ", 2)[1]), head
