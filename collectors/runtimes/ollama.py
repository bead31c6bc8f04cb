"""Ollama (default port 11434).

Facts used: `GET /api/version` -> {"version"} is the health check; `GET /api/ps` ->
{"models": [{name, model, size, size_vram, digest, details, expires_at, context_length}]} lists the
loaded models, sizes in bytes (`size_vram < size`: part of the model spilled to CPU). Evict =
`POST /api/generate {"model": m, "keep_alive": 0}` -> {"done": true, "done_reason": "unload"}
(what `ollama stop` sends; the model is freed once in-flight requests finish). Responses may be
NDJSON (`application/x-ndjson`, one object a line); an error can arrive as a line {"error": "..."}
with HTTP 200. Ollama has no Prometheus metrics (ollama#3144), so `metrics()` derives a few from
/api/ps.
"""

from __future__ import annotations

import json
from typing import Any

from collectors.runtimes.base import LoadedModel, RuntimeApiError, RuntimeClient, model_name, number
from collectors.series import series_key


def last_ndjson_object(text: str) -> dict[str, Any]:
    """The final object of an NDJSON (or plain JSON) body; raises RuntimeApiError on an error line."""
    last: dict[str, Any] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            if isinstance(obj.get("error"), str):
                raise RuntimeApiError(f"ollama: {obj['error'][:200]}")
            last = obj
    if last is None:
        raise RuntimeApiError(f"ollama: no JSON object in answer {text[:120]!r}")
    return last


class OllamaClient(RuntimeClient):
    kind = "ollama"

    def ping(self) -> bool:
        body = self._json("GET", "/api/version")
        if not isinstance(body, dict) or "version" not in body:
            raise RuntimeApiError("ollama /api/version: no version in answer")
        return True

    def loaded_models(self) -> list[LoadedModel]:
        body = self._json("GET", "/api/ps")
        models = body.get("models") if isinstance(body, dict) else None
        if not isinstance(models, list):
            raise RuntimeApiError("ollama /api/ps: no 'models' list in answer")
        out = []
        for entry in models:
            if not isinstance(entry, dict):
                continue
            name = model_name(entry.get("name")) or model_name(entry.get("model"))
            if name is None:
                continue
            details = {k: entry[k] for k in ("expires_at", "context_length", "digest") if k in entry}
            out.append(LoadedModel(name, number(entry.get("size")), number(entry.get("size_vram")), details))
        return out

    def metrics(self) -> dict[str, float]:
        models = self.loaded_models()
        out = {"ollama_loaded_models": float(len(models))}
        for m in models:
            if m.size_bytes and m.vram_bytes is not None:
                out[series_key("ollama_model_gpu_ratio", model=m.name)] = min(1.0, m.vram_bytes / m.size_bytes)
        return out

    def evict(self, model: str) -> dict[str, Any]:
        resp = self._request("POST", "/api/generate", body={"model": model, "keep_alive": 0})
        answer = last_ndjson_object(resp.text)
        if answer.get("done") is not True:
            raise RuntimeApiError(f"ollama: unload of {model!r} not confirmed: {json.dumps(answer)[:200]}")
        return answer
