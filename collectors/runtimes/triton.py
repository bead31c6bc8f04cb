"""NVIDIA Triton Inference Server (HTTP 8000, metrics 8002).

Facts used: `GET /v2/health/ready` is the health check. `POST /v2/repository/index` -> [{name,
version, state, reason}] (state READY = loaded). `GET /v2/models/{m}/stats` -> {"model_stats":
[{name, version, inference_stats{success{count, ns}, queue{...}, ...}, memory_usage: [{type:
CPU|CPU_PINNED|GPU, id, byte_size}]}]}. Evict = `POST /v2/repository/models/{m}/unload` (only with
`--model-control-mode=explicit`; otherwise Triton answers 400). Prometheus metrics live on port
8002 (`nv_inference_request_success`, `nv_inference_queue_duration_us`, ...; no GPU metrics on
Jetson).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from collectors.proxy.series import QUEUE, TOTAL
from collectors.runtimes.base import LoadedModel, RuntimeApiError, RuntimeClient, model_name, number
from collectors.runtimes.http import Transport
from collectors.runtimes.kind import AdminCalls, Endpoint, ResponseShape, RuntimeKind, Times, flag_port
from collectors.runtimes.openai import rate_limited
from collectors.runtimes.scrape import Scrape

REQUESTS_TOTAL = "requests_total"
COMPUTE = "request_compute_seconds"


def default_metrics_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return urlunsplit((parts.scheme or "http", f"{host}:8002", "", "", ""))


class TritonClient(RuntimeClient):
    kind = "triton"

    def __init__(self, url: str, timeout: float = 2.0, transport: Transport | None = None,
                 metrics_url: str | None = None):
        super().__init__(url, timeout, transport)
        self.metrics_url = (metrics_url or default_metrics_url(self.url)).rstrip("/")

    def ping(self) -> bool:
        self._request("GET", "/v2/health/ready")
        return True

    def index(self) -> list[dict[str, Any]]:
        body = self._json("POST", "/v2/repository/index", body={})
        if not isinstance(body, list):
            raise RuntimeApiError("triton repository index: not a list")
        return [e for e in body if isinstance(e, dict)]

    def memory_usage(self, model: str) -> tuple[float | None, float | None]:
        """(all bytes, GPU bytes) from the model's stats memory_usage."""
        body = self._json("GET", f"/v2/models/{quote(model, safe='')}/stats")
        stats = body.get("model_stats") if isinstance(body, dict) else None
        total = gpu = None
        for entry in stats if isinstance(stats, list) else []:
            usage = entry.get("memory_usage") if isinstance(entry, dict) else None
            for item in usage if isinstance(usage, list) else []:
                size = number(item.get("byte_size")) if isinstance(item, dict) else None
                if size is None:
                    continue
                total = (total or 0.0) + size
                if item.get("type") == "GPU":
                    gpu = (gpu or 0.0) + size
        return total, gpu

    def loaded_models(self) -> list[LoadedModel]:
        out = []
        for entry in self.index():
            name = model_name(entry.get("name"))
            if name is None or entry.get("state") != "READY":
                continue
            try:
                total, gpu = self.memory_usage(name)
            except RuntimeApiError:
                total = gpu = None
            out.append(LoadedModel(name, total, gpu, {"version": str(entry.get("version", ""))[:32]}))
        return out

    def metrics(self) -> dict[str, float]:
        return self._prometheus("/metrics", base=self.metrics_url)

    def evict(self, model: str) -> dict[str, Any]:
        self._request("POST", f"/v2/repository/models/{quote(model, safe='')}/unload", body={})
        return {"unloaded": model}


def observe(obj: dict[str, Any], seen: dict[str, Any]) -> bool:
    """The generate extension (docs/protocol/extension_generate.md, triton-inference-server/server
    8f5f51572a240b2532e18838d265a10dde097e7b): {"model_name", "model_version", "text_output"}, one
    object (/generate) or one SSE event per response (/generate_stream)."""
    text = obj.get("text_output")
    return isinstance(text, str) and bool(text)


def fields(seen: dict[str, Any], out: dict[str, Any], times: Times) -> None:
    """Triton's generate answers carry no token counts or timings: the proxy's own clock serves."""


def scrape(sc: Scrape, values: dict[str, float | None]) -> None:
    """GET /v2/models/stats: per model (and version) success / queue / compute_infer {count, ns}."""
    stats = sc.json("/v2/models/stats")
    for entry in stats.get("model_stats", []):
        model = str(entry.get("name", ""))
        if entry.get("version") not in (None, "", "1"):
            model = f"{model}:{entry['version']}"
        inf = entry.get("inference_stats") or {}
        for part, series in (("success", TOTAL), ("queue", QUEUE), ("compute_infer", COMPUTE)):
            stat = inf.get(part) or {}
            count, ns = stat.get("count"), stat.get("ns")
            if isinstance(count, (int, float)) and isinstance(ns, (int, float)):
                values[sc.key(series, model)] = sc.mean(f"triton/{model}/{part}", ns / 1e9, count)
        success = (inf.get("success") or {}).get("count")
        if isinstance(success, (int, float)):
            values[sc.key(REQUESTS_TOTAL, model)] = float(success)


KIND = RuntimeKind(
    name="triton",
    title="NVIDIA Triton Inference Server",
    client=TritonClient,
    aliases=("tritonserver",),
    default_port=8000,
    process_names=("tritonserver",),
    port_of=flag_port(("--http-port",), 8000),
    inference=(Endpoint(r"/v2/models/[^/]+(/versions/[^/]+)?/(infer|generate)", "json"),
               Endpoint(r"/v2/models/[^/]+(/versions/[^/]+)?/generate_stream", "sse")),
    shape=ResponseShape("triton", observe, fields),
    busy=rate_limited,
    scrape=scrape,
    admin=AdminCalls(health="GET /v2/health/ready", list="POST /v2/repository/index",
                     load="POST /v2/repository/models/{m}/load", unload="POST /v2/repository/models/{m}/unload"),
    notes="Load/unload only with --model-control-mode=explicit; metrics on port 8002.",
)
