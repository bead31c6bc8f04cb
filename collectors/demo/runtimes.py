"""A simulated Ollama admin API for the demo device, so that runtime actions on it answer.

Only the calls the agent makes (collectors/runtimes/ollama.py, which cites the Ollama API): `GET
/api/version`, `GET /api/ps` (the loaded models, sizes in bytes) and `POST /api/generate {"model",
"keep_alive": 0}` (unload; answers {"done": true, "done_reason": "unload"}). A model is loaded when
the replayed recording sends a request for it, and unloaded by an evict until its next request.
It listens on a free loopback port; the demo tree's allow-list points the ollama runtime at it.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from collectors.series import series_key

MODEL_BYTES = 13_800_000_000  # gpt-oss:20b at its default quantisation, as Ollama reports it


class SimulatedOllama:
    def __init__(self) -> None:
        self.loaded: dict[str, int] = {}
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet: the demo's log is for the demo
                return

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path == "/api/version":
                    self._send(200, {"version": "0.12.0-demo"})
                elif self.path == "/api/ps":
                    with owner.lock:
                        models = [{"name": m, "model": m, "size": size, "size_vram": size}
                                  for m, size in sorted(owner.loaded.items())]
                    self._send(200, {"models": models})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self) -> None:  # noqa: N802
                length = min(int(self.headers.get("Content-Length") or 0), 65_536)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self._send(400, {"error": "invalid JSON"})
                    return
                if self.path != "/api/generate" or not isinstance(body, dict) or not body.get("model"):
                    self._send(400, {"error": "the demo answers only unloads: POST /api/generate"})
                    return
                if body.get("keep_alive") in (0, "0", "0s"):
                    with owner.lock:
                        owner.loaded.pop(str(body["model"]), None)
                    self._send(200, {"model": body["model"], "done": True, "done_reason": "unload"})
                else:
                    self._send(400, {"error": "the demo answers only unloads (keep_alive 0)"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="demo-ollama", daemon=True)

    def start(self) -> SimulatedOllama:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def see(self, records: list[dict[str, Any]]) -> None:
        """Replayed records: a request to an ollama model (re)loads it."""
        for record in records:
            req = record.get("request") or {}
            if req.get("runtime") == "ollama" and req.get("model"):
                with self.lock:
                    self.loaded.setdefault(str(req["model"]), MODEL_BYTES)

    def values(self) -> dict[str, float]:
        """runtime_model_bytes for the loaded models, as the runtimes source would publish them."""
        with self.lock:
            return {series_key("runtime_model_bytes", runtime="ollama", model=m): float(size)
                    for m, size in self.loaded.items()}
