"""Loopback inference servers speaking the real wire formats, for the latency-proxy tests.

Ollama NDJSON (/api/generate, /api/chat) and OpenAI SSE (/v1/chat/completions). The model name in
the request picks a behaviour: normal, slow (first token late), error (mid-stream error at 200),
busy (503), loading (large load_duration), bad (malformed bytes), hold (waits for `release`),
gate (first chunk, then waits for `release`). Every body is produced from a byte list kept in
`sent`, so tests compare what the client received with exactly what was sent.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

SLOW_S = 0.3
BUSY = {"error": "server busy, please try again.  maximum pending requests exceeded"}


def ndjson(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def sse(obj: Any) -> bytes:
    data = obj if isinstance(obj, str) else json.dumps(obj)
    return f"data: {data}\n\n".encode()


def ollama_final(model: str, load_ns: int = 5_000_000, eval_count: int = 3) -> dict[str, Any]:
    return {
        "model": model,
        "created_at": "2026-11-23T12:00:00Z",
        "response": "",
        "done": True,
        "done_reason": "stop",
        "total_duration": 600_000_000 + load_ns,
        "load_duration": load_ns,
        "prompt_eval_count": 26,
        "prompt_eval_duration": 130_000_000,
        "eval_count": eval_count,
        "eval_duration": 400_000_000,
    }


def openai_chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1763890000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


@dataclass
class Upstream:
    sent: list[bytes] = field(default_factory=list)  # bodies of finished responses
    started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # a held handler saw its client go
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    runner: web.ServerRunner | None = None
    url: str = ""

    async def start(self) -> Upstream:
        server = web.Server(self.handle, handler_cancellation=True, access_log=None)
        self.runner = web.ServerRunner(server, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((request.method, request.path_qs, dict(request.headers), body))
        if request.method == "GET" and request.path == "/api/version":
            return web.json_response({"version": "0.5.1"}, headers={"Set-Cookie": "s=1"})
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            return web.json_response({"error": "invalid JSON"}, status=400)
        model = str(payload.get("model", ""))
        if model == "busy":
            return web.json_response(BUSY, status=503)
        if request.path in ("/api/generate", "/api/chat"):
            if not payload.get("prompt") and not payload.get("messages"):
                return await self._ollama_control(request, payload)
            return await self._ollama(request, model, request.path == "/api/chat")
        if request.path == "/v1/chat/completions":
            return await self._openai(request, model, payload)
        return web.json_response({"error": "not found"}, status=404)

    async def _stream(
        self, request: web.BaseRequest, content_type: str, parts: list[bytes | float | str]
    ) -> web.StreamResponse:
        """Write parts one chunk each; a float sleeps, "gate" waits for `release`."""
        resp = web.StreamResponse(headers={"Content-Type": content_type})
        await resp.prepare(request)
        written = []
        try:
            for part in parts:
                if isinstance(part, float):
                    await asyncio.sleep(part)
                elif part == "gate":
                    self.started.set()
                    await self.release.wait()
                else:
                    await resp.write(part)
                    written.append(part)
            await resp.write_eof()
        except (asyncio.CancelledError, ConnectionResetError):
            self.closed.set()
            raise
        self.sent.append(b"".join(written))
        return resp

    async def _ollama(self, request: web.BaseRequest, model: str, chat: bool) -> web.StreamResponse:
        def piece(text: str) -> bytes:
            if chat:
                return ndjson(
                    {
                        "model": model,
                        "message": {"role": "assistant", "content": text},
                        "done": False,
                    }
                )
            return ndjson({"model": model, "response": text, "done": False})

        ct = "application/x-ndjson"
        final = ndjson(ollama_final(model))
        if model == "slow":
            return await self._stream(
                request, ct, [SLOW_S, piece("Hel"), piece("lo"), piece("!"), final]
            )
        if model == "error":
            return await self._stream(
                request,
                ct,
                [
                    piece("Hel"),
                    ndjson({"error": "llama runner process has terminated: exit status 2"}),
                ],
            )
        if model == "loading":
            return await self._stream(
                request,
                ct,
                [piece("Hi"), ndjson(ollama_final(model, load_ns=3_500_000_000, eval_count=1))],
            )
        if model == "bad":
            return await self._stream(
                request,
                ct,
                [
                    piece("ok"),
                    b'{"model":"bad","response":"x","do',
                    b'ne":false}\n',  # split mid-line
                    b"{not json}\n",
                    b'{"response":"\xff\xfe broken utf-8"}\n',
                    b'{"response":"' + b"A" * (1_200_000) + b'"}\n',  # oversized line
                    b"[1,2,3]\n",
                    piece("!"),
                    final,
                ],
            )
        if model in ("hold", "gate"):
            return await self._stream(request, ct, [piece("Hel"), "gate", piece("lo"), final])
        return await self._stream(request, ct, [piece("Hel"), piece("lo"), piece("!"), final])

    async def _ollama_control(
        self, request: web.BaseRequest, payload: dict[str, Any]
    ) -> web.Response:
        model = payload.get("model", "")
        if payload.get("keep_alive") == 0:
            return web.json_response(
                {
                    "model": model,
                    "created_at": "2026-11-23T12:00:00Z",
                    "response": "",
                    "done": True,
                    "done_reason": "unload",
                }
            )
        return web.json_response(
            {
                "model": model,
                "created_at": "2026-11-23T12:00:00Z",
                "response": "",
                "done": True,
                "done_reason": "load",
                "total_duration": 2_100_000_000,
                "load_duration": 2_000_000_000,
            }
        )

    async def _openai(
        self, request: web.BaseRequest, model: str, payload: dict[str, Any]
    ) -> web.StreamResponse:
        if not payload.get("stream"):
            return web.json_response(
                {
                    "id": "chatcmpl-2",
                    "object": "chat.completion",
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "Hello!"},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
                    "timings": {
                        "cache_n": 4,
                        "prompt_n": 8,
                        "prompt_ms": 40.0,
                        "predicted_n": 3,
                        "predicted_ms": 60.0,
                    },
                }
            )
        ct = "text/event-stream"
        role = sse(openai_chunk(model, {"role": "assistant", "content": ""}))
        parts: list[bytes | float | str] = [role, b": ping\n\n"]
        if model == "slow":
            parts.append(SLOW_S)
        parts += [
            sse(openai_chunk(model, {"content": "Hel"})),
            sse(openai_chunk(model, {"content": "lo"})),
            0.05,
            sse(openai_chunk(model, {"content": "!"})),
            sse(openai_chunk(model, {}, "stop")),
        ]
        if (payload.get("stream_options") or {}).get("include_usage"):
            parts.append(
                sse(
                    {
                        "id": "chatcmpl-1",
                        "object": "chat.completion.chunk",
                        "model": model,
                        "choices": [],
                        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
                    }
                )
            )
        if model == "error":
            parts = [
                role,
                sse(
                    {
                        "error": {
                            "code": 500,
                            "message": "context shift failed",
                            "type": "server_error",
                        }
                    }
                ),
            ]
        parts.append(sse("[DONE]"))
        return await self._stream(request, ct, parts)
