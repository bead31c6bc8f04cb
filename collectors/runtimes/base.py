"""The common part of every runtime admin API client.

Every call goes through `RuntimeClient._request` with a timeout (collectors.runtimes.http: the
standard library's http.client), so a hung runtime costs at
most `timeout` seconds. Failures become `RuntimeApiError(message, permanent)`: `permanent` is True
when retrying cannot help (4xx other than 408/429, an endpoint the runtime does not have, an action
this runtime does not support) and False for outages (connection refused, timeout, 5xx, 503 while a
model loads). Parsing tolerates garbage: unknown fields are ignored, numbers that are not finite,
negative or absurdly large are dropped (None), and a malformed body is a RuntimeApiError.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from collectors import slim
from collectors.runtimes.http import HttpClient, Response, Transport, TransportError
from collectors.series import SeriesKeyError, series_key

MAX_BYTES = 2**50  # 1 PiB: anything larger is garbage, not memory
MAX_NAME = 256


class RuntimeApiError(Exception):
    """A runtime admin call that failed; `permanent` says whether retrying can help."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.message = message
        self.permanent = permanent


@dataclass
class LoadedModel:
    """One model a runtime holds. Bytes are None where the runtime does not say."""

    name: str
    size_bytes: float | None = None
    vram_bytes: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


def number(value: Any, limit: float = MAX_BYTES) -> float | None:
    """A finite, non-negative number no larger than `limit`, else None (bools are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        out = float(value)
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(out) or out < 0 or out > limit:
        return None
    return out


def model_name(value: Any) -> str | None:
    """A model name as data: a non-empty string, cut to MAX_NAME characters, NULs removed."""
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value[:MAX_NAME] or None


def _sample_name(line: str) -> str:
    """The metric name a sample line starts with ('' for a line that has none, e.g. '{')."""
    head = line.split("{", 1)[0].split(None, 1)
    return head[0] if head else ""


def parse_prometheus(text: str, labels: dict[str, str] | None = None) -> dict[str, float]:
    """Prometheus text exposition -> {series_key: value}, finite values only; `labels` are added
    to every sample (e.g. the model a router-mode server answered for).

    Uses prometheus_client's parser; if the body has a bad line the rest is parsed line by line so
    one garbage line costs that line only.
    """
    # The parser names counter samples `<family>_total`; keep the name the runtime exposed
    # (Triton's `nv_inference_request_success` has no suffix).
    # loaded on first use: only an agent watching a runtime with metrics pays for it
    text_string_to_metric_families = slim.prometheus_text_parser()

    exposed = {_sample_name(line) for line in text.splitlines()
               if line.strip() and not line.lstrip().startswith("#")} - {""}
    try:
        return _families_to_values(text_string_to_metric_families(text), exposed, labels)
    except (ValueError, TypeError, IndexError, KeyError):
        pass
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        try:
            out.update(_families_to_values(text_string_to_metric_families(line + "\n"), exposed, labels))
        except (ValueError, TypeError, IndexError, KeyError):
            continue
    return out


def _families_to_values(families: Any, exposed: set[str], extra: dict[str, str] | None = None) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in families:
        for sample in family.samples:
            value = sample.value
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            name = sample.name
            if name not in exposed and name.endswith("_total") and name[:-6] in exposed:
                name = name[:-6]
            try:
                out[series_key(name, **{**sample.labels, **(extra or {})})] = float(value)
            except SeriesKeyError:
                continue
    return out


class SharedReadings:
    """The answer of a GET per URL, shared by every reader in this process within one agent tick.

    llama-server's /metrics tok/s gauges cover the time since the previous read and reset on each
    read (TensorRT-LLM's /metrics iteration stats are drained by a read): the runtimes source and
    the latency scrape, due in the same tick, read such a URL once and share the answer (or the
    failure). A reader marks its tick with `with SHARED.tick(now):`; reads outside one are not
    shared."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._url_locks: dict[str, threading.Lock] = {}
        self._last: dict[str, tuple[float, Response | RuntimeApiError]] = {}
        self.reads = 0  # answers fetched, not served from the share: tests and benches count them

    @contextmanager
    def tick(self, now: float) -> Iterator[None]:
        before = getattr(self._local, "tick", None)
        self._local.tick = now
        try:
            yield
        finally:
            self._local.tick = before

    def get(self, url: str, fetch: Callable[[], Response]) -> Response:
        tick = getattr(self._local, "tick", None)
        if tick is None:
            with self._lock:
                self.reads += 1
            return fetch()
        with self._lock:
            url_lock = self._url_locks.setdefault(url, threading.Lock())
            if len(self._url_locks) > 1024:
                self._url_locks.clear()
                self._last.clear()
        with url_lock:
            hit = self._last.get(url)
            if hit is not None and hit[0] == tick:
                if isinstance(hit[1], RuntimeApiError):
                    raise hit[1]
                return hit[1]
            with self._lock:
                self.reads += 1
            try:
                resp = fetch()
            except RuntimeApiError as exc:
                self._last[url] = (tick, exc)
                raise
            self._last[url] = (tick, resp)
            return resp


SHARED = SharedReadings()


class RuntimeClient:
    """Base class: one runtime's admin API at `url`. Subclasses set `kind` and the methods."""

    kind = "runtime"

    def __init__(self, url: str, timeout: float = 2.0, transport: Transport | None = None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._http = HttpClient(timeout, transport)

    # -- plumbing ------------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None,
                 base: str | None = None, ok_status: tuple[int, ...] = ()) -> Response:
        url = (base or self.url) + path
        try:
            resp = self._http.request(method, url, body=body, params=params)
        except TransportError as exc:
            if exc.timeout:
                raise RuntimeApiError(f"{self.kind} {method} {path}: no answer in {self.timeout:g} s") from None
            raise RuntimeApiError(f"{self.kind} {method} {path}: {exc}") from None
        if resp.status_code >= 400 and resp.status_code not in ok_status:
            permanent = 400 <= resp.status_code < 500 and resp.status_code not in (408, 429)
            raise RuntimeApiError(f"{self.kind} {method} {path}: HTTP {resp.status_code}: "
                                  f"{error_text(resp)}", permanent=permanent)
        return resp

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self._request(method, path, **kwargs)
        try:
            return resp.json()
        except ValueError:
            raise RuntimeApiError(f"{self.kind} {method} {path}: body is not JSON: {resp.text[:120]!r}") from None

    def _shared(self, path: str, base: str | None = None, params: dict[str, Any] | None = None) -> Response:
        """GET through the process-wide share (see SharedReadings)."""
        url = (base or self.url) + path
        if params:
            url += "?" + "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        return SHARED.get(url, lambda: self._request("GET", path, base=base, params=params))

    def _shared_json(self, path: str) -> Any:
        """GET a JSON answer through the process-wide share (read once per agent tick)."""
        resp = self._shared(path)
        try:
            return resp.json()
        except ValueError:
            raise RuntimeApiError(f"{self.kind} GET {path}: body is not JSON: {resp.text[:120]!r}") from None

    def metrics_text(self, path: str = "/metrics", base: str | None = None,
                     params: dict[str, Any] | None = None) -> str:
        """The runtime's Prometheus text, read at most once per agent tick (shared)."""
        return self._shared(path, base, params).text

    def _prometheus(self, path: str, base: str | None = None, params: dict[str, Any] | None = None) -> dict[str, float]:
        return parse_prometheus(self.metrics_text(path, base, params))

    # -- the interface -------------------------------------------------------------------------
    def ping(self) -> bool:
        """True when the runtime answers its health endpoint; raises RuntimeApiError otherwise."""
        raise NotImplementedError

    def loaded_models(self) -> list[LoadedModel]:
        """The models the runtime holds in memory now."""
        raise NotImplementedError

    def metrics(self) -> dict[str, float]:
        """The runtime's own metrics as {series_key: value}."""
        raise RuntimeApiError(f"{self.kind} exposes no metrics", permanent=True)

    def evict(self, model: str) -> dict[str, Any]:
        """Free the memory a model holds; returns what the runtime answered."""
        raise RuntimeApiError(f"{self.kind} cannot evict a model through its API", permanent=True)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RuntimeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def error_text(resp: Response) -> str:
    """The runtime's own error message: Ollama {"error": "..."}, OpenAI {"error": {"message"}}."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200].strip() or resp.reason_phrase
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            err = err.get("message")
        if isinstance(err, str):
            return err[:200]
    return json.dumps(body)[:200]
