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

from collectors.runtimes.base import LoadedModel, RuntimeApiError, RuntimeClient, number
from collectors.runtimes.vllm import OpenAIModelsMixin


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

    def iteration_stats(self) -> dict[str, float]:
        return iteration_values(self._json("GET", "/metrics"))

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
