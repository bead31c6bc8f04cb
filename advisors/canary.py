"""The canary "speed check": a fixed short prompt to a runtime, recording its decode tok/s.

The check users run by hand (`ollama run --verbose MODEL "Say hello"`, read the eval rate) to see
whether a runtime has slowed down (e.g. after unload/reload cycles), done on a schedule. Plain
functions; the Celery shell is advisors.tasks_canary. Off by default: a runtime opts in with
`"canary": {"enabled": true, "model": "...", "interval_s": 900}` in its device config entry, or
every runtime named in THOXDASH_CANARY_RUNTIMES.

Each check yields a `request` record (source `canary`, `canary: true`) timed by the same parser as
the latency proxy, plus values `canary_decode_tokens_per_second{model,runtime}`,
`canary_ttft_seconds{model,runtime}` and `canary_up{model,runtime}` (0 when the check failed).
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpx

from collectors.proxy.timing import StreamTiming, framing_for, request_fields
from collectors.runtimes import canary_kinds, get_kind
from collectors.series import series_key

DEFAULT_PROMPT = "Say hello."
DEFAULT_MAX_TOKENS = 32


def default_url(kind: str) -> str | None:
    found = get_kind(kind)
    return found.default_url if found is not None else None


def build_request(kind: str, model: str, prompt: str, max_tokens: int) -> tuple[str, dict[str, Any]]:
    """(path, JSON body) of a deterministic, streaming, short generation for this runtime kind
    (the kind's `canary` in collectors/runtimes/<kind>.py)."""
    found = get_kind(kind)
    if found is None or found.canary is None:
        raise ValueError(f"no speed check for runtime kind {kind!r} (supported: {', '.join(canary_kinds())})")
    return found.canary(model, prompt, max_tokens)


def base_url_problem(url: str, allowed_hosts: Iterable[str] = ()) -> str | None:
    """Why `url` may not be a runtime's base URL for server-side checks, or None: http(s) only, no
    user info, query or fragment (which would change the path the check POSTs to), and, when
    `allowed_hosts` is given (THOXDASH_CANARY_ALLOWED_HOSTS, `*` globs), a host in it."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError as exc:
        return f"not a URL: {exc}"
    if parts.scheme not in ("http", "https") or not host:
        return "must be an http:// or https:// URL with a host"
    if parts.username or parts.password:
        return "must not carry user info"
    if parts.query or parts.fragment or "?" in url or "#" in url:
        return "must not have a query or fragment"
    allowed = [h for h in allowed_hosts if h]
    if allowed and not any(fnmatch.fnmatchcase(host.lower(), pattern.lower()) for pattern in allowed):
        return f"host {host} is not in THOXDASH_CANARY_ALLOWED_HOSTS"
    return None


def speed_check(url: str, kind: str, model: str, *, runtime: str | None = None, prompt: str = DEFAULT_PROMPT,
                max_tokens: int = DEFAULT_MAX_TOKENS, timeout_s: float = 120.0,
                client: httpx.Client | None = None, allowed_hosts: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Run one check; return its records. Failures are records too, never exceptions."""
    runtime = runtime or kind
    path, body = build_request(kind, model, prompt, max_tokens)
    req: dict[str, Any] = {"runtime": runtime, "model": model, "endpoint": path, "canary": True}
    problem = base_url_problem(url, allowed_hosts)
    if problem:  # refused before any connection (no request to an arbitrary host or path)
        req.update({"error": f"runtime URL refused: {problem}", "total_s": 0.0})
        return records_for(req, time.time())
    own = client is None
    http = client or httpx.Client(timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)))
    st: StreamTiming | None = None
    t0 = time.perf_counter()
    try:
        with http.stream("POST", url.rstrip("/") + path, json=body) as resp:
            req["status"] = resp.status_code
            req["queue_s"] = round(time.perf_counter() - t0, 6)
            st = StreamTiming(framing_for(resp.headers.get("content-type")))
            for chunk in resp.iter_raw():
                st.feed(chunk, time.perf_counter())
                if time.perf_counter() - t0 > timeout_s:
                    req["error"] = f"no answer within {timeout_s:g} s"
                    break
            st.close(time.perf_counter())
    except httpx.HTTPError as exc:
        req["error"] = f"{exc.__class__.__name__}: {exc}"[:300]
    finally:
        if own:
            http.close()
    t_end = time.perf_counter()
    if st is not None:
        for key, value in request_fields(st, t0, t_end).items():
            req.setdefault(key, value)
    req["total_s"] = round(t_end - t0, 6)
    status = req.get("status")
    if status is not None and status != 200 and "error" not in req:
        req["error"] = f"HTTP {status}"
    return records_for(req, time.time())


def records_for(req: dict[str, Any], now: float) -> list[dict[str, Any]]:
    labels = {"runtime": req["runtime"], "model": req["model"]}
    tps = req.get("completion_tokens_per_s")
    ok = "error" not in req and isinstance(tps, (int, float)) and tps > 0
    values: dict[str, float] = {series_key("canary_up", **labels): 1.0 if ok else 0.0}
    if ok and isinstance(tps, (int, float)):
        values[series_key("canary_decode_tokens_per_second", **labels)] = float(tps)
        ttft = req.get("ttft_s")
        if isinstance(ttft, (int, float)):
            values[series_key("canary_ttft_seconds", **labels)] = float(ttft)
    elif "error" not in req:
        req["error"] = "no tokens generated"
    return [{"ts": now, "source": "canary", "request": req},
            {"ts": now, "source": "canary", "values": values}]


def canary_settings(runtime: dict[str, Any], enabled_names: Iterable[str] = ()) -> dict[str, Any] | None:
    """A runtime config entry's canary settings, or None when the check is off for it."""
    canary = runtime.get("canary")
    if canary is True:
        canary = {"enabled": True}
    if not isinstance(canary, dict):
        canary = {}
    enabled = canary.get("enabled", runtime.get("name") in set(enabled_names))
    if not enabled:
        return None
    kind = runtime.get("kind") or runtime.get("name")
    model = canary.get("model") or runtime.get("model")
    url = canary.get("url") or runtime.get("url") or default_url(str(kind))
    if not model or not url:
        return None
    return {"url": url, "kind": kind, "model": model, "runtime": runtime.get("name") or kind,
            "prompt": canary.get("prompt"), "max_tokens": canary.get("max_tokens"),
            "interval_s": canary.get("interval_s")}


def is_due(recent_requests: Iterable[dict[str, Any]], runtime: str) -> bool:
    """Due unless the given window of request records already holds a check of this runtime."""
    return not any(r.get("source") == "canary" and r.get("request", {}).get("runtime") == runtime
                   for r in recent_requests)
