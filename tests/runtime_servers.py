"""Loopback HTTP servers that speak the admin protocols of runtimes that cannot run here, for tests
and benches. Real sockets, real HTTP; the state is a small dict. Each fake follows its project's
own source at a pinned commit (field names, status codes, error bodies, metric names):

- Ollama: ollama/ollama fb30760996871fa9460115c753afd2c60d4ab0f7, api/types.go
  (ProcessResponse/ProcessModelResponse, ModelDetails, GenerateResponse + Metrics),
  server/routes.go (routes; unload = `c.JSON(200, GenerateResponse{Done: true, DoneReason:
  "unload"})`, 404 `model '%s' not found`), server/sched.go (ErrMaxQueue text).
- vLLM: vllm-project/vllm a6f0308cfe806b7731ad4979c9bea6e470c35efd, vllm/v1/metrics/loggers.py
  (PrometheusStatLogger: labels model_name + engine; histograms vllm:time_to_first_token_seconds,
  vllm:e2e_request_latency_seconds, ...); later versions of that file rename
  time_per_output_token_seconds to inter_token_latency_seconds and gpu_cache_usage_perc to
  kv_cache_usage_perc, the names served here (the scrape reads both).
- Triton: triton-inference-server/server c203d3783fc1fa77da47228e1d107f009cd0b104,
  docs/protocol/extension_statistics.md ($model_stat, $inference_stats, $duration_stat) and
  332bef3f7ee4499fbf52e066020e748d5bde98eb docs/protocol/extension_model_repository.md (index,
  unload; errors {"error": $string}).
- TensorRT-LLM trtllm-serve: NVIDIA/TensorRT-LLM e7f7345e31e574b5d0918b756b871882c7346b3c,
  tensorrt_llm/serve/openai_server.py (/health 200 with no body, /v1/models ModelList, /metrics =
  a JSON list of iteration stats drained by the read, /prometheus/metrics only with
  return_perf_metrics) and 89fd9b74ab7ae753b4c6b3db25a400dca7ea54a0 tensorrt_llm/metrics/collector.py
  (request_success_total, e2e_request_latency_seconds, time_to_first_token_seconds,
  time_per_output_token_seconds, request_queue_time_seconds; labels model_name, engine_type).
- llama.cpp: the real server runs in tests/test_real_llamacpp*.py. `recorded_llamacpp_routes` serves
  answers recorded from it (tests/fixtures/llamacpp/answers.json, build_info b1-0c1e570, made by
  tests/record_llamacpp_answers.py); `llamacpp_routes` is a small state machine for router-mode
  edge cases, its shapes corrected from those answers (slots, unload errors).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


Reply = tuple[int, str, bytes]
Handler = Callable[[Request], Reply]


def js(status: int, obj: Any) -> Reply:
    return status, "application/json", json.dumps(obj).encode()


def text(status: int, body: str, ctype: str = "text/plain; version=0.0.4") -> Reply:
    return status, ctype, body.encode()


class LoopbackServer:
    """Routes (METHOD, path) -> handler; unknown routes answer 404 like the runtimes do."""

    def __init__(self, routes: dict[tuple[str, str], Handler]):
        self.routes = routes
        self.log: list[Request] = []
        self.release = threading.Event()  # frees handlers that hang on purpose
        server = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                req = Request(method, parts.path, parse_qs(parts.query), body)
                server.log.append(req)
                handler = server.routes.get((method, parts.path))
                status, ctype, payload = handler(req) if handler else js(404, {"error": "not found"})
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def hang(self, seconds: float = 30.0) -> Handler:
        def handler(req: Request) -> Reply:
            self.release.wait(seconds)
            return js(200, {})
        return handler


@dataclass
class OllamaState:
    models: dict[str, dict[str, Any]] = field(default_factory=dict)


def ollama_routes(state: OllamaState) -> dict[tuple[str, str], Handler]:
    def ps(req: Request) -> Reply:
        return js(200, {"models": list(state.models.values())})

    def generate(req: Request) -> Reply:
        body = req.body if isinstance(req.body, dict) else {}
        name = body.get("model")
        if name not in state.models:
            return js(404, {"error": f"model '{name}' not found"})
        if body.get("keep_alive") == 0:  # routes.go: c.JSON(http.StatusOK, api.GenerateResponse{...})
            del state.models[name]
            return js(200, {"model": name, "created_at": "2026-11-23T12:00:00Z", "response": "", "done": True,
                            "done_reason": "unload"})
        return js(400, {"error": "only unload is served here"})

    return {("GET", "/"): lambda r: text(200, "Ollama is running", "text/plain"),
            ("GET", "/api/version"): lambda r: js(200, {"version": "0.12.3"}),
            ("GET", "/api/ps"): ps, ("POST", "/api/generate"): generate}


def ollama_model(name: str, size: int, size_vram: int) -> dict[str, Any]:
    return {"name": name, "model": name, "size": size, "size_vram": size_vram,
            "digest": "a" * 64, "expires_at": "2026-11-23T12:05:00Z", "context_length": 4096,
            "details": {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
                        "parameter_size": "3.2B", "quantization_level": "Q4_K_M"}}


LLAMACPP_METRICS = """# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 1234
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 5678
# HELP llamacpp:predicted_tokens_seconds Average generation throughput in tokens/s.
# TYPE llamacpp:predicted_tokens_seconds gauge
llamacpp:predicted_tokens_seconds 21.5
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 1
# HELP llamacpp:requests_deferred Number of requests deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 0
"""


@dataclass
class LlamaState:
    router: dict[str, str] = field(default_factory=dict)  # model -> status; empty = single mode
    single_model: str = "qwen2.5-1.5b-instruct-q4_k_m.gguf"
    loading: bool = False


def llamacpp_routes(state: LlamaState) -> dict[tuple[str, str], Handler]:
    def health(req: Request) -> Reply:
        if state.loading:
            return js(503, {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}})
        return js(200, {"status": "ok"})

    def slots(req: Request) -> Reply:
        # real shape: next_token is a list; a never-used slot has only these four fields
        return js(200, [{"id": 0, "n_ctx": 4096, "speculative": False, "is_processing": True, "id_task": 7,
                         "n_prompt_tokens": 20, "n_prompt_tokens_processed": 20, "n_prompt_tokens_cache": 0,
                         "params": {}, "next_token": [{"has_next_token": True, "has_new_line": False,
                                                        "n_remain": 52, "n_decoded": 12}]},
                        {"id": 1, "n_ctx": 4096, "speculative": False, "is_processing": False}])

    def models(req: Request) -> Reply:
        if state.router:
            return js(200, {"object": "list", "data": [
                {"id": m, "object": "model", "status": {"value": s}} for m, s in state.router.items()]})
        # the real single-model shape (recorded answers): an Ollama-style `models` list, then `data`
        name = state.single_model
        return js(200, {"models": [{"name": name, "model": name, "modified_at": "", "size": "", "digest": "",
                                    "type": "model", "description": "", "tags": [""], "capabilities": ["completion"],
                                    "parameters": "", "details": {"format": "gguf"}}],
                        "object": "list", "data": [
            {"id": name, "aliases": [name], "tags": [], "object": "model", "created": 1795986546,
             "owned_by": "llamacpp", "meta": {"vocab_type": 2, "n_vocab": 151936, "n_ctx": 4096, "n_ctx_train": 32768,
                                              "n_embd": 1536, "n_params": 1543714304, "size": 1117320736,
                                              "ftype": "Q4_K - Medium"}}]})

    def unload(req: Request) -> Reply:
        if not state.router:
            return js(404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}})
        name = (req.body or {}).get("model")
        if state.router.get(name) != "loaded":
            return js(400, {"error": {"code": 400, "message": "model is not running", "type": "invalid_request_error"}})
        state.router[name] = "unloaded"
        return js(200, {"success": True})

    return {("GET", "/health"): health, ("GET", "/slots"): slots, ("GET", "/models"): models,
            ("GET", "/metrics"): lambda r: text(200, LLAMACPP_METRICS), ("POST", "/models/unload"): unload}


RECORDED_LLAMACPP = Path(__file__).parent / "fixtures" / "llamacpp" / "answers.json"


def recorded_llamacpp_routes() -> dict[tuple[str, str], Handler]:
    """The recorded answers of a real llama-server (the last one recorded per method and path)."""
    answers = json.loads(RECORDED_LLAMACPP.read_text())["answers"]
    routes: dict[tuple[str, str], Handler] = {}
    for answer in answers:
        reply = (answer["status"], answer["content_type"], answer["body"].encode())
        routes.setdefault((answer["method"], answer["path"]), lambda r, reply=reply: reply)
    return routes


def triton_routes(models: dict[str, str]) -> dict[tuple[str, str], Handler]:
    def index(req: Request) -> Reply:
        return js(200, [{"name": m, "version": "1", "state": s} for m, s in models.items()])

    routes: dict[tuple[str, str], Handler] = {("GET", "/v2/health/ready"): lambda r: (200, "text/plain", b""),
                                              ("POST", "/v2/repository/index"): index}
    for name in list(models):
        def stats(req: Request, name: str = name) -> Reply:
            # $model_stat of extension_statistics.md (c203d37); memory_usage is a later servers' field
            zero = {"count": 0, "ns": 0}
            return js(200, {"model_stats": [{
                "name": name, "version": "1", "last_inference": 1795000000000, "inference_count": 10,
                "execution_count": 10,
                "inference_stats": {"success": {"count": 10, "ns": 12345678}, "fail": zero,
                                    "queue": {"count": 10, "ns": 345678}, "compute_input": {"count": 10, "ns": 100000},
                                    "compute_infer": {"count": 10, "ns": 11000000},
                                    "compute_output": {"count": 10, "ns": 90000}, "cache_hit": zero,
                                    "cache_miss": zero},
                "batch_stats": [{"batch_size": 1, "compute_input": {"count": 10, "ns": 100000},
                                 "compute_infer": {"count": 10, "ns": 11000000},
                                 "compute_output": {"count": 10, "ns": 90000}}],
                "memory_usage": [{"type": "GPU", "id": 0, "byte_size": 52428800},
                                 {"type": "CPU", "id": 0, "byte_size": 1048576}]}]})

        def unload(req: Request, name: str = name) -> Reply:
            models[name] = "UNAVAILABLE"
            return js(200, {})
        routes[("GET", f"/v2/models/{name}/stats")] = stats
        routes[("POST", f"/v2/repository/models/{name}/unload")] = unload
    return routes


TRITON_METRICS = """# HELP nv_inference_request_success Number of successful inference requests
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="yolo26n",version="1"} 10
# HELP nv_inference_queue_duration_us Cumulative inference queuing duration in microseconds
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{model="yolo26n",version="1"} 2048
"""

VLLM_METRICS = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="Qwen/Qwen3-0.6B"} 2.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="Qwen/Qwen3-0.6B"} 0.25
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="Qwen/Qwen3-0.6B"} 3.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="Qwen/Qwen3-0.6B"} 4.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="Qwen/Qwen3-0.6B"} 4.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="Qwen/Qwen3-0.6B"} 0.52
"""


def vllm_routes(state: dict[str, Any]) -> dict[tuple[str, str], Handler]:
    def sleep(req: Request) -> Reply:
        state["sleeping"] = True
        state["level"] = req.query.get("level", [""])[0]
        return 200, "text/plain", b""

    return {("GET", "/health"): lambda r: (200, "text/plain", b""),
            ("GET", "/v1/models"): lambda r: js(200, {"object": "list", "data": [
                {"id": "Qwen/Qwen3-0.6B", "object": "model", "owned_by": "vllm", "max_model_len": 4096}]}),
            ("GET", "/is_sleeping"): lambda r: js(200, {"is_sleeping": bool(state.get("sleeping"))}),
            ("POST", "/sleep"): sleep, ("GET", "/metrics"): lambda r: text(200, VLLM_METRICS)}


def trtllm_metrics(n: int, ttft: float, tpot_n: int, tpot: float) -> str:
    """/prometheus/metrics as tensorrt_llm/metrics/collector.py (89fd9b7) names it: no prefix,
    labels model_name and engine_type (the server sets both to "undefined")."""
    labels = 'engine_type="undefined",model_name="undefined"'
    out = ""
    for name, count, total in (("time_to_first_token_seconds", n, ttft),
                               ("time_per_output_token_seconds", tpot_n, tpot)):
        out += (f"# HELP {name} x\n# TYPE {name} histogram\n"
                f'{name}_bucket{{{labels},le="+Inf"}} {count}\n'
                f"{name}_count{{{labels}}} {count}\n{name}_sum{{{labels}}} {total}\n")
    out += ("# HELP request_success_total Count of successfully processed requests.\n"
            "# TYPE request_success_total counter\n"
            f'request_success_total{{{labels},finished_reason="stop"}} {n}\n')
    return out


def trtllm_routes(state: dict[str, Any]) -> dict[tuple[str, str], Handler]:
    """trtllm-serve (openai_server.py e7f7345): /metrics drains the iteration stats it returns."""
    def iteration_stats(req: Request) -> Reply:
        stats, state["stats"] = state.get("stats", []), []
        return js(200, stats)

    return {("GET", "/health"): lambda r: (200, "text/plain", b""),
            ("GET", "/v1/models"): lambda r: js(200, {"object": "list", "data": [
                {"id": state.get("model", "llama"), "object": "model", "created": 1, "owned_by": "tensorrt_llm"}]}),
            ("GET", "/metrics"): iteration_stats,
            ("GET", "/prometheus/metrics"): lambda r: text(200, state.get("prometheus", ""))}
