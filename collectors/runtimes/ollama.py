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
from collectors.runtimes.kind import AdminCalls, Endpoint, ResponseShape, RuntimeKind, Times
from collectors.series import series_key

# what Ollama itself answers when its queue is full (server/sched.go ErrMaxQueue)
BUSY = "server busy, please try again.  maximum pending requests exceeded"
OUTPUT_KEYS = ("content", "thinking", "tool_calls")


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


# -- the proxy's view of Ollama's responses ----------------------------------------------------------
def observe(obj: dict[str, Any], seen: dict[str, Any]) -> bool:
    output = False
    response = obj.get("response")
    if isinstance(response, str) and response:
        output = True
    message = obj.get("message")
    if isinstance(message, dict) and any(message.get(k) for k in OUTPUT_KEYS):
        output = True
    if obj.get("done") is True:
        seen["final"] = obj
        reason = obj.get("done_reason")
        if isinstance(reason, str):
            seen["done_reason"] = reason
    return output


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def fields(seen: dict[str, Any], out: dict[str, Any], times: Times) -> None:
    """Nanosecond durations and counts of the final `done: true` object."""
    final = seen.get("final") or {}
    ns = 1e-9
    total = _num(final.get("total_duration"))
    if total is not None:
        out["runtime_total_s"] = round(total * ns, 6)
    load = _num(final.get("load_duration"))
    if load is not None:
        out["load_s"] = round(load * ns, 6)
    for count_key, dur_key, name in (("prompt_eval_count", "prompt_eval_duration", "prompt"),
                                     ("eval_count", "eval_duration", "completion")):
        count = _num(final.get(count_key))
        if count is not None:
            out[f"{name}_tokens"] = int(count)
        dur = _num(final.get(dur_key))
        if dur is not None:
            out[f"{name}_s"] = round(dur * ns, 6)


def busy(message: str, retry_s: int) -> tuple[int, dict[str, Any]]:
    """Ollama's own answer to a full queue, so its clients back off as they already do."""
    return 503, {"error": BUSY}


def control(path: str, body: dict[str, Any]) -> bool:
    """A load/unload request: `/api/generate` with no prompt, `/api/chat` with no messages."""
    return (path.startswith("/api/generate") and not body.get("prompt") and not body.get("images")) or (
        path.startswith("/api/chat") and not body.get("messages"))


def generate_request(model: str, prompt: str, max_tokens: int) -> tuple[str, dict[str, Any]]:
    return "/api/generate", {"model": model, "prompt": prompt, "stream": True,
                             "options": {"num_predict": max_tokens, "temperature": 0, "seed": 1}}


KIND = RuntimeKind(
    name="ollama",
    title="Ollama",
    client=OllamaClient,
    default_port=11434,
    process_names=("ollama", "ollama_llama_se", "ollama_llama_server"),
    port_of=lambda argv: None,  # OLLAMA_HOST is in the environment, not argv
    default_ceiling_bytes=5.5e9,
    inference=(Endpoint(r"/api/(generate|chat)", "ndjson"), Endpoint(r"/api/(embed|embeddings)", "json")),
    client_paths=("/api/",),
    plain_errors=True,
    shape=ResponseShape("ollama", observe, fields),
    busy=busy,
    control=control,
    canary=generate_request,
    admin=AdminCalls(health="GET /api/version", list="GET /api/ps",
                     load='POST /api/generate {"model"}',
                     unload='POST /api/generate {"model", "keep_alive": 0}'),
    notes="No Prometheus metrics (ollama#3144); settings are server environment variables.",
)
