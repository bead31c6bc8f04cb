"""Everything the proxy knows about particular runtimes, in one small place.

Plain functions of the runtime kind (the proxy's `--runtime`) and the request: which POSTs run a
model, how a rejected or unreachable request is answered in the client's own dialect, what the
proxy reads from a request body. The proxy itself is runtime-agnostic; the runtime registry
(collectors/runtimes/) can take these over kind by kind.

Facts used (paths as the runtimes serve them): Ollama /api/generate|chat|embed|embeddings and its
busy reply (server/sched.go, "server busy, please try again.  maximum pending requests exceeded",
503); OpenAI-compatible /v1/chat/completions|completions|embeddings|responses (vLLM, llama.cpp,
TensorRT-LLM), llama.cpp's native /completion|infill|embedding|rerank|reranking, Triton's
/v2/models/<m>[/versions/<v>]/infer|generate|generate_stream, TGI-style /generate.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# POST paths that run a model (everything else is forwarded but not recorded or throttled);
# matched against the normalised, lower-cased path (collectors.proxy.request.classify_path)
_INFERENCE = re.compile(
    r"^(/api/(generate|chat|embed|embeddings)"
    r"|(/v1)?/(chat/completions|completions|embeddings|responses|completion|infill|embedding"
    r"|rerank|reranking)"
    r"|/v2/models/[^/]+(/versions/[^/]+)?/(infer|generate|generate_stream)"
    r"|/generate)/?$"
)
_MODEL_RE = re.compile(rb'"model"\s*:\s*"((?:[^"\\]|\\.){0,300})"')
PEEK_JSON_MAX = 256 * 1024
OLLAMA_BUSY = "server busy, please try again.  maximum pending requests exceeded"


@dataclass(frozen=True)
class Peek:
    """What the proxy reads from a request body: the model, and whether it is a control request
    (Ollama's load/unload: no prompt or no messages), which bypasses admission and is no sample."""

    model: str | None = None
    control: bool = False


NOTHING = Peek()


def is_inference(kind: str, method: bytes, path: str) -> bool:
    """A request that runs a model: recorded and subject to admission. `path` is normalised."""
    return method == b"POST" and _INFERENCE.match(path) is not None


def _ollama_dialect(path: str) -> bool:
    return path.startswith("/api/")


def peek(kind: str, path: str, body: bytes) -> Peek:
    """The model and control flag of a request body, without ever raising."""
    if not body:
        return NOTHING
    if len(body) <= PEEK_JSON_MAX:
        try:
            obj = json.loads(body)
        except ValueError:
            return NOTHING
        if not isinstance(obj, dict):
            return NOTHING
        model = obj.get("model")
        control = (
            path.startswith("/api/generate") and not obj.get("prompt") and not obj.get("images")
        ) or (path.startswith("/api/chat") and not obj.get("messages"))
        return Peek(model if isinstance(model, str) else None, control)
    match = _MODEL_RE.search(body)
    if match:
        try:
            return Peek(json.loads(b'"' + match.group(1) + b'"'))
        except ValueError:
            return NOTHING
    return NOTHING


def busy_reply(kind: str, path: str, message: str) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) for a request admission refused, as the client's runtime would say it."""
    if _ollama_dialect(path):
        return 503, {"error": OLLAMA_BUSY}
    return 429, {"error": {"message": message, "type": "rate_limit_exceeded", "code": 429}}


def error_reply(kind: str, path: str, status: int, message: str, kind_of_error: str) -> dict[str, Any]:
    """The JSON body of an error the proxy itself answers (502 unreachable, 400, 413...)."""
    if _ollama_dialect(path):
        return {"error": message}
    return {"error": {"message": message, "type": kind_of_error, "code": status}}
