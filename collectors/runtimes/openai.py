"""Any OpenAI-compatible server (llama-cpp-python's server, LocalAI, ...): the generic kind, and
the OpenAI response shape the other OpenAI-compatible kinds (llama.cpp, vLLM, TensorRT-LLM) share.

Facts used: `GET /v1/models` -> {"data": [{"id"}]}. Responses: `choices[].delta.{content,
reasoning_content, reasoning, tool_calls}` when streaming (SSE, `data: [DONE]` last), `.message`
or `.text` when not; `finish_reason`; `usage` {prompt_tokens, completion_tokens,
prompt_tokens_details.cached_tokens} (in a stream only with `stream_options.include_usage`).
Errors: {"error": {"message", "type", "code"}}.
"""

from __future__ import annotations

from typing import Any

from collectors.runtimes.base import LoadedModel, RuntimeApiError, RuntimeClient, model_name
from collectors.runtimes.kind import Endpoint, ResponseShape, RuntimeKind, Times, openai_error

OUTPUT_KEYS = ("content", "reasoning_content", "reasoning", "tool_calls")
CHAT = Endpoint(r"(/v1)?/chat/completions", "sse")
INFERENCE = (
    CHAT,
    Endpoint(r"(/v1)?/completions", "sse"),
    Endpoint(r"(/v1)?/embeddings", "json"),
    Endpoint(r"(/v1)?/responses", "sse"),
)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def observe(obj: dict[str, Any], seen: dict[str, Any]) -> bool:
    output = False
    choices = obj.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                delta = choice.get("message")
            if isinstance(delta, dict) and any(delta.get(k) for k in OUTPUT_KEYS):
                output = True
            text = choice.get("text")
            if isinstance(text, str) and text:
                output = True
            reason = choice.get("finish_reason")
            if isinstance(reason, str) and reason:
                seen["done_reason"] = reason
    usage = obj.get("usage")
    if isinstance(usage, dict):
        seen["usage"] = usage
    return output


def fields(seen: dict[str, Any], out: dict[str, Any], times: Times) -> None:
    usage = seen.get("usage") or {}
    for key in ("prompt_tokens", "completion_tokens"):
        count = _num(usage.get(key))
        if count is not None:
            out[key] = int(count)
    details = usage.get("prompt_tokens_details")
    cached = _num(details.get("cached_tokens")) if isinstance(details, dict) else None
    if cached is not None:
        out.setdefault("cached_tokens", int(cached))


SHAPE = ResponseShape("openai", observe, fields)


def chat_request(model: str, prompt: str, max_tokens: int) -> tuple[str, dict[str, Any]]:
    """A deterministic, streaming, short chat completion (the canary's request)."""
    return "/v1/chat/completions", {
        "model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
        "temperature": 0, "seed": 1, "stream": True, "stream_options": {"include_usage": True}}


def rate_limited(message: str, retry_s: int) -> tuple[int, dict[str, Any]]:
    return 429, openai_error(message, "rate_limit_exceeded", 429)


class OpenAIModelsMixin:
    def _openai_models(self: Any) -> list[str]:
        body = self._json("GET", "/v1/models")
        entries = body.get("data") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            raise RuntimeApiError(f"{self.kind} /v1/models: no 'data' list in answer")
        names = [model_name(e.get("id")) for e in entries if isinstance(e, dict)]
        return [n for n in names if n]


class OpenAIClient(OpenAIModelsMixin, RuntimeClient):
    """A server known only to speak OpenAI: models, no metrics, no evict."""

    kind = "openai"

    def ping(self) -> bool:
        self._openai_models()
        return True

    def loaded_models(self) -> list[LoadedModel]:
        return [LoadedModel(name) for name in self._openai_models()]


KIND = RuntimeKind(
    name="openai",
    title="OpenAI-compatible server",
    client=OpenAIClient,
    aliases=("llama_cpp_python", "llama-cpp-python"),
    default_runtime=False,
    inference=INFERENCE,
    shape=SHAPE,
    busy=rate_limited,
    canary=chat_request,
    notes="llama-cpp-python's server: one request at a time; no health, metrics or unload.",
)
