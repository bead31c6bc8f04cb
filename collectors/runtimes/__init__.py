"""The runtime registry: one `RuntimeKind` per module of this package (see kind.py), and every list
the rest of ThoxDash needs, derived from them.

Admin clients: `client_for(kind, url, timeout)` picks one; every call has a timeout and fails with
`RuntimeApiError(message, permanent)`. Adding a runtime = one module with a `KIND` + its tests,
listed in `KINDS` below.
"""

from __future__ import annotations

import json
import re
from typing import Any

from collectors.runtimes import cuquantum, llamacpp, ollama, openai, tensorrt_llm, triton, vllm
from collectors.runtimes.base import LoadedModel, RuntimeApiError, RuntimeClient, parse_prometheus
from collectors.runtimes.kind import Endpoint, ResponseShape, RuntimeKind, openai_error
from collectors.runtimes.llamacpp import LlamaCppClient
from collectors.runtimes.ollama import OllamaClient
from collectors.runtimes.tensorrt_llm import TensorRtLlmClient
from collectors.runtimes.triton import TritonClient
from collectors.runtimes.vllm import VllmClient

# Order matters where kinds overlap: process matching and response shapes are tried in this order.
KINDS: tuple[RuntimeKind, ...] = (
    ollama.KIND, llamacpp.KIND, tensorrt_llm.KIND, triton.KIND, vllm.KIND, cuquantum.KIND, openai.KIND)
DEFAULT_KIND = "openai"  # what the proxy assumes of a path no kind claims

_BY_NAME: dict[str, RuntimeKind] = {}
for _kind in KINDS:
    for _name in _kind.names:
        if _name.lower() in _BY_NAME:
            raise RuntimeError(f"runtime kind name {_name!r} declared twice")
        _BY_NAME[_name.lower()] = _kind

CLIENTS: dict[str, type[RuntimeClient]] = {
    name: kind.client for name, kind in _BY_NAME.items() if kind.client is not None}


def get_kind(name: str | None) -> RuntimeKind | None:
    """The kind for a name or alias (case-insensitive), else None."""
    return _BY_NAME.get(name.lower()) if isinstance(name, str) else None


def kind_names() -> list[str]:
    """The canonical kind names, registry order."""
    return [k.name for k in KINDS]


def client_for(kind: str, url: str, timeout: float = 2.0) -> RuntimeClient:
    """The admin client for a runtime kind; ValueError names the kinds known."""
    found = get_kind(kind)
    if found is None or found.client is None:
        raise ValueError(f"unknown runtime kind {kind!r}: use one of {', '.join(sorted(CLIENTS))}")
    return found.client(url, timeout=timeout)


def default_ceilings() -> dict[str, float]:
    """{kind: default memory ceiling in bytes} for the kinds that declare one."""
    return {k.name: k.default_ceiling_bytes for k in KINDS if k.default_ceiling_bytes}


def total_gauges() -> frozenset[str]:
    """Series runtime clients write under a `_total` name that are gauges, not counters."""
    return frozenset(name for k in KINDS for name in k.total_gauges)


def scrape_kinds() -> tuple[str, ...]:
    return tuple(k.name for k in KINDS if k.scrape is not None)


def canary_kinds() -> tuple[str, ...]:
    """Every name (with aliases) a speed check can be run for."""
    return tuple(n for k in KINDS if k.canary is not None for n in k.names)


# -- the proxy's view: inference paths, response shapes, busy and error replies ----------------------
_ENDPOINTS: list[tuple[RuntimeKind, Endpoint]] = [(k, e) for k in KINDS for e in k.inference]
# matched without regard to case: routers of some runtimes ignore it, so `/API/generate` must not
# slip past admission and recording
INFERENCE = re.compile("^(" + "|".join(f"(?:{e.pattern})" for _, e in _ENDPOINTS) + ")/?$", re.IGNORECASE)
_ENDPOINT_RES = [(k, e, re.compile(f"^(?:{e.pattern})/?$", re.IGNORECASE)) for k, e in _ENDPOINTS]
SHAPES: tuple[ResponseShape, ...] = tuple(k.shape for k in KINDS if k.shape is not None)


def endpoint_for(path: str) -> tuple[RuntimeKind, Endpoint] | None:
    """The kind and endpoint an inference path belongs to (None: not an inference path)."""
    if INFERENCE.match(path) is None:
        return None
    for kind, endpoint, rx in _ENDPOINT_RES:
        if rx.match(path):
            return kind, endpoint
    return None  # pragma: no cover - INFERENCE is the union of these


def _kind_of(path: str) -> RuntimeKind:
    found = endpoint_for(path)
    return found[0] if found is not None else _BY_NAME[DEFAULT_KIND]


def client_kind(path: str) -> RuntimeKind:
    """The kind whose own clients call `path` (by prefix, e.g. Ollama's /api/), else the default."""
    for kind in KINDS:
        if any(path.startswith(prefix) for prefix in kind.client_paths):
            return kind
    return _BY_NAME[DEFAULT_KIND]


def busy_reply(path: str, message: str, retry_s: int) -> tuple[int, dict[str, Any]]:
    """What the proxy answers a request it rejects: the busy reply the path's clients know."""
    kind = client_kind(path)
    return (kind.busy or openai.rate_limited)(message, retry_s)


def error_reply(path: str, message: str, type_: str, code: int) -> dict[str, Any]:
    """An error body in the style the clients of `path` parse."""
    if client_kind(path).plain_errors:
        return {"error": message}
    return openai_error(message, type_, code)


MODEL_RE = re.compile(rb'"model"\s*:\s*"((?:[^"\\]|\\.){0,300})"')
PEEK_JSON_MAX = 256 * 1024


def peek(path: str, body: bytes) -> tuple[str | None, bool]:
    """(model, is_control) from a request body, without ever raising. A control request (e.g.
    Ollama's load/unload) bypasses admission and is not a latency sample."""
    if not body:
        return None, False
    if len(body) <= PEEK_JSON_MAX:
        try:
            obj = json.loads(body)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            model = obj.get("model")
            kind = _kind_of(path)
            control = bool(kind.control(path, obj)) if kind.control is not None else False
            return (model if isinstance(model, str) else None), control
        return None, False
    match = MODEL_RE.search(body)
    if match:
        try:
            return json.loads(b'"' + match.group(1) + b'"'), False
        except ValueError:
            return None, False
    return None, False


__all__ = ["CLIENTS", "KINDS", "INFERENCE", "SHAPES", "LoadedModel", "RuntimeApiError", "RuntimeClient",
           "RuntimeKind", "busy_reply", "canary_kinds", "client_for", "client_kind", "default_ceilings", "endpoint_for",
           "error_reply", "get_kind", "kind_names", "parse_prometheus", "peek", "scrape_kinds", "total_gauges",
           "LlamaCppClient", "OllamaClient", "TensorRtLlmClient", "TritonClient", "VllmClient"]
