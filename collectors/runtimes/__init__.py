"""Runtime admin API clients, one small class per runtime (see each module's docstring for the
facts it relies on). `client_for(kind, url, timeout)` picks one; every call has a timeout and
fails with `RuntimeApiError(message, permanent)`."""

from __future__ import annotations

from collectors.runtimes.base import LoadedModel, RuntimeApiError, RuntimeClient, parse_prometheus
from collectors.runtimes.llamacpp import LlamaCppClient
from collectors.runtimes.ollama import OllamaClient
from collectors.runtimes.tensorrt_llm import TensorRtLlmClient
from collectors.runtimes.triton import TritonClient
from collectors.runtimes.vllm import VllmClient

CLIENTS: dict[str, type[RuntimeClient]] = {
    "ollama": OllamaClient,
    "llamacpp": LlamaCppClient,
    "llama-server": LlamaCppClient,
    "llama.cpp": LlamaCppClient,
    "triton": TritonClient,
    "tritonserver": TritonClient,
    "vllm": VllmClient,
    "tensorrt_llm": TensorRtLlmClient,
    "trtllm": TensorRtLlmClient,
    "trtllm-serve": TensorRtLlmClient,
}


def client_for(kind: str, url: str, timeout: float = 2.0) -> RuntimeClient:
    """The admin client for a runtime kind; ValueError names the kinds known."""
    try:
        cls = CLIENTS[kind.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown runtime kind {kind!r}: use one of "
                         f"{', '.join(sorted(set(CLIENTS)))}") from None
    return cls(url, timeout=timeout)


__all__ = ["CLIENTS", "LoadedModel", "RuntimeApiError", "RuntimeClient", "client_for", "parse_prometheus",
           "LlamaCppClient", "OllamaClient", "TensorRtLlmClient", "TritonClient", "VllmClient"]
