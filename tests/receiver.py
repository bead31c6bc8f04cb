"""A real HTTP webhook receiver on loopback for tests and benches: scripted answers, HMAC checked
on the receiving side, every request recorded with its arrival time."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    delay_s: float = 0.0
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool | None
    status: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """`with Receiver(secret="s", script=[Answer(500), Answer(200)]) as rx: ... rx.url ...`"""

    def __init__(self, secret: str = "", script: list[Answer] | None = None, default: Answer | None = None):
        self.secret = secret
        self.script = list(script or [])
        self.default = default or Answer()
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    answer = receiver.script.pop(0) if receiver.script else receiver.default
                ok = None
                if receiver.secret:
                    want = "sha256=" + hmac.new(receiver.secret.encode(), body, hashlib.sha256).hexdigest()
                    ok = hmac.compare_digest(want, self.headers.get("X-Thoxdash-Signature", ""))
                with receiver.arrived:
                    receiver.received.append(Received(time.time(), self.path, dict(self.headers), body, ok,
                                                      answer.status))
                    receiver.arrived.notify_all()
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                try:
                    self.send_response(answer.status)
                    for k, v in answer.headers.items():
                        self.send_header(k, v)
                    payload = answer.body.encode()
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout_s: float = 20.0) -> list[Received]:
        deadline = time.time() + timeout_s
        with self.arrived:
            while len(self.received) < count:
                left = deadline - time.time()
                if left <= 0:
                    raise TimeoutError(f"receiver got {len(self.received)} of {count} requests in {timeout_s} s")
                self.arrived.wait(left)
            return list(self.received)


def dead_url() -> str:
    """A loopback URL nobody listens on (the port was just free)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"
