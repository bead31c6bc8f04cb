"""Runtime actions against loopback servers that speak the real admin APIs (Ollama, llama-server
router mode, vLLM sleep mode), plus throttle through the proxy's admission limits in Redis."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from collectors.actions import signing
from collectors.actions.executor import Executor
from tests import fake_device

KEY = "runtime-key"


class Runtime(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, kind: str, models: list[str]):
        self.kind = kind
        self.loaded = set(models)
        self.sleeping = False
        self.calls: list[tuple[str, str, object]] = []
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Runtime

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, body: object, ctype: str = "application/json") -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        srv, path = self.server, urlparse(self.path).path
        srv.calls.append(("GET", self.path, None))
        if srv.kind == "ollama" and path == "/api/ps":
            return self._send(200, {"models": [{"name": m, "model": m, "size": 4_000_000_000,
                                                "size_vram": 4_000_000_000} for m in sorted(srv.loaded)]})
        if srv.kind == "llamacpp" and path == "/models":
            return self._send(200, {"data": [{"id": m, "status": {"value": "loaded"}} for m in sorted(srv.loaded)]
                                    + [{"id": "idle-model", "status": {"value": "unloaded"}}]})
        if srv.kind == "vllm" and path == "/is_sleeping":
            return self._send(200, {"is_sleeping": srv.sleeping})
        if srv.kind == "vllm" and path == "/v1/models":
            return self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in srv.loaded]})
        return self._send(404, {"error": "not found"})

    def do_POST(self):  # noqa: N802
        srv, url = self.server, urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        srv.calls.append(("POST", self.path, body))
        if srv.kind == "ollama" and url.path == "/api/generate":
            if body.get("model") not in srv.loaded:
                return self._send(404, {"error": f"model '{body.get('model')}' not found"})
            if body.get("keep_alive") == 0:
                srv.loaded.discard(body["model"])
                return self._send(200, {"model": body["model"], "created_at": "2026-11-23T12:00:00Z",
                                        "response": "", "done": True, "done_reason": "unload"})
        if srv.kind == "llamacpp" and url.path == "/models/unload":
            if body.get("model") not in srv.loaded:
                return self._send(400, {"error": {"code": 400, "message": "model is not loaded",
                                                  "type": "invalid_request_error"}})
            srv.loaded.discard(body["model"])
            return self._send(200, {"success": True})
        if srv.kind == "vllm" and url.path == "/sleep" and parse_qs(url.query).get("level") == ["2"]:
            srv.sleeping = True
            return self._send(200, "", "text/plain")
        return self._send(404, {"error": "not found"})


@pytest.fixture
def servers():
    made = {"ollama": Runtime("ollama", ["gpt-oss:20b", "llama3.2:3b"]),
            "llamacpp": Runtime("llamacpp", ["qwen2.5-7b"]),
            "vllm": Runtime("vllm", ["meta-llama/Llama-3.2-1B"])}
    yield made
    for srv in made.values():
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def executor(store, tmp_path, servers):
    config = {"runtimes": [
        {"name": "ollama", "kind": "ollama", "url": servers["ollama"].url, "priority": "background"},
        {"name": "llama", "kind": "llamacpp", "url": servers["llamacpp"].url, "priority": "essential"},
        {"name": "vllm", "kind": "vllm", "url": servers["vllm"].url, "priority": "critical"},
    ]}
    root = fake_device.build(tmp_path / "root", config=config)
    return Executor(store, "rt1", root, key=KEY, consumer="test")


def send(store, action, params, origin="user"):
    message = signing.build("rt1", action, params, origin=origin)
    store.r.xadd(store.keys("rt1").actions, signing.sign(message, KEY))
    return message


def test_ollama_evict_sends_keep_alive_zero_and_verifies(store, executor, servers):
    send(store, "evict", {"runtime": "ollama", "model": "gpt-oss:20b"}, origin="auto")
    (result,) = executor.poll()
    assert result["status"] == "applied", result
    assert result["preview"] == [{"target": "gpt-oss:20b", "old": "loaded", "new": "unloaded"}]
    assert servers["ollama"].loaded == {"llama3.2:3b"}
    posts = [c for c in servers["ollama"].calls if c[0] == "POST"]
    assert posts == [("POST", "/api/generate", {"model": "gpt-oss:20b", "keep_alive": 0})]


def test_evict_of_a_model_the_runtime_does_not_hold_fails_with_its_message(store, executor):
    send(store, "evict", {"runtime": "ollama", "model": "phi3:mini"})
    (result,) = executor.poll()
    assert result["status"] == "failed"
    assert "model 'phi3:mini' not found" in result["reason"] and "permanent" in result["reason"]


def test_llama_server_router_unload(store, executor, servers):
    send(store, "evict", {"runtime": "llama", "model": "qwen2.5-7b"})
    (result,) = executor.poll()
    assert result["status"] == "applied", result
    assert ("POST", "/models/unload", {"model": "qwen2.5-7b"}) in servers["llamacpp"].calls
    assert servers["llamacpp"].loaded == set()


def test_vllm_sleep_level_2_by_hand_but_never_automatically_when_critical(store, executor, servers):
    send(store, "evict", {"runtime": "vllm", "model": "meta-llama/Llama-3.2-1B"}, origin="auto")
    (refused,) = executor.poll()
    assert refused["status"] == "rejected" and "critical" in refused["reason"]
    assert servers["vllm"].sleeping is False
    send(store, "evict", {"runtime": "vllm", "model": "meta-llama/Llama-3.2-1B"})
    (result,) = executor.poll()
    assert result["status"] == "applied", result
    assert servers["vllm"].sleeping is True


def test_evict_for_a_runtime_outside_the_allow_list_is_rejected(store, executor, servers):
    send(store, "evict", {"runtime": "triton", "model": "yolo"})
    (result,) = executor.poll()
    assert result["status"] == "rejected" and "allow-list" in result["reason"]


def test_throttle_per_model_and_undo_restores_previous_limits(store, executor):
    store.set_admission("rt1", "ollama/gpt-oss:20b", {"max_concurrency": 4, "max_queue": 32})
    message = send(store, "throttle", {"runtime": "ollama", "model": "gpt-oss:20b", "max_concurrency": 1})
    (result,) = executor.poll()
    assert result["status"] == "applied"
    assert result["preview"] == [{"target": "ollama/gpt-oss:20b", "old": {"max_concurrency": 4, "max_queue": 32},
                                  "new": {"max_concurrency": 1, "max_queue": 0}}]
    assert store.admission("rt1")["ollama/gpt-oss:20b"] == {"max_concurrency": 1, "max_queue": 0}
    send(store, "undo", {"request_id": message["id"]})
    assert executor.poll()[0]["status"] == "undone"
    assert store.admission("rt1")["ollama/gpt-oss:20b"] == {"max_concurrency": 4, "max_queue": 32}


def test_triton_explicit_mode_unload(store, tmp_path):
    from tests.runtime_servers import LoopbackServer, triton_routes

    models = {"yolo26n": "READY", "resnet50": "READY"}
    with LoopbackServer(triton_routes(models)) as triton:
        config = {"runtimes": [{"name": "triton", "kind": "triton", "url": triton.url, "priority": "essential"}]}
        executor = Executor(store, "rt1", fake_device.build(tmp_path / "t", config=config), key=KEY, consumer="t")
        send(store, "evict", {"runtime": "triton", "model": "resnet50"})
        (result,) = executor.poll()
        assert result["status"] == "applied", result
        assert models == {"yolo26n": "READY", "resnet50": "UNAVAILABLE"}
        assert [r.path for r in triton.log if r.method == "POST" and "unload" in r.path] == \
            ["/v2/repository/models/resnet50/unload"]
