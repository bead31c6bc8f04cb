"""The runtime registry (collectors/runtimes/__init__.py): every list derives from the kinds, and
the kinds' parts (inference paths, busy replies, response shapes, canary, scrape) behave as the
hand-kept lists did; plus the source-derived TensorRT-LLM fake (tests/runtime_servers.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from advisors.canary import build_request
from advisors.config import DEFAULT_CEILINGS_BYTES
from collectors.proxy.series import DECODE_TPS, TTFT
from collectors.proxy.timing import StreamTiming, framing_for, request_fields
from collectors.runtimes import (
    CLIENTS,
    INFERENCE,
    KINDS,
    busy_reply,
    canary_kinds,
    client_for,
    default_ceilings,
    error_reply,
    get_kind,
    kind_names,
    peek,
    scrape_kinds,
)
from collectors.runtimes.base import SHARED
from collectors.runtimes.http import MockTransport, Response
from collectors.sources.latency_scrape import LatencyScrapeSource
from collectors.sources.runtimes import DEFAULT_SPECS, RuntimeSource
from tests.runtime_servers import (
    RECORDED_LLAMACPP,
    LoopbackServer,
    recorded_llamacpp_routes,
    trtllm_metrics,
    trtllm_routes,
)

# The proxy's inference paths before the registry (collectors/proxy/server.py `_INFERENCE`).
OLD_INFERENCE = re.compile(
    r"^(/api/(generate|chat|embed|embeddings)"
    r"|(/v1)?/(chat/completions|completions|embeddings|responses|completion|infill|embedding|rerank|reranking)"
    r"|/v2/models/[^/]+(/versions/[^/]+)?/(infer|generate|generate_stream)"
    r"|/generate)/?$")
PATHS = ["/api/generate", "/api/chat", "/api/embed", "/api/embeddings", "/api/tags", "/api/ps", "/api/show",
         "/v1/chat/completions", "/chat/completions", "/v1/completions", "/completions", "/v1/embeddings",
         "/v1/responses", "/completion", "/v1/completion", "/infill", "/embedding", "/rerank", "/v1/rerank",
         "/reranking", "/v2/models/m/infer", "/v2/models/m/versions/2/infer", "/v2/models/m/generate",
         "/v2/models/m/generate_stream", "/generate", "/generate/", "/v1/models", "/health", "/metrics",
         "/slots", "/v2/models/m/stats", "/v2/health/ready", "/api/generate/x", "/v1/chat/completions/",
         "/props", "/v1/chat", "/x/generate"]


@pytest.mark.parametrize("path", PATHS)
def test_inference_paths_are_the_ones_the_proxy_had(path):
    assert bool(INFERENCE.match(path)) == bool(OLD_INFERENCE.match(path))


def test_lists_derive_from_the_kinds():
    assert set(kind_names()) == {k.name for k in KINDS}
    assert {"ollama", "llamacpp", "llama-server", "llama.cpp", "triton", "tritonserver", "vllm",
            "tensorrt_llm", "trtllm", "trtllm-serve"} <= set(CLIENTS)
    assert DEFAULT_CEILINGS_BYTES == {"ollama": 5_500_000_000, "tensorrt_llm": 6_000_000_000,
                                      "cuquantum": 2_500_000_000} == {k: int(v) for k, v in default_ceilings().items()}
    assert [s.name for s in DEFAULT_SPECS] == ["ollama", "llamacpp", "tensorrt_llm", "triton", "vllm", "cuquantum"]
    assert set(scrape_kinds()) == {"llamacpp", "vllm", "triton", "tensorrt_llm"}
    # the canary knows every alias the old OPENAI_KINDS list had, and Ollama
    assert {"openai", "llamacpp", "llama_cpp", "vllm", "tensorrt_llm", "trtllm", "llama_cpp_python",
            "ollama"} <= set(canary_kinds())
    with pytest.raises(ValueError, match="unknown runtime kind 'nope'"):
        client_for("nope", "http://127.0.0.1:1")
    assert get_kind("LLAMA-SERVER").name == "llamacpp" and get_kind(None) is None


def test_busy_and_error_replies_speak_each_clients_dialect():
    assert busy_reply("/api/chat", "x", 2) == (
        503, {"error": "server busy, please try again.  maximum pending requests exceeded"})
    status, body = busy_reply("/v1/chat/completions", "too many", 2)
    assert status == 429 and body["error"] == {"message": "too many", "type": "rate_limit_exceeded", "code": 429}
    assert busy_reply("/completion", "m", 1)[0] == 429
    assert error_reply("/api/tags", "down", "upstream_unreachable", 502) == {"error": "down"}
    assert error_reply("/health", "down", "upstream_unreachable", 502)["error"]["code"] == 502


def test_peek_finds_model_and_ollama_control_requests():
    assert peek("/api/generate", b'{"model":"m"}') == ("m", True)
    assert peek("/api/generate", b'{"model":"m","prompt":"hi"}') == ("m", False)
    assert peek("/api/chat", b'{"model":"m","messages":[]}') == ("m", True)
    assert peek("/v1/chat/completions", b'{"model":"q","messages":[]}') == ("q", False)
    assert peek("/v1/chat/completions", b"not json") == (None, False)
    big = b'{"model":"big","prompt":"' + b"x" * 300_000 + b'"}'
    assert peek("/api/generate", big) == ("big", False)


def test_canary_requests_come_from_the_kinds():
    path, body = build_request("ollama", "m", "hi", 4)
    assert path == "/api/generate" and body["options"]["num_predict"] == 4
    path, body = build_request("trtllm", "m", "hi", 4)
    assert path == "/v1/chat/completions" and body["stream_options"] == {"include_usage": True}
    with pytest.raises(ValueError, match="no speed check for runtime kind 'triton'"):
        build_request("triton", "m", "hi", 4)


def test_http_transport_seam_serves_a_client_without_sockets():
    calls = []

    def handler(method, url, headers, body):
        calls.append((method, url))
        return Response(200, b'{"status":"ok"}', {"content-type": "application/json"})

    client = client_for("llamacpp", "http://runtime.invalid:1")
    client._http.transport = MockTransport(handler)
    assert client.ping() is True and calls == [("GET", "http://runtime.invalid:1/health")]


def test_trtllm_fake_unprefixed_metrics_and_drained_stats_read_once_per_tick(tmp_path):
    state = {"model": "llama", "prometheus": trtllm_metrics(2, 0.2, 100, 2.0),
             "stats": [{"numActiveRequests": 2, "numQueuedRequests": 1, "iterLatencyMS": 12.5,
                        "gpuMemUsage": 6e9}]}
    with LoopbackServer(trtllm_routes(state)) as srv:
        cfg = tmp_path / "rt.json"
        cfg.write_text(json.dumps({"runtimes": [{"name": "trt", "kind": "trtllm", "url": srv.url}], "defaults": False}))
        runtimes = RuntimeSource(root=Path("/"), config_path=str(cfg))
        scrape = LatencyScrapeSource(url=srv.url, kind="trtllm", runtime="trt")
        scrape.collect(1.0)
        runtimes.collect(1.0)
        state["prometheus"] = trtllm_metrics(4, 0.6, 300, 4.0)
        state["stats"] = [{"numActiveRequests": 3, "numQueuedRequests": 0, "iterLatencyMS": 10.0,
                           "gpuMemUsage": 7e9}]
        before = SHARED.reads
        scraped = scrape.collect(2.0)[0]["values"]
        published = runtimes.collect(2.0)[0]["values"]
        drained = [r for r in srv.log if r.path == "/metrics"]
        runtimes.close()
        scrape.close()
    # both sources saw the drained stats of this tick: one read of /metrics for both
    assert scraped['requests_running{runtime="trt"}'] == 3.0
    assert published["trtllm_active_requests"] == 3.0 and published["trtllm_gpu_mem_usage_bytes"] == 7e9
    assert SHARED.reads - before == 2  # /metrics once, /prometheus/metrics once
    assert len(drained) == 2  # once per tick, though both sources read the iteration stats
    assert scraped[f'{TTFT}{{model="undefined",runtime="trt"}}'] == pytest.approx(0.2)
    assert scraped[f'{DECODE_TPS}{{model="undefined",runtime="trt"}}'] == pytest.approx(100.0)


def test_llamacpp_client_on_recorded_real_answers():
    with LoopbackServer(recorded_llamacpp_routes()) as srv, client_for("llamacpp", srv.url) as client:
        assert client.ping() is True
        [model] = client.loaded_models()
        assert model.name == "tiny-random" and model.size_bytes == 8_340_736  # meta.size: tensor bytes
        assert client.sleeping == [] and client.router is False
        metrics = client.metrics()
        assert metrics["llamacpp_slots_total"] == 2 and metrics["llamacpp_slots_busy"] == 0
        assert metrics["llamacpp_kv_cache_capacity_tokens"] == 4096 and metrics["llamacpp_kv_cache_tokens"] > 0
        assert metrics["llamacpp:tokens_predicted_total"] > 0
        with pytest.raises(Exception, match="single-model mode evicting means stopping the process"):
            client.evict("tiny-random")


@pytest.mark.parametrize("index", [4, 5, 6])
def test_recorded_real_answers_parse_with_the_servers_own_timings(index):
    answer = json.loads(RECORDED_LLAMACPP.read_text())["answers"][index]
    st = StreamTiming(framing_for(answer["content_type"]))
    body = answer["body"].encode()
    for i in range(0, len(body), 97):  # arbitrary chunking, one ms apart
        st.feed(body[i:i + 97], 1.0 + i / 97 / 1000)
    st.close(2.0)
    fields = request_fields(st, 0.5, 2.0)
    objects = [json.loads(line[6:]) for line in answer["body"].splitlines() if line.startswith("data: {")]
    if not objects:
        objects = [json.loads(answer["body"])]
    timings = [o["timings"] for o in objects if "timings" in o][-1]
    n = timings["predicted_n"]
    assert fields["completion_tokens"] == n and st.parse_errors == 0
    assert fields["completion_tokens_per_s"] == pytest.approx(timings["predicted_per_second"], rel=1e-3)
    assert fields["prompt_tokens"] == timings["prompt_n"] + timings["cache_n"]


def test_triton_generate_stream_output_is_timed():
    st = StreamTiming(framing_for("text/event-stream; charset=utf-8"))
    events = [{"model_name": "llm", "model_version": "1", "text_output": t} for t in ("Hel", "lo", "!")]
    for i, event in enumerate(events):
        st.feed(b"data: " + json.dumps(event).encode() + b"\n\n", 1.0 + i * 0.1)
    st.close(1.3)
    fields = request_fields(st, 0.5, 1.3)
    assert fields["ttft_s"] == pytest.approx(0.5) and fields["completion_tokens"] == 3
    assert fields["tokens_estimated"] is True and fields["completion_s"] == pytest.approx(0.3)
