"""Passive latency: scrape a runtime's own counters when no proxy can sit in the request path.

Into the same series the latency proxy publishes (collectors.proxy.series), as means over each
scrape interval (Δsum / Δcount between two reads; the first read is the baseline):
  llamacpp      GET /metrics (llama-server --metrics): llamacpp:tokens_predicted_total /
                tokens_predicted_seconds_total, prompt_tokens_total / prompt_seconds_total,
                requests_processing, requests_deferred
  vllm          GET /metrics: vllm:time_to_first_token_seconds, e2e_request_latency_seconds,
                request_queue_time_seconds, inter_token_latency_seconds (or the older
                time_per_output_token_seconds), num_requests_running / waiting, per model_name
  triton        GET /v2/models/stats: per model success / queue / compute_infer {count, ns}
  tensorrt_llm  GET /prometheus/metrics: trtllm_time_to_first_token_seconds,
                trtllm_request_queue_time_seconds, trtllm_e2e_request_latency_seconds,
                trtllm_time_per_output_token_seconds; and GET /metrics (iteration stats JSON,
                drained on read): numActiveRequests, numQueuedRequests, iterLatencyMS
Extra series: requests_total{model,runtime} (the runtime's counter), request_compute_seconds
(Triton), runtime_iteration_seconds (TensorRT-LLM), latency_scrape_up{runtime}.

Configured like the runtimes source: entries of the THOXDASH_AGENT_RUNTIMES file with
`"scrape_latency": true` (and a `url`) get one of these sources each.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from collectors.proxy.series import DECODE_TPS, PROMPT_TPS, QUEUE, RUNNING, TOTAL, TTFT, WAITING
from collectors.series import series_key
from collectors.sources.base import Source, values_record

REQUESTS_TOTAL = "requests_total"
COMPUTE = "request_compute_seconds"
ITERATION = "runtime_iteration_seconds"
KINDS = ("llamacpp", "vllm", "triton", "tensorrt_llm")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_prometheus(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, keyed by (name, sorted labels)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return out


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    """{label value: sum of the samples of `name`} (summed over the other labels)."""
    out: dict[str, float] = {}
    for (sample, labels), value in samples.items():
        if sample == name and "le" not in dict(labels) and "quantile" not in dict(labels):
            key = dict(labels).get(label, "")
            out[key] = out.get(key, 0.0) + value
    return out


@dataclass
class LatencyScrapeSource(Source):
    url: str = ""
    kind: str = "llamacpp"
    runtime: str = ""
    model: str = ""           # label for single-model servers (llama-server)
    timeout: float = 2.0
    name: str = "latency_scrape"
    _prev: dict[str, tuple[float, float]] = field(default_factory=dict, repr=False)
    _client: httpx.Client | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.runtime = self.runtime or self.kind
        if self.name == "latency_scrape":
            self.name = f"latency_scrape:{self.runtime}"

    def available(self) -> bool:
        return bool(self.url) and self.kind in KINDS

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _get(self, path: str) -> httpx.Response:
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout)
        resp = self._client.get(self.url.rstrip("/") + path)
        resp.raise_for_status()
        return resp

    def _mean(self, key: str, total: float, count: float) -> float | None:
        """Δtotal / Δcount since the last read; None on the first read, no traffic or a reset."""
        prev = self._prev.get(key)
        self._prev[key] = (total, count)
        if prev is None:
            return None
        d_total, d_count = total - prev[0], count - prev[1]
        if d_count <= 0 or d_total < 0:
            return None
        return d_total / d_count

    def _key(self, name: str, model: str | None = None) -> str:
        if model is None:
            return series_key(name, runtime=self.runtime)
        return series_key(name, model=model, runtime=self.runtime)

    def collect(self, now: float) -> list[dict[str, Any]]:
        values: dict[str, float | None] = {}
        error = ""
        try:
            getattr(self, f"_collect_{self.kind}")(values)
            up = 1.0
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            self._prev.clear()
            up = 0.0
            values = {}
            error = f"{exc.__class__.__name__}: {exc}"[:300]
        values[self._key("latency_scrape_up")] = up
        records = [values_record(now, self.name, values)]
        if not up:
            records.append({"ts": now, "source": self.name,
                            "state": {f"latency_scrape_error:{self.runtime}": error}})
        return records

    # -- llama-server --------------------------------------------------------------------------
    def _collect_llamacpp(self, values: dict[str, float | None]) -> None:
        s = parse_prometheus(self._get("/metrics").text)

        def one(name: str) -> float:
            return sum(v for (n, _), v in s.items() if n == f"llamacpp:{name}")

        model = self.model
        tps = self._mean("decode", one("tokens_predicted_seconds_total"), one("tokens_predicted_total"))
        values[self._key(DECODE_TPS, model)] = 1 / tps if tps else None
        pps = self._mean("prompt", one("prompt_seconds_total"), one("prompt_tokens_total"))
        values[self._key(PROMPT_TPS, model)] = 1 / pps if pps else None
        values[self._key(RUNNING)] = one("requests_processing")
        values[self._key(WAITING)] = one("requests_deferred")

    # -- histograms shared by vLLM and TensorRT-LLM --------------------------------------------
    def _histograms(self, s: Samples, names: dict[str, str], label: str,
                    values: dict[str, float | None]) -> None:
        for metric, series in names.items():
            sums = by_label(s, f"{metric}_sum", label)
            counts = by_label(s, f"{metric}_count", label)
            for model, count in counts.items():
                mean = self._mean(f"{metric}/{model}", sums.get(model, 0.0), count)
                if mean is None:
                    continue
                if series == DECODE_TPS:  # seconds per output token -> tokens per second
                    values[self._key(series, model or self.model)] = 1 / mean if mean > 0 else None
                else:
                    values[self._key(series, model or self.model)] = mean

    def _collect_vllm(self, values: dict[str, float | None]) -> None:
        s = parse_prometheus(self._get("/metrics").text)
        itl = "vllm:inter_token_latency_seconds"
        if not any(n == f"{itl}_count" for n, _ in s):
            itl = "vllm:time_per_output_token_seconds"
        self._histograms(s, {"vllm:time_to_first_token_seconds": TTFT,
                             "vllm:e2e_request_latency_seconds": TOTAL,
                             "vllm:request_queue_time_seconds": QUEUE, itl: DECODE_TPS}, "model_name", values)
        for metric, series in (("vllm:num_requests_running", RUNNING), ("vllm:num_requests_waiting", WAITING)):
            for model, value in by_label(s, metric, "model_name").items():
                values[self._key(series, model or self.model)] = value
        for model, value in by_label(s, "vllm:request_success_total", "model_name").items():
            values[self._key(REQUESTS_TOTAL, model or self.model)] = value

    def _collect_tensorrt_llm(self, values: dict[str, float | None]) -> None:
        s = parse_prometheus(self._get("/prometheus/metrics").text)
        self._histograms(s, {"trtllm_time_to_first_token_seconds": TTFT,
                             "trtllm_e2e_request_latency_seconds": TOTAL,
                             "trtllm_request_queue_time_seconds": QUEUE,
                             "trtllm_time_per_output_token_seconds": DECODE_TPS}, "model_name", values)
        for model, value in by_label(s, "trtllm_request_success_total", "model_name").items():
            values[self._key(REQUESTS_TOTAL, model or self.model)] = value
        try:
            stats = self._get("/metrics").json()
        except (httpx.HTTPError, ValueError):
            return  # iteration stats are optional (enable_iter_perf_stats)
        if isinstance(stats, dict):
            stats = [stats]
        stats = [x for x in stats if isinstance(x, dict)] if isinstance(stats, list) else []
        if stats:
            last = stats[-1]
            for key, series in (("numActiveRequests", RUNNING), ("numQueuedRequests", WAITING)):
                if isinstance(last.get(key), (int, float)):
                    values[self._key(series)] = float(last[key])
            lat = [x["iterLatencyMS"] for x in stats if isinstance(x.get("iterLatencyMS"), (int, float))]
            if lat:
                values[self._key(ITERATION)] = sum(lat) / len(lat) / 1000

    # -- Triton ----------------------------------------------------------------------------------
    def _collect_triton(self, values: dict[str, float | None]) -> None:
        stats = self._get("/v2/models/stats").json()
        for entry in stats.get("model_stats", []):
            model = str(entry.get("name", ""))
            if entry.get("version") not in (None, "", "1"):
                model = f"{model}:{entry['version']}"
            inf = entry.get("inference_stats") or {}
            for part, series in (("success", TOTAL), ("queue", QUEUE), ("compute_infer", COMPUTE)):
                stat = inf.get(part) or {}
                count, ns = stat.get("count"), stat.get("ns")
                if isinstance(count, (int, float)) and isinstance(ns, (int, float)):
                    mean = self._mean(f"triton/{model}/{part}", ns / 1e9, count)
                    values[self._key(series, model)] = mean
            success = (inf.get("success") or {}).get("count")
            if isinstance(success, (int, float)):
                values[self._key(REQUESTS_TOTAL, model)] = float(success)


def latency_sources(root: Path, interval: Callable[[str], float]) -> list[Source]:
    """One scraper per runtime entry with `"scrape_latency": true` in THOXDASH_AGENT_RUNTIMES."""
    path = os.environ.get("THOXDASH_AGENT_RUNTIMES")
    if not path:
        return []
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []  # the runtimes source reports a bad file
    out: list[Source] = []
    for entry in config.get("runtimes", []) if isinstance(config, dict) else []:
        if not isinstance(entry, dict) or not entry.get("scrape_latency") or not entry.get("url"):
            continue
        kind = str(entry.get("kind") or entry.get("name"))
        if kind in KINDS:
            out.append(LatencyScrapeSource(root=root, interval=interval("latency_scrape"), url=entry["url"],
                                           kind=kind, runtime=str(entry.get("name") or kind),
                                           model=str(entry.get("model") or "")))
    return out
