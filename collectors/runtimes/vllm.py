"""vLLM OpenAI server (default port 8000).

Facts used: `GET /health` (503 when the engine died), `GET /v1/models` -> {"data": [{"id", ...}]},
`GET /metrics` Prometheus text (`vllm:num_requests_running`, `vllm:num_requests_waiting`,
`vllm:kv_cache_usage_perc`, `vllm:time_to_first_token_seconds`, ...). Evict = `POST /sleep?level=2`
(needs `VLLM_SERVER_DEV_MODE=1 --enable-sleep-mode`; on unified memory only level 2 frees physical
memory); `GET /is_sleeping` -> {"is_sleeping": bool}. A sleeping server holds no model.
"""

from __future__ import annotations

from typing import Any

from collectors.proxy.series import DECODE_TPS, QUEUE, RUNNING, TOTAL, TTFT, WAITING
from collectors.runtimes.base import LoadedModel, RuntimeApiError, RuntimeClient
from collectors.runtimes.kind import AdminCalls, Endpoint, RuntimeKind, flag_port
from collectors.runtimes.openai import OpenAIModelsMixin, chat_request, rate_limited
from collectors.runtimes.scrape import Scrape, by_label

REQUESTS_TOTAL = "requests_total"


class VllmClient(OpenAIModelsMixin, RuntimeClient):
    kind = "vllm"

    def ping(self) -> bool:
        self._request("GET", "/health")
        return True

    def is_sleeping(self) -> bool | None:
        try:
            body = self._json("GET", "/is_sleeping")
        except RuntimeApiError as exc:
            if exc.permanent:  # sleep mode not enabled
                return None
            raise
        value = body.get("is_sleeping") if isinstance(body, dict) else None
        return value if isinstance(value, bool) else None

    sleeping: list[str] = []  # served models while the engine sleeps (listed, holding no memory)

    def loaded_models(self) -> list[LoadedModel]:
        names = self._openai_models()
        self.sleeping = names if self.is_sleeping() else []
        return [] if self.sleeping else [LoadedModel(name) for name in names]

    def metrics(self) -> dict[str, float]:
        return self._prometheus("/metrics")

    def evict(self, model: str) -> dict[str, Any]:
        self._request("POST", "/sleep", params={"level": 2})
        return {"sleeping": True, "level": 2, "model": model}


def scrape(sc: Scrape, values: dict[str, float | None]) -> None:
    """vllm:time_to_first_token_seconds, e2e_request_latency_seconds, request_queue_time_seconds,
    inter_token_latency_seconds (or the older time_per_output_token_seconds) as interval means;
    num_requests_running / waiting and request_success_total, per model_name."""
    s = sc.samples()
    itl = "vllm:inter_token_latency_seconds"
    if not any(n == f"{itl}_count" for n, _ in s):
        itl = "vllm:time_per_output_token_seconds"
    sc.histograms(s, {"vllm:time_to_first_token_seconds": TTFT, "vllm:e2e_request_latency_seconds": TOTAL,
                      "vllm:request_queue_time_seconds": QUEUE, itl: DECODE_TPS}, "model_name", values,
                  per_token=DECODE_TPS)
    for metric, series in (("vllm:num_requests_running", RUNNING), ("vllm:num_requests_waiting", WAITING)):
        for model, value in by_label(s, metric, "model_name").items():
            values[sc.key(series, model or sc.model)] = value
    for model, value in by_label(s, "vllm:request_success_total", "model_name").items():
        values[sc.key(REQUESTS_TOTAL, model or sc.model)] = value


KIND = RuntimeKind(
    name="vllm",
    title="vLLM",
    client=VllmClient,
    default_port=8000,
    process_cmdline=(r"(^|[/\s])vllm\s+serve(\s|$)", r"\bvllm\.entrypoints\."),
    port_of=flag_port(("--port",), 8000),
    inference=(Endpoint(r"/generate", "json"),),  # vllm.entrypoints.api_server; /v1/* is OpenAI's
    shape=None,  # OpenAI's
    busy=rate_limited,
    scrape=scrape,
    canary=chat_request,
    admin=AdminCalls(health="GET /health", list="GET /v1/models (+ GET /is_sleeping)",
                     load="POST /wake_up", unload="POST /sleep?level=2"),
    notes="Sleep needs VLLM_SERVER_DEV_MODE=1 --enable-sleep-mode; on unified memory only level 2 frees memory.",
)
