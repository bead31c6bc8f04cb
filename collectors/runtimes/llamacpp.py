"""llama.cpp `llama-server` (default port 8080).

Facts used: `GET /health` -> 200 {"status": "ok"}, or 503 with an OpenAI-style error while the
model loads. `GET /slots` -> list of slots {id, n_ctx, is_processing, ...} (501 when disabled).
`GET /metrics` (with `--metrics`): Prometheus text, `llamacpp:prompt_tokens_total`,
`llamacpp:tokens_predicted_total`, `llamacpp:requests_processing`, `llamacpp:requests_deferred`, ...
Router (multi-model) mode: `GET /models` lists models with a status (unloaded|loading|loaded|
sleeping, as a string or {"value": ...}); `POST /models/unload {"model"}` evicts. In single-model
mode `/models` is the OpenAI list (entries have no status: the one listed is loaded; `meta.size`
is its file size in bytes) and there is no unload endpoint: evicting means stopping the process.
"""

from __future__ import annotations

from typing import Any

from collectors.runtimes.base import LoadedModel, RuntimeApiError, RuntimeClient, model_name, number


def _status(entry: dict[str, Any]) -> str | None:
    status = entry.get("status")
    if isinstance(status, dict):
        status = status.get("value")
    return status if isinstance(status, str) else None


class LlamaCppClient(RuntimeClient):
    kind = "llamacpp"

    def ping(self) -> bool:
        body = self._json("GET", "/health")
        if isinstance(body, dict) and body.get("status") not in (None, "ok"):
            raise RuntimeApiError(f"llama-server /health: status {str(body.get('status'))[:40]!r}")
        return True

    def _models(self) -> list[dict[str, Any]]:
        body = self._json("GET", "/models")
        entries = body.get("data", body.get("models")) if isinstance(body, dict) else body
        if not isinstance(entries, list):
            raise RuntimeApiError("llama-server /models: no model list in answer")
        return [e for e in entries if isinstance(e, dict)]

    def loaded_models(self) -> list[LoadedModel]:
        out = []
        for entry in self._models():
            name = model_name(entry.get("id")) or model_name(entry.get("model")) or model_name(entry.get("name"))
            status = _status(entry)
            if name is None or status not in (None, "loaded"):
                continue
            meta = entry.get("meta") if isinstance(entry.get("meta"), dict) else {}
            out.append(LoadedModel(name, number(meta.get("size")), None, {"router": status is not None}))
        return out

    def slots(self) -> list[dict[str, Any]]:
        body = self._json("GET", "/slots")
        if not isinstance(body, list):
            raise RuntimeApiError("llama-server /slots: not a list")
        return [s for s in body if isinstance(s, dict)]

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        errors = []
        try:
            out.update(self._prometheus("/metrics"))
        except RuntimeApiError as exc:
            errors.append(exc)
        try:
            slots = self.slots()
        except RuntimeApiError as exc:
            errors.append(exc)
        else:
            out["llamacpp_slots_total"] = float(len(slots))
            out["llamacpp_slots_busy"] = float(sum(1 for s in slots if s.get("is_processing") is True))
        if not out and errors:
            raise errors[0]
        return out

    def evict(self, model: str) -> dict[str, Any]:
        try:
            body = self._json("POST", "/models/unload", body={"model": model})
        except RuntimeApiError as exc:
            if exc.permanent:
                raise RuntimeApiError(f"llama-server has no unload here ({exc.message}); in single-model "
                                      "mode evicting means stopping the process", permanent=True) from None
            raise
        return body if isinstance(body, dict) else {"answer": body}
