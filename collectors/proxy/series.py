"""Latency series shared by the proxy and the passive scrapers, so charts need not care which.

Per runtime and model, means over the last publish window (proxy) or scrape interval (scrapers):
  request_queue_seconds, request_ttft_seconds, request_total_seconds,
  request_decode_tokens_per_second, request_prompt_tokens_per_second
Per runtime (gauges): requests_running, requests_waiting; counter requests_rejected_total.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from collectors.catalog import known
from collectors.series import series_key

# names, units and help: collectors/catalog.py
QUEUE = known("request_queue_seconds")
TTFT = known("request_ttft_seconds")
TOTAL = known("request_total_seconds")
DECODE_TPS = known("request_decode_tokens_per_second")
PROMPT_TPS = known("request_prompt_tokens_per_second")
RUNNING = known("requests_running")
WAITING = known("requests_waiting")
REJECTED = known("requests_rejected_total")

_MEANS = (("queue_s", QUEUE), ("ttft_s", TTFT), ("total_s", TOTAL))


def latency_values(runtime: str, requests: list[dict[str, Any]]) -> dict[str, float]:
    """Means per (runtime, model) of finished, answered requests (rejections are left out)."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for req in requests:
        if req.get("rejected") or req.get("client_disconnected"):
            continue
        groups[str(req.get("model") or "")].append(req)
    out: dict[str, float] = {}
    for model, reqs in groups.items():
        labels = {"runtime": req_runtime(reqs, runtime), "model": model}
        for field, name in _MEANS:
            nums = [r[field] for r in reqs if isinstance(r.get(field), (int, float))]
            if nums:
                out[series_key(name, **labels)] = sum(nums) / len(nums)
        for tok, secs, name in (
            ("completion_tokens", "completion_s", DECODE_TPS),
            ("prompt_tokens", "prompt_s", PROMPT_TPS),
        ):
            # prompt speed over the tokens the runtime processed: cached ones took no time
            pairs = [
                (r[tok] - (_cached(r) if name == PROMPT_TPS else 0), r[secs])
                for r in reqs
                if isinstance(r.get(tok), (int, float)) and isinstance(r.get(secs), (int, float))
            ]
            total_s = sum(s for _, s in pairs)
            if total_s > 0:
                out[series_key(name, **labels)] = sum(t for t, _ in pairs) / total_s
    return out


def _cached(req: dict[str, Any]) -> float:
    cached = req.get("cached_tokens")
    return float(cached) if isinstance(cached, (int, float)) and not isinstance(cached, bool) else 0.0


def req_runtime(reqs: list[dict[str, Any]], default: str) -> str:
    return str(reqs[0].get("runtime") or default)
