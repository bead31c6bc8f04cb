"""The agent's HTTP client for runtime admin APIs: the standard library's http.client behind a
narrow transport seam, so the agent does not import httpx (about 8 MB resident with its deps).

`Transport.request(method, url, headers, body, timeout) -> Response` is the seam:
`HttpTransport` (default) keeps one keep-alive connection per host:port and retries once when a
kept-alive connection turns out closed; `MockTransport(handler)` answers from a function, for
tests. Failures are `TransportError` (with `timeout` True when no answer came in time).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode, urlsplit

if TYPE_CHECKING:
    import http.client

USER_AGENT = "thoxdash-agent"
MAX_BODY = 64 << 20  # an admin answer larger than this is refused, not read into memory


class TransportError(Exception):
    """No HTTP answer: connection refused or reset, DNS, timeout, a malformed response."""

    def __init__(self, message: str, timeout: bool = False):
        super().__init__(message)
        self.timeout = timeout


@dataclass
class Response:
    status_code: int
    content: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names
    reason_phrase: str = ""

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.content)


class Transport(Protocol):
    def request(self, method: str, url: str, headers: dict[str, str], body: bytes | None,
                timeout: float) -> Response: ...

    def close(self) -> None: ...


class HttpTransport:
    """http.client with one kept-alive connection per (scheme, host, port); thread-safe."""

    def __init__(self) -> None:
        self._conns: dict[tuple[str, str, int], http.client.HTTPConnection] = {}
        self._lock = threading.Lock()

    def _conn(self, scheme: str, host: str, port: int, timeout: float) -> http.client.HTTPConnection:
        import http.client  # on first use: a device without runtimes never loads it (nor its email parser)

        key = (scheme, host, port)
        conn = self._conns.pop(key, None)
        if conn is None:
            cls: type[http.client.HTTPConnection] = http.client.HTTPConnection
            if scheme == "https":
                if not hasattr(http.client, "HTTPSConnection"):  # ssl left out (collectors/slim.py)
                    raise TransportError(
                        f"https://{host}:{port}: this agent runs without TLS, because no URL in its "
                        "configuration at start used it (collectors/slim.py); restart the agent to load it")
                cls = http.client.HTTPSConnection
            conn = cls(host, port, timeout=timeout)
        else:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
        return conn

    def request(self, method: str, url: str, headers: dict[str, str], body: bytes | None,
                timeout: float) -> Response:
        import http.client

        parts = urlsplit(url)
        scheme = parts.scheme or "http"
        if scheme not in ("http", "https") or not parts.hostname:
            raise TransportError(f"unsupported URL {url[:200]!r}")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise TransportError(f"bad port in URL {url[:200]!r}") from None
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        key = (scheme, parts.hostname, port)
        for attempt in (0, 1):
            with self._lock:
                conn = self._conn(scheme, parts.hostname, port, timeout)
            reused = conn.sock is not None
            try:
                conn.request(method, target, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read(MAX_BODY + 1)
            except TimeoutError as exc:
                conn.close()
                raise TransportError(f"no answer in {timeout:g} s", timeout=True) from exc
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                if reused and attempt == 0:
                    continue  # the runtime closed a kept-alive connection: once more, fresh
                raise TransportError(f"{exc.__class__.__name__}: {exc}") from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise TransportError(f"{exc.__class__.__name__}: {exc}") from exc
            if len(data) > MAX_BODY:
                conn.close()
                raise TransportError(f"answer over {MAX_BODY} bytes")
            out = Response(resp.status, data, {k.lower(): v for k, v in resp.getheaders()}, resp.reason or "")
            if resp.will_close:
                conn.close()
            else:
                with self._lock:
                    old = self._conns.pop(key, None)
                    self._conns[key] = conn
                if old is not None:
                    old.close()
            return out
        raise TransportError("unreachable")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            conn.close()


class MockTransport:
    """A transport answering from `handler(method, url, headers, body) -> Response` (tests)."""

    def __init__(self, handler: Callable[[str, str, dict[str, str], bytes | None], Response]):
        self.handler = handler

    def request(self, method: str, url: str, headers: dict[str, str], body: bytes | None,
                timeout: float) -> Response:
        return self.handler(method, url, headers, body)

    def close(self) -> None:
        pass


class HttpClient:
    """What the runtime clients and the latency scrape call: JSON bodies, query params, a timeout."""

    def __init__(self, timeout: float, transport: Transport | None = None):
        self.timeout = timeout
        self.transport: Transport = transport or HttpTransport()

    def request(self, method: str, url: str, *, body: Any = None,
                params: dict[str, Any] | None = None) -> Response:
        headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = "0"
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        return self.transport.request(method, url, headers, data, self.timeout)

    def close(self) -> None:
        self.transport.close()
