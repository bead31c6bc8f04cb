"""What the proxy asks about runtimes, answered by the runtime registry (collectors/runtimes/).

Plain functions of the runtime kind (the proxy's `--runtime`) and the request: which POSTs run a
model, how a rejected or unreachable request is answered in the client's own dialect, what the
proxy reads from a request body. The proxy itself is runtime-agnostic: each kind's module declares
its inference endpoints, busy reply, error style and control requests, and the registry unions them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collectors import runtimes


@dataclass(frozen=True)
class Peek:
    """What the proxy reads from a request body: the model, and whether it is a control request
    (e.g. Ollama's load/unload: no prompt or no messages), which bypasses admission and is no sample."""

    model: str | None = None
    control: bool = False


NOTHING = Peek()


def is_inference(kind: str, method: bytes, path: str) -> bool:
    """A request that runs a model: recorded and subject to admission. `path` is normalised."""
    return method == b"POST" and runtimes.INFERENCE.match(path) is not None


def peek(kind: str, path: str, body: bytes) -> Peek:
    """The model and control flag of a request body, without ever raising."""
    model, control = runtimes.peek(path.lower(), body)
    return Peek(model, control) if (model is not None or control) else NOTHING


def busy_reply(kind: str, path: str, message: str) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) for a request admission refused, as the client's runtime would say it."""
    return runtimes.busy_reply(path.lower(), message, 0)


def error_reply(kind: str, path: str, status: int, message: str, kind_of_error: str) -> dict[str, Any]:
    """The JSON body of an error the proxy itself answers (502 unreachable, 400, 413...)."""
    return runtimes.error_reply(path.lower(), message, kind_of_error, status)
