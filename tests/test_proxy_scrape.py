"""Passive latency scrapers against loopback servers exposing each runtime's real formats."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from aiohttp import web

from collectors.sources.latency_scrape import LatencyScrapeSource, latency_sources

PROM = "text/plain; version=0.0.4; charset=utf-8"


class Pages:
    """A loopback HTTP server whose pages the test rewrites between scrapes."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[int, str, str]] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner: web.ServerRunner | None = None
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> str:
        self.runner = web.ServerRunner(web.Server(self._handle), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def _handle(self, request: web.BaseRequest) -> web.Response:
        status, ctype, text = self.pages.get(request.path, (404, "text/plain", "not found"))
        return web.Response(status=status, text=text, headers={"Content-Type": ctype})

    def set(self, path: str, text: str, ctype: str = PROM, status: int = 200) -> None:
        self.pages[path] = (status, ctype, text)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def server():
    s = Pages()
    yield s
    s.stop()


def llamacpp_metrics(
    prompt_n: int, prompt_s: float, pred_n: int, pred_s: float, busy: int, deferred: int
) -> str:
    return f"""# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total {prompt_n}
# HELP llamacpp:prompt_seconds_total Prompt process time
# TYPE llamacpp:prompt_seconds_total counter
llamacpp:prompt_seconds_total {prompt_s}
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total {pred_n}
# HELP llamacpp:tokens_predicted_seconds_total Predict process time
# TYPE llamacpp:tokens_predicted_seconds_total counter
llamacpp:tokens_predicted_seconds_total {pred_s}
# HELP llamacpp:prompt_tokens_seconds Average prompt throughput in tokens/s.
# TYPE llamacpp:prompt_tokens_seconds gauge
llamacpp:prompt_tokens_seconds 200
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing {busy}
# HELP llamacpp:requests_deferred Number of requests deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred {deferred}
"""


def histogram(name: str, label: str, model: str, count: int, total: float) -> str:
    return (
        f"# HELP {name} x\n# TYPE {name} histogram\n"
        f'{name}_bucket{{le="0.1",{label}="{model}"}} {count // 2}\n'
        f'{name}_bucket{{le="+Inf",{label}="{model}"}} {count}\n'
        f'{name}_count{{{label}="{model}"}} {count}\n'
        f'{name}_sum{{{label}="{model}"}} {total}\n'
    )


def test_llamacpp_metrics_give_decode_and_prompt_rates(server):
    src = LatencyScrapeSource(
        url=server.url, kind="llamacpp", runtime="llama-server", model="qwen3-4b"
    )
    assert src.available()
    server.set("/metrics", llamacpp_metrics(100, 0.5, 200, 10.0, 1, 0))
    (first,) = src.collect(1.0)
    assert first["values"] == {
        'requests_running{runtime="llama-server"}': 1.0,
        'requests_waiting{runtime="llama-server"}': 0.0,
        'latency_scrape_up{runtime="llama-server"}': 1.0,
    }  # baseline only
    server.set("/metrics", llamacpp_metrics(300, 1.5, 500, 20.0, 2, 3))
    (second,) = src.collect(2.0)
    v = second["values"]
    assert v[
        'request_decode_tokens_per_second{model="qwen3-4b",runtime="llama-server"}'
    ] == pytest.approx(30.0)
    assert v[
        'request_prompt_tokens_per_second{model="qwen3-4b",runtime="llama-server"}'
    ] == pytest.approx(200.0)
    assert v['requests_waiting{runtime="llama-server"}'] == 3.0


def vllm_metrics(n: int, ttft: float, e2e: float, queue: float, itl_n: int, itl: float) -> str:
    m = "Qwen/Qwen3-4B"
    return (
        histogram("vllm:time_to_first_token_seconds", "model_name", m, n, ttft)
        + histogram("vllm:e2e_request_latency_seconds", "model_name", m, n, e2e)
        + histogram("vllm:request_queue_time_seconds", "model_name", m, n, queue)
        + histogram("vllm:inter_token_latency_seconds", "model_name", m, itl_n, itl)
        + f"# HELP vllm:num_requests_running x\n# TYPE vllm:num_requests_running gauge\n"
        f'vllm:num_requests_running{{engine="0",model_name="{m}"}} 4\n'
        f"# HELP vllm:num_requests_waiting x\n# TYPE vllm:num_requests_waiting gauge\n"
        f'vllm:num_requests_waiting{{engine="0",model_name="{m}"}} 1\n'
        f"# HELP vllm:request_success_total x\n# TYPE vllm:request_success_total counter\n"
        f'vllm:request_success_total{{engine="0",finished_reason="stop",model_name="{m}"}} {n - 1}\n'
        f'vllm:request_success_total{{engine="0",finished_reason="length",model_name="{m}"}} 1\n'
    )


def test_vllm_histograms_become_interval_means(server):
    src = LatencyScrapeSource(url=server.url, kind="vllm")
    server.set("/metrics", vllm_metrics(10, 1.0, 20.0, 0.5, 1000, 20.0))
    src.collect(1.0)
    server.set("/metrics", vllm_metrics(14, 2.2, 30.0, 0.9, 1500, 30.0))
    v = src.collect(2.0)[0]["values"]
    labels = '{model="Qwen/Qwen3-4B",runtime="vllm"}'
    assert v[f"request_ttft_seconds{labels}"] == pytest.approx(0.3)
    assert v[f"request_total_seconds{labels}"] == pytest.approx(2.5)
    assert v[f"request_queue_seconds{labels}"] == pytest.approx(0.1)
    assert v[f"request_decode_tokens_per_second{labels}"] == pytest.approx(50.0)
    assert v[f"requests_running{labels}"] == 4 and v[f"requests_waiting{labels}"] == 1
    assert v[f"requests_total{labels}"] == 14


def triton_stats(success: tuple[int, int], queue: tuple[int, int], infer: tuple[int, int]) -> str:
    def stat(c: tuple[int, int]) -> dict[str, int]:
        return {"count": c[0], "ns": c[1]}

    return json.dumps(
        {
            "model_stats": [
                {
                    "name": "yolo26n",
                    "version": "1",
                    "last_inference": 1763890000000,
                    "inference_count": success[0],
                    "execution_count": success[0],
                    "inference_stats": {
                        "success": stat(success),
                        "fail": stat((0, 0)),
                        "queue": stat(queue),
                        "compute_input": stat((success[0], 1000)),
                        "compute_infer": stat(infer),
                        "compute_output": stat((success[0], 1000)),
                    },
                    "batch_stats": [],
                    "memory_usage": [{"type": "GPU", "id": 0, "byte_size": 12345678}],
                }
            ]
        }
    )


def test_triton_stats_give_queue_compute_and_total_means(server):
    src = LatencyScrapeSource(url=server.url, kind="triton")
    server.set(
        "/v2/models/stats",
        triton_stats((100, 2_000_000_000), (100, 100_000_000), (100, 1_500_000_000)),
        "application/json",
    )
    src.collect(1.0)
    server.set(
        "/v2/models/stats",
        triton_stats((150, 3_250_000_000), (150, 125_000_000), (150, 2_500_000_000)),
        "application/json",
    )
    v = src.collect(2.0)[0]["values"]
    labels = '{model="yolo26n",runtime="triton"}'
    assert v[f"request_total_seconds{labels}"] == pytest.approx(0.025)
    assert v[f"request_queue_seconds{labels}"] == pytest.approx(0.0005)
    assert v[f"request_compute_seconds{labels}"] == pytest.approx(0.02)
    assert v[f"requests_total{labels}"] == 150


def test_tensorrt_llm_prometheus_and_iteration_stats(server):
    src = LatencyScrapeSource(url=server.url, kind="tensorrt_llm", model="llama")
    m = "llama-3.1-8b"

    def prom(n: int, ttft: float, queue: float) -> str:
        return histogram(
            "trtllm_time_to_first_token_seconds", "model_name", m, n, ttft
        ) + histogram("trtllm_request_queue_time_seconds", "model_name", m, n, queue)

    iters = [
        {"iterLatencyMS": 12.0, "numActiveRequests": 3, "gpuMemUsage": 1 << 30},
        {
            "iterLatencyMS": 14.0,
            "numActiveRequests": 2,
            "numQueuedRequests": 5,
            "gpuMemUsage": 1 << 30,
        },
    ]
    server.set("/prometheus/metrics", prom(2, 0.2, 0.02))
    server.set("/metrics", json.dumps(iters), "application/json")
    src.collect(1.0)
    server.set("/prometheus/metrics", prom(6, 1.0, 0.1))
    v = src.collect(2.0)[0]["values"]
    assert v[f'request_ttft_seconds{{model="{m}",runtime="tensorrt_llm"}}'] == pytest.approx(0.2)
    assert v[f'request_queue_seconds{{model="{m}",runtime="tensorrt_llm"}}'] == pytest.approx(0.02)
    assert (
        v['requests_running{runtime="tensorrt_llm"}'] == 2
        and v['requests_waiting{runtime="tensorrt_llm"}'] == 5
    )
    assert v['runtime_iteration_seconds{runtime="tensorrt_llm"}'] == pytest.approx(0.013)


def test_failures_are_data_and_reset_the_baseline(server):
    src = LatencyScrapeSource(url=server.url, kind="llamacpp")
    server.set("/metrics", "this is { not prometheus")
    recs = src.collect(1.0)
    assert recs[0]["values"] == {'latency_scrape_up{runtime="llamacpp"}': 0.0}
    assert "latency_scrape_error:llamacpp" in recs[1]["state"]
    server.set("/metrics", "down", status=503)
    assert src.collect(2.0)[0]["values"]['latency_scrape_up{runtime="llamacpp"}'] == 0.0
    src.url = "http://127.0.0.1:9"
    assert src.collect(3.0)[0]["values"]['latency_scrape_up{runtime="llamacpp"}'] == 0.0
    src.close()


def test_sources_come_from_the_runtimes_config(tmp_path, monkeypatch):
    cfg = tmp_path / "runtimes.json"
    cfg.write_text(
        json.dumps(
            {
                "runtimes": [
                    {
                        "name": "llama",
                        "kind": "llamacpp",
                        "url": "http://127.0.0.1:8080",
                        "scrape_latency": True,
                        "model": "q",
                    },
                    {"name": "vllm", "kind": "vllm", "url": "http://127.0.0.1:8000"},
                    {
                        "name": "ollama",
                        "kind": "ollama",
                        "url": "http://127.0.0.1:11434",
                        "scrape_latency": True,
                    },
                ]
            }
        )
    )
    monkeypatch.setenv("THOXDASH_AGENT_RUNTIMES", str(cfg))
    (src,) = latency_sources(tmp_path, lambda name: 5.0)
    assert (src.kind, src.runtime, src.model, src.interval, src.name) == (
        "llamacpp",
        "llama",
        "q",
        5.0,
        "latency_scrape:llama",
    )
