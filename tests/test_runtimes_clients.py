"""Runtime admin clients against loopback servers speaking each runtime's protocol."""

from __future__ import annotations

import json
import math
import sys
import time

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from collectors.runtimes import RuntimeApiError, client_for, parse_prometheus
from collectors.runtimes.ollama import last_ndjson_object
from collectors.runtimes.tensorrt_llm import iteration_values
from tests.runtime_servers import (
    TRITON_METRICS,
    LlamaState,
    LoopbackServer,
    OllamaState,
    js,
    llamacpp_routes,
    ollama_model,
    ollama_routes,
    text,
    triton_routes,
    vllm_routes,
)


def test_ollama_ps_sizes_and_unload_over_ndjson():
    state = OllamaState({"llama3.2:3b": ollama_model("llama3.2:3b", 3_400_000_000, 1_700_000_000),
                         "gpt-oss:20b": ollama_model("gpt-oss:20b", 14_000_000_000, 14_000_000_000)})
    with LoopbackServer(ollama_routes(state)) as srv, client_for("ollama", srv.url, 2.0) as client:
        assert client.ping() is True
        models = {m.name: m for m in client.loaded_models()}
        assert models["llama3.2:3b"].size_bytes == 3.4e9 and models["llama3.2:3b"].vram_bytes == 1.7e9
        metrics = client.metrics()
        assert metrics['ollama_model_gpu_ratio{model="llama3.2:3b"}'] == pytest.approx(0.5)
        answer = client.evict("llama3.2:3b")
        assert answer["done_reason"] == "unload"
        sent = [r for r in srv.log if r.path == "/api/generate"][0].body
        assert sent == {"model": "llama3.2:3b", "keep_alive": 0}
        assert [m.name for m in client.loaded_models()] == ["gpt-oss:20b"]
        with pytest.raises(RuntimeApiError) as err:
            client.evict("nope")
        assert err.value.permanent and "model 'nope' not found" in err.value.message


def test_ollama_garbage_entries_and_error_line():
    hostile = 'evil"}\n{x="1"} 2\x1b[31m'
    bad = {"models": [None, 3, {"name": ""}, {"name": hostile, "size": "NaN", "size_vram": -5},
                      {"name": "big", "size": 1e300, "size_vram": True}, {"model": "alias-only", "size": 10}]}
    routes = {("GET", "/api/ps"): lambda r: js(200, bad),
              ("POST", "/api/generate"): lambda r: (200, "application/x-ndjson",
                                                    b'{"model":"m","done":false}\n{"error":"runner crashed"}\n')}
    with LoopbackServer(routes) as srv, client_for("ollama", srv.url) as client:
        models = {m.name: m for m in client.loaded_models()}
        assert set(models) == {hostile, "big", "alias-only"}
        assert models[hostile].size_bytes is None and models[hostile].vram_bytes is None
        assert models["big"].size_bytes is None and models["big"].vram_bytes is None
        with pytest.raises(RuntimeApiError, match="runner crashed"):
            client.evict("m")


def test_llamacpp_single_mode_slots_metrics_and_no_unload():
    state = LlamaState()
    with LoopbackServer(llamacpp_routes(state)) as srv, client_for("llama-server", srv.url) as client:
        assert client.ping()
        [model] = client.loaded_models()
        assert model.name == state.single_model and model.size_bytes == 1117320736
        metrics = client.metrics()
        assert metrics["llamacpp:prompt_tokens_total"] == 1234
        assert metrics["llamacpp:predicted_tokens_seconds"] == 21.5
        assert metrics["llamacpp_slots_total"] == 2 and metrics["llamacpp_slots_busy"] == 1
        with pytest.raises(RuntimeApiError) as err:
            client.evict(state.single_model)
        assert err.value.permanent and "stopping the process" in err.value.message
        state.loading = True
        with pytest.raises(RuntimeApiError) as err:
            client.ping()
        assert not err.value.permanent and "Loading model" in err.value.message


def test_llamacpp_router_mode_loaded_set_and_unload():
    state = LlamaState(router={"qwen3-4b": "loaded", "gemma-3-1b": "sleeping", "phi4": "unloaded"})
    with LoopbackServer(llamacpp_routes(state)) as srv, client_for("llamacpp", srv.url) as client:
        assert [m.name for m in client.loaded_models()] == ["qwen3-4b"]
        assert client.evict("qwen3-4b") == {"success": True}
        assert client.loaded_models() == []
        with pytest.raises(RuntimeApiError) as err:
            client.evict("qwen3-4b")
        assert err.value.permanent


def test_triton_index_stats_memory_metrics_and_unload():
    models = {"yolo26n": "READY", "resnet50": "UNAVAILABLE"}
    metrics_srv = LoopbackServer({("GET", "/metrics"): lambda r: text(200, TRITON_METRICS)})
    with LoopbackServer(triton_routes(models)) as srv, metrics_srv:
        from collectors.runtimes import TritonClient

        client = TritonClient(srv.url, timeout=2.0, metrics_url=metrics_srv.url)
        assert client.ping()
        [model] = client.loaded_models()
        assert model.name == "yolo26n" and model.size_bytes == 52428800 + 1048576
        assert model.vram_bytes == 52428800
        metrics = client.metrics()
        assert metrics['nv_inference_queue_duration_us{model="yolo26n",version="1"}'] == 2048
        client.evict("yolo26n")
        assert models["yolo26n"] == "UNAVAILABLE" and client.loaded_models() == []
        client.close()


def test_vllm_models_metrics_and_sleep_level_2():
    state: dict = {}
    with LoopbackServer(vllm_routes(state)) as srv, client_for("vllm", srv.url) as client:
        assert [m.name for m in client.loaded_models()] == ["Qwen/Qwen3-0.6B"]
        metrics = client.metrics()
        assert metrics['vllm:kv_cache_usage_perc{engine="0",model_name="Qwen/Qwen3-0.6B"}'] == 0.25
        assert metrics['vllm:time_to_first_token_seconds_count{engine="0",model_name="Qwen/Qwen3-0.6B"}'] == 4
        client.evict("Qwen/Qwen3-0.6B")
        assert state["level"] == "2"
        assert client.loaded_models() == [] and client.sleeping == ["Qwen/Qwen3-0.6B"]


def test_tensorrt_llm_iteration_stats_and_evict_refused():
    stats = [{"gpuMemUsage": 100, "iterLatencyMS": 5}, {"gpuMemUsage": 6_000_000_000, "iterLatencyMS": 12.5,
                                                        "numActiveRequests": 3, "kvCacheStats": {"usedNumBlocks": 40}}]
    routes = {("GET", "/health"): lambda r: (200, "text/plain", b""),
              ("GET", "/v1/models"): lambda r: js(200, {"data": [{"id": "llama-3.1-8b"}]}),
              ("GET", "/metrics"): lambda r: js(200, stats)}
    with LoopbackServer(routes) as srv, client_for("tensorrt_llm", srv.url) as client:
        metrics = client.metrics()
        assert metrics["trtllm_gpu_mem_usage_bytes"] == 6e9 and metrics["trtllm_iter_latency_seconds"] == 0.0125
        [model] = client.loaded_models()
        assert model.name == "llama-3.1-8b" and model.vram_bytes == 6e9
        with pytest.raises(RuntimeApiError) as err:
            client.evict("llama-3.1-8b")
        assert err.value.permanent


def test_hung_runtime_times_out_and_dead_port_is_not_permanent():
    srv = LoopbackServer({})
    srv.routes[("GET", "/api/ps")] = srv.hang()
    with srv, client_for("ollama", srv.url, timeout=0.3) as client:
        start = time.monotonic()
        with pytest.raises(RuntimeApiError) as err:
            client.loaded_models()
        assert time.monotonic() - start < 5
        assert not err.value.permanent and "no answer" in err.value.message
    with client_for("vllm", "http://127.0.0.1:1", timeout=0.5) as client, pytest.raises(RuntimeApiError) as err:
        client.ping()
    assert not err.value.permanent


def test_non_json_and_5xx_bodies_are_errors_not_crashes():
    routes = {("GET", "/api/ps"): lambda r: (200, "text/html", b"<html>proxy login</html>"),
              ("GET", "/api/version"): lambda r: js(500, {"error": "boom"})}
    with LoopbackServer(routes) as srv, client_for("ollama", srv.url) as client:
        with pytest.raises(RuntimeApiError, match="not JSON"):
            client.loaded_models()
        with pytest.raises(RuntimeApiError) as err:
            client.ping()
        assert not err.value.permanent and "boom" in err.value.message


def test_client_for_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown runtime kind 'tgi'"):
        client_for("tgi", "http://127.0.0.1:1")


def test_prometheus_garbage_costs_only_its_lines():
    body = ("llamacpp:requests_processing 2\nthis is { not metrics\nvllm:x{a=\"1\"} NaN\n"
            "vllm:y{a=\"q\\\"uote\"} 3\nz +Inf\n")
    assert parse_prometheus(body) == {"llamacpp:requests_processing": 2.0, 'vllm:y{a="q\\"uote"}': 3.0}


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
@example("{")  # a sample line with no metric name before its labels
@example(" {x} 1\n")
def test_fuzz_prometheus_parser_never_raises(body):
    out = parse_prometheus(body)
    assert all(isinstance(v, float) and math.isfinite(v) for v in out.values())


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=60), st.builds(json.dumps, st.dictionaries(
    st.sampled_from(["done", "error", "model", "x"]), st.one_of(st.booleans(), st.text(max_size=10), st.none()),
    max_size=3))), max_size=6))
def test_fuzz_ndjson_reader(lines):
    try:
        out = last_ndjson_object("\n".join(lines))
    except RuntimeApiError:
        return
    assert isinstance(out, dict)


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.one_of(st.none(), st.booleans(), st.floats(), st.integers(), st.text(max_size=8)),
                    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=12), c, max_size=4)),
                    max_leaves=12))
def test_fuzz_trtllm_iteration_stats(stats):
    out = iteration_values(stats)
    assert all(isinstance(v, float) and math.isfinite(v) and v >= 0 for v in out.values())


def test_module_docstrings_name_the_endpoints():
    for name, endpoint in (("ollama", "/api/ps"), ("llamacpp", "/slots"), ("triton", "/v2/repository/index"),
                           ("vllm", "/sleep?level=2"), ("tensorrt_llm", "/prometheus/metrics")):
        __import__(f"collectors.runtimes.{name}")
        assert endpoint in sys.modules[f"collectors.runtimes.{name}"].__doc__
