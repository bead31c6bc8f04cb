"""llama.cpp `llama-server` (default port 8080).

Facts used, checked against a real llama-server built from llama.cpp 0c1e570 (the sources the
llama-cpp-python 0.3.36 sdist vendors; tools/server/server.cpp, server-context.cpp,
server-task.cpp, server-common.h, server-models.cpp):
- `GET /health` -> 200 {"status": "ok"}, or 503 with an OpenAI-style error while loading.
- `GET /props` -> {total_slots, model_path, is_sleeping, ...}; reading it never wakes the server.
- `GET /models` single-model: {"models": [...], "data": [{"id", "meta": {"size": tensor bytes,
  "n_ctx", ...}}]} (id = the file path, or `--alias`); it still lists a sleeping model.
  Router mode (`--models-dir`): data entries carry `status: {"value": unloaded|loading|loaded|
  sleeping, ...}`; `POST /models/load|unload {"model"}` -> {"success": true}; unloading a model
  that is not running -> 400 "model is not running"; single-model mode answers 404.
- `GET /slots` (per slot {id, n_ctx, is_processing, n_prompt_tokens, next_token: [{n_decoded}]})
  **wakes a sleeping server and reloads its model** (`--sleep-idle-seconds`): never read while
  asleep. Router mode: `/slots` and `/metrics` need `?model=NAME` (400 "model name is missing").
- `GET /metrics` (`--metrics`): counters `llamacpp:prompt_tokens_total` (uncached prompt tokens),
  `prompt_tokens_cached_total`, `prompt_seconds_total`, `tokens_predicted_total` (n per request),
  `tokens_predicted_seconds_total`, `n_decode_total`; gauges `prompt_tokens_seconds`,
  `predicted_tokens_seconds` (decode steps / time over the requests finished **since the previous
  /metrics read, reset by each read**), `requests_processing`, `requests_deferred`. No KV metric:
  the KV figure here comes from /slots (tokens held per slot over n_ctx).
- Timings on the last chunk / response: `timings` {cache_n, prompt_n, prompt_ms, predicted_n,
  predicted_ms, predicted_per_second, ...}: `predicted_ms` spans n-1 decode steps (the first token
  comes from the prompt batch), `prompt_n` counts only the uncached prompt tokens.
- The response head of a request waiting for a free slot is held until the slot frees.
"""

from __future__ import annotations

import time
from typing import Any

from collectors.proxy.series import DECODE_TPS, PROMPT_TPS, RUNNING, WAITING
from collectors.runtimes.base import (
    LoadedModel,
    RuntimeApiError,
    RuntimeClient,
    model_name,
    number,
    parse_prometheus,
)
from collectors.runtimes.kind import (
    AdminCalls,
    Endpoint,
    ResponseShape,
    RuntimeKind,
    Times,
    flag_port,
)
from collectors.runtimes.openai import chat_request, rate_limited
from collectors.runtimes.scrape import Scrape, total
from collectors.series import series_key

STATES_MAX_AGE = 1.0
NO_AUTOLOAD = "false"  # seconds a /models + /props answer serves loaded_models() and metrics()
RATE_GAUGES = ("llamacpp:predicted_tokens_seconds", "llamacpp:prompt_tokens_seconds")


def _status(entry: dict[str, Any]) -> str | None:
    status = entry.get("status")
    if isinstance(status, dict):
        status = status.get("value")
    return status if isinstance(status, str) else None


def _entry_name(entry: dict[str, Any]) -> str | None:
    return model_name(entry.get("id")) or model_name(entry.get("model")) or model_name(entry.get("name"))


def router_params(model: str | None) -> dict[str, str] | None:
    """The query a router-mode GET needs: the model, and no loading it as a side effect."""
    return {"model": model, "autoload": NO_AUTOLOAD} if model else None


def slot_values(slots: list[dict[str, Any]]) -> dict[str, float]:
    """Slot counts and the KV figure: tokens each slot holds (prompt + decoded) over its n_ctx."""
    busy = sum(1 for s in slots if s.get("is_processing") is True)
    used = capacity = 0.0
    for s in slots:
        capacity += number(s.get("n_ctx"), limit=1e9) or 0.0
        nxt = s.get("next_token")
        if isinstance(nxt, list):
            nxt = nxt[0] if nxt and isinstance(nxt[0], dict) else {}
        decoded = number(nxt.get("n_decoded"), limit=1e9) if isinstance(nxt, dict) else None
        used += (number(s.get("n_prompt_tokens"), limit=1e9) or 0.0) + (decoded or 0.0)
    out = {"llamacpp_slots_total": float(len(slots)), "llamacpp_slots_busy": float(busy)}
    if capacity > 0:
        out["llamacpp_kv_cache_tokens"] = used
        out["llamacpp_kv_cache_capacity_tokens"] = capacity
        out["llamacpp_kv_cache_usage_ratio"] = min(1.0, used / capacity)
    return out


class LlamaCppClient(RuntimeClient):
    kind = "llamacpp"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.sleeping: list[str] = []  # models listed but asleep (not holding memory)
        self.router: bool | None = None
        self._states: tuple[float, dict[str, str]] | None = None
        self._last_counts: dict[str, float] = {}
        self._sizes: dict[str, float | None] = {}
        self._slot_prev: dict[tuple[str, str], tuple[Any, float, float]] = {}  # (model, slot) -> task, n, t

    def ping(self) -> bool:
        body = self._json("GET", "/health")
        if isinstance(body, dict) and body.get("status") not in (None, "ok"):
            raise RuntimeApiError(f"llama-server /health: status {str(body.get('status'))[:40]!r}")
        return True

    def props(self) -> dict[str, Any]:
        body = self._shared_json("/props")
        return body if isinstance(body, dict) else {}

    def _models(self) -> list[dict[str, Any]]:
        body = self._shared_json("/models")
        entries = body.get("data", body.get("models")) if isinstance(body, dict) else body
        if not isinstance(entries, list):
            raise RuntimeApiError("llama-server /models: no model list in answer")
        return [e for e in entries if isinstance(e, dict)]

    def model_states(self, max_age: float = 0.0) -> dict[str, str]:
        """{model: unloaded|loading|loaded|sleeping} from /models (+ /props in single-model mode);
        neither wakes a sleeping server."""
        if self._states is not None and time.monotonic() - self._states[0] <= max_age:
            return self._states[1]
        entries = self._models()
        states: dict[str, str] = {}
        self.router = any(_status(e) is not None for e in entries)
        self._sizes = {}
        for entry in entries:
            name = _entry_name(entry)
            if name is None:
                continue
            states[name] = _status(entry) or "loaded"
            meta = entry.get("meta")
            if isinstance(meta, dict):
                self._sizes[name] = number(meta.get("size"))
        if not self.router and states:
            try:
                asleep = self.props().get("is_sleeping") is True
            except RuntimeApiError:
                asleep = False
            if asleep:
                states = dict.fromkeys(states, "sleeping")
        self._states = (time.monotonic(), states)
        return states

    def loaded_models(self) -> list[LoadedModel]:
        states = self.model_states()
        self.sleeping = sorted(m for m, s in states.items() if s == "sleeping")
        return [LoadedModel(m, self._sizes.get(m), None, {"router": bool(self.router)})
                for m, s in states.items() if s == "loaded"]

    def slots(self, model: str | None = None) -> list[dict[str, Any]]:
        """/slots (wakes a sleeping server: callers check model_states first)."""
        body = self._json("GET", "/slots", params=router_params(model))
        if not isinstance(body, list):
            raise RuntimeApiError("llama-server /slots: not a list")
        return [s for s in body if isinstance(s, dict)]

    def awake_models(self) -> list[str | None]:
        """The models to read /metrics and /slots for: None = the single model (no ?model=)."""
        states = self.model_states(STATES_MAX_AGE)
        if self.router:
            return [m for m, s in states.items() if s == "loaded"]
        return [None] if any(s == "loaded" for s in states.values()) else []

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        errors = []
        states = self.model_states(STATES_MAX_AGE)
        models: list[str | None] = self.awake_models()
        if not self.router and not models and states:
            models_for_metrics: list[str | None] = [None]  # /metrics does not wake a sleeping server
        else:
            models_for_metrics = models
        for model in models_for_metrics:
            params = router_params(model)
            labels = {"model": model} if model else {}
            try:
                values = parse_prometheus(self.metrics_text(params=params), labels)
            except RuntimeApiError as exc:
                errors.append(exc)
            else:
                out.update(self._rates(values, model or ""))
            if model not in models:
                continue
            try:
                slots = self.slots(model)
            except RuntimeApiError as exc:
                errors.append(exc)
            else:
                for key, value in slot_values(slots).items():
                    out[series_key(key, **labels)] = value
                rate = self._in_flight_rate(model or "", slots)
                if rate is not None:
                    out[series_key("llamacpp_slots_decode_tokens_per_second", **labels)] = rate
        if not out and errors:
            raise errors[0]
        return out

    def _in_flight_rate(self, model: str, slots: list[dict[str, Any]]) -> float | None:
        """Tokens per second of the generations running now: each busy slot's n_decoded growth since
        the previous read of the same task, averaged over those slots. Unlike the /metrics gauges it
        needs no request to have finished, so a long answer shows its speed while it streams."""
        now = time.monotonic()
        rates = []
        for slot in slots:
            nxt = slot.get("next_token")
            nxt = nxt[0] if isinstance(nxt, list) and nxt and isinstance(nxt[0], dict) else nxt
            decoded = number(nxt.get("n_decoded"), limit=1e9) if isinstance(nxt, dict) else None
            key = (model, str(slot.get("id")))
            task = slot.get("id_task")
            if slot.get("is_processing") is not True or decoded is None:
                self._slot_prev.pop(key, None)
                continue
            prev = self._slot_prev.get(key)
            self._slot_prev[key] = (task, decoded, now)
            if prev is not None and prev[0] == task and decoded > prev[1] and now > prev[2]:
                rates.append((decoded - prev[1]) / (now - prev[2]))
        return sum(rates) / len(rates) if rates else None

    def _rates(self, values: dict[str, float], model: str) -> dict[str, float]:
        """The tok/s gauges cover the requests finished since the previous read: with none
        finished they read 0, which is no measurement, not a speed of 0: left out then."""
        out = dict(values)
        for gauge, counter in (("llamacpp:predicted_tokens_seconds", "llamacpp:tokens_predicted_total"),
                               ("llamacpp:prompt_tokens_seconds", "llamacpp:prompt_tokens_total")):
            labels = {"model": model} if model else {}
            gkey, ckey = series_key(gauge, **labels), series_key(counter, **labels)
            count = out.get(ckey)
            before = self._last_counts.get(ckey)
            if count is not None:
                self._last_counts[ckey] = count
            if out.get(gkey) == 0.0 and (before is None or count is None or count <= before):
                del out[gkey]
        return out

    def load(self, model: str) -> dict[str, Any]:
        body = self._json("POST", "/models/load", body={"model": model})
        return body if isinstance(body, dict) else {"answer": body}

    def evict(self, model: str) -> dict[str, Any]:
        try:
            body = self._json("POST", "/models/unload", body={"model": model})
        except RuntimeApiError as exc:
            if exc.permanent and "HTTP 404" in exc.message:
                raise RuntimeApiError(f"llama-server has no unload here ({exc.message}); in single-model "
                                      "mode evicting means stopping the process", permanent=True) from None
            if exc.permanent:
                raise RuntimeApiError(f"llama-server did not unload {model!r}: {exc.message}",
                                      permanent=True) from None
            raise
        self._states = None
        return body if isinstance(body, dict) else {"answer": body}


# -- the proxy's view of llama.cpp's responses ---------------------------------------------------
def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def observe(obj: dict[str, Any], seen: dict[str, Any]) -> bool:
    timings = obj.get("timings")
    if isinstance(timings, dict):
        seen["timings"] = timings
    if obj.get("stop") is True and isinstance(obj.get("stop_type"), str) and obj["stop_type"]:
        seen.setdefault("done_reason", obj["stop_type"])
    content = obj.get("content")  # native /completion
    return isinstance(content, str) and bool(content)


def fields(seen: dict[str, Any], out: dict[str, Any], times: Times) -> None:
    """`timings`: prompt tokens = uncached (prompt_n) + cached (cache_n); prompt speed over the
    uncached ones; decode time per token from predicted_ms over its n-1 steps (none for 1 token);
    for a non-streaming answer, the queue time is the wait less the server's own work."""
    timings = seen.get("timings")
    if not isinstance(timings, dict):
        return
    prompt_n, cache_n = _num(timings.get("prompt_n")), _num(timings.get("cache_n"))
    prompt_ms, predicted_ms = _num(timings.get("prompt_ms")), _num(timings.get("predicted_ms"))
    n = _num(timings.get("predicted_n"))
    if prompt_n is not None:
        out.setdefault("prompt_tokens", int(prompt_n + (cache_n or 0)))
    if cache_n is not None:
        out["cached_tokens"] = int(cache_n)
    if prompt_ms is not None:
        out.setdefault("prompt_s", round(prompt_ms / 1000, 6))
    if n is not None:
        out.setdefault("completion_tokens", int(n))
    if n is not None and predicted_ms is not None and n > 1 and predicted_ms > 0:
        # n tokens at the per-step time: completion_tokens / completion_s = (n-1) / predicted_ms
        out.setdefault("completion_s", round(predicted_ms / 1000 * n / (n - 1), 6))
    if not times.streaming and times.first_byte_t is not None and prompt_ms is not None:
        work = (prompt_ms + (predicted_ms or 0.0)) / 1000
        out["queue_s"] = round(max(0.0, times.first_byte_t - times.t_forward - work), 6)


def completion_request(model: str, prompt: str, max_tokens: int) -> tuple[str, dict[str, Any]]:
    return chat_request(model, prompt, max_tokens)


# -- latency scrape --------------------------------------------------------------------------------
def scrape(sc: Scrape, values: dict[str, float | None]) -> None:
    """Per loaded model: decode and prompt speed over the scrape interval (the server's own
    step-based gauges, which the agent alone reads once per tick; Δtokens / Δseconds where a server
    has no gauge), running, waiting. No speed when no request finished in the interval."""
    client = sc.client
    assert isinstance(client, LlamaCppClient)
    try:
        states = client.model_states(STATES_MAX_AGE)
    except RuntimeApiError:
        states = {}  # an older server without /models: one unnamed model
    models = client.awake_models() if client.router else [None]
    running = waiting = 0.0
    for model in models:
        s = sc.samples(params=router_params(model))
        label = model or sc.model or next(iter(states), "")
        for series, gauge, secs, count in (
                (DECODE_TPS, "predicted_tokens_seconds", "tokens_predicted_seconds_total", "tokens_predicted_total"),
                (PROMPT_TPS, "prompt_tokens_seconds", "prompt_seconds_total", "prompt_tokens_total")):
            d = sc.delta(f"{series}/{label}", total(s, f"llamacpp:{secs}"), total(s, f"llamacpp:{count}"))
            if d is None or d[1] <= 0:
                continue
            if any(name == f"llamacpp:{gauge}" for name, _ in s):  # steps / time since the last read
                rate = total(s, f"llamacpp:{gauge}")
                values[sc.key(series, label)] = rate if rate > 0 else None  # 0: 1-token answers only
            else:  # an older server without the gauge: tokens / time
                values[sc.key(series, label)] = d[1] / d[0] if d[0] > 0 else None
        running += total(s, "llamacpp:requests_processing")
        waiting += total(s, "llamacpp:requests_deferred")
    values[sc.key(RUNNING)] = running
    values[sc.key(WAITING)] = waiting


KIND = RuntimeKind(
    total_gauges=("llamacpp_slots_total",),
    name="llamacpp",
    title="llama.cpp llama-server",
    client=LlamaCppClient,
    aliases=("llama-server", "llama.cpp", "llama_cpp"),
    default_port=8080,
    process_names=("llama-server",),
    port_of=flag_port(("--port",), 8080),
    inference=(Endpoint(r"(/v1)?/(completion|infill)", "sse"),
               Endpoint(r"(/v1)?/(embedding|rerank|reranking)", "json")),
    shape=ResponseShape("llamacpp", observe, fields),
    busy=rate_limited,
    scrape=scrape,
    canary=completion_request,
    admin=AdminCalls(health="GET /health", list="GET /models (+ GET /props is_sleeping)",
                     load='POST /models/load {"model"} (router mode)',
                     unload='POST /models/unload {"model"} (router mode)'),
    notes="Single-model mode has no unload: evicting means stopping the process.",
)
