"""TensorRT-LLM `trtllm-serve`.

Facts used: `GET /health`, `GET /v1/models` -> {"data": [{"id"}]}; `GET /prometheus/metrics`
Prometheus text (`trtllm_time_to_first_token_seconds`, `trtllm_kv_cache_utilization`,
`trtllm_gpu_memory_usage_bytes`, ...); `GET /metrics` JSON iteration stats (only with
`enable_iter_perf_stats`, drained on each read) -> [{gpuMemUsage, iterLatencyMS,
numActiveRequests, kvCacheStats{...}}]. One model per process: evicting means stopping the
process, so `evict` is refused as permanent.
"""

from __future__ import annotations

from typing import Any

from collectors.proxy.series import DECODE_TPS, QUEUE, RUNNING, TOTAL, TTFT, WAITING
from collectors.runtimes.base import LoadedModel, RuntimeApiError, RuntimeClient, number
from collectors.runtimes.kind import AdminCalls, RuntimeKind, flag_port
from collectors.runtimes.openai import OpenAIModelsMixin, chat_request, rate_limited
from collectors.runtimes.scrape import Scrape, by_label

REQUESTS_TOTAL = "requests_total"
ITERATION = "runtime_iteration_seconds"


def iteration_values(stats: Any) -> dict[str, float]:
    """The newest iteration-stats entry as series (bytes, ms, counts)."""
    if not isinstance(stats, list) or not stats or not isinstance(stats[-1], dict):
        return {}
    last = stats[-1]
    out: dict[str, float | None] = {
        "trtllm_gpu_mem_usage_bytes": number(last.get("gpuMemUsage")),
        "trtllm_iter_latency_seconds": (v / 1000.0 if (v := number(last.get("iterLatencyMS"))) is not None else None),
        "trtllm_active_requests": number(last.get("numActiveRequests"), limit=1e9),
    }
    kv = last.get("kvCacheStats")
    if isinstance(kv, dict):
        for key in ("maxNumBlocks", "freeNumBlocks", "usedNumBlocks"):
            out[f"trtllm_kv_cache_{key}"] = number(kv.get(key), limit=1e12)
    return {k: v for k, v in out.items() if v is not None}


class TensorRtLlmClient(OpenAIModelsMixin, RuntimeClient):
    kind = "tensorrt_llm"
    _last_metrics: dict[str, float] | None = None

    def ping(self) -> bool:
        self._request("GET", "/health")
        return True

    def iteration_json(self) -> Any:
        """GET /metrics (iteration stats, drained on each read): one read shared per agent tick."""
        resp = self._shared("/metrics")
        try:
            return resp.json()
        except ValueError:
            raise RuntimeApiError(f"tensorrt_llm GET /metrics: body is not JSON: {resp.text[:120]!r}") from None

    def iteration_stats(self) -> dict[str, float]:
        return iteration_values(self.iteration_json())

    def loaded_models(self) -> list[LoadedModel]:
        names = self._openai_models()
        # /metrics JSON is drained on each read: use what the last metrics() call saw, if any.
        seen = self._last_metrics
        if seen is None:
            try:
                seen = self.metrics()
            except RuntimeApiError:
                seen = {}
        vram = seen.get("trtllm_gpu_memory_usage_bytes", seen.get("trtllm_gpu_mem_usage_bytes"))
        self._last_metrics = None
        return [LoadedModel(name, None, vram if len(names) == 1 else None) for name in names]

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        try:
            out.update(self._prometheus("/prometheus/metrics"))
        except RuntimeApiError as exc:
            if not exc.permanent:
                raise
        try:
            out.update(self.iteration_stats())
        except RuntimeApiError:
            if not out:
                raise
        self._last_metrics = out
        return out

    def evict(self, model: str) -> dict[str, Any]:
        raise RuntimeApiError("TensorRT-LLM serves one model per process: evicting means stopping "
                              "the process", permanent=True)


def scrape(sc: Scrape, values: dict[str, float | None]) -> None:
    """GET /prometheus/metrics histograms as interval means; GET /metrics iteration stats
    (numActiveRequests, numQueuedRequests, iterLatencyMS) when enable_iter_perf_stats is on."""
    s = sc.samples("/prometheus/metrics")
    # tensorrt_llm/metrics/collector.py names them without a prefix in some versions, `trtllm_` in others
    p = "trtllm_" if any(name.startswith("trtllm_") for name, _ in s) else ""
    sc.histograms(s, {f"{p}time_to_first_token_seconds": TTFT, f"{p}e2e_request_latency_seconds": TOTAL,
                      f"{p}request_queue_time_seconds": QUEUE,
                      f"{p}time_per_output_token_seconds": DECODE_TPS}, "model_name", values,
                  per_token=DECODE_TPS)
    for model, value in by_label(s, f"{p}request_success_total", "model_name").items():
        values[sc.key(REQUESTS_TOTAL, model or sc.model)] = value
    client = sc.client
    assert isinstance(client, TensorRtLlmClient)
    try:
        stats = client.iteration_json()
    except RuntimeApiError:
        return  # iteration stats are optional (enable_iter_perf_stats)
    if isinstance(stats, dict):
        stats = [stats]
    stats = [x for x in stats if isinstance(x, dict)] if isinstance(stats, list) else []
    if stats:
        last = stats[-1]
        for key, series in (("numActiveRequests", RUNNING), ("numQueuedRequests", WAITING)):
            if isinstance(last.get(key), (int, float)):
                values[sc.key(series)] = float(last[key])
        lat = [x["iterLatencyMS"] for x in stats if isinstance(x.get("iterLatencyMS"), (int, float))]
        if lat:
            values[sc.key(ITERATION)] = sum(lat) / len(lat) / 1000


KIND = RuntimeKind(
    name="tensorrt_llm",
    title="TensorRT-LLM trtllm-serve",
    client=TensorRtLlmClient,
    aliases=("trtllm", "trtllm-serve"),
    default_port=8000,
    process_names=("trtllm-serve",),
    process_cmdline=(r"(^|[/\s])trtllm-serve(\s|$)",),
    port_of=flag_port(("--port",), 8000),
    default_ceiling_bytes=6e9,
    busy=rate_limited,
    scrape=scrape,
    canary=chat_request,
    admin=AdminCalls(health="GET /health", list="GET /v1/models"),
    notes="One model per process: evicting means stopping the process.",
)
