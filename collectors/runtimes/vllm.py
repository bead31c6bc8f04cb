"""vLLM OpenAI server (default port 8000).

Facts used: `GET /health` (503 when the engine died), `GET /v1/models` -> {"data": [{"id", ...}]},
`GET /metrics` Prometheus text (`vllm:num_requests_running`, `vllm:num_requests_waiting`,
`vllm:kv_cache_usage_perc`, `vllm:time_to_first_token_seconds`, ...). Evict = `POST /sleep?level=2`
(needs `VLLM_SERVER_DEV_MODE=1 --enable-sleep-mode`; on unified memory only level 2 frees physical
memory); `GET /is_sleeping` -> {"is_sleeping": bool}. A sleeping server holds no model.
"""

from __future__ import annotations

from typing import Any

from collectors.runtimes.base import LoadedModel, RuntimeApiError, RuntimeClient, model_name


class OpenAIModelsMixin:
    def _openai_models(self: Any) -> list[str]:
        body = self._json("GET", "/v1/models")
        entries = body.get("data") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            raise RuntimeApiError(f"{self.kind} /v1/models: no 'data' list in answer")
        names = [model_name(e.get("id")) for e in entries if isinstance(e, dict)]
        return [n for n in names if n]


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

    def loaded_models(self) -> list[LoadedModel]:
        if self.is_sleeping():
            return []
        return [LoadedModel(name) for name in self._openai_models()]

    def metrics(self) -> dict[str, float]:
        return self._prometheus("/metrics")

    def evict(self, model: str) -> dict[str, Any]:
        self._request("POST", "/sleep", params={"level": 2})
        return {"sleeping": True, "level": 2, "model": model}
