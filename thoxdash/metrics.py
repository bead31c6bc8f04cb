"""GET /metrics: the latest value of every series of every device, in Prometheus text format.

Each series key (`name{label="v"}`) becomes `thoxdash_name{device="<id>",label="v"}`; HELP and TYPE
come from the metric catalog (collectors/catalog.py; unlisted `_total` series are counters). Per device there are also
`thoxdash_device_last_seen_timestamp_seconds` and `thoxdash_device_up` (1 while fresher than
THOXDASH_STALE_AFTER_S). All devices are read with one Redis pipeline.

Authentication (every endpoint needs one): a logged-in session, an API bearer token
(`manage.py apitoken`), or the scrape token in THOXDASH_METRICS_TOKEN sent as
`Authorization: Bearer <token>` (Prometheus: `authorization: {credentials: ...}`).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterable, Iterator

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric

from advisors.telemetry import store
from collectors.bounds import series_reserved
from collectors.catalog import help_text, metric_type
from collectors.series import SeriesKeyError, parse_series_key
from thoxdash.auth import api_auth

PREFIX = "thoxdash_"


def _help(name: str) -> str:
    return help_text(name)  # collectors/catalog.py: the one list of names, units and help


class LatestCollector:
    """A prometheus_client collector over one snapshot of every device's latest hash."""

    def __init__(self, latest: dict[str, dict[str, str]], now: float, stale_after_s: float):
        self.latest = latest
        self.now = now
        self.stale_after_s = stale_after_s

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        seen = Metric(f"{PREFIX}device_last_seen_timestamp_seconds",
                      "Unix time of the device's latest telemetry.", "gauge")
        up = Metric(f"{PREFIX}device_up", "1 while the device reported within the stale window.", "gauge")
        for device, raw in sorted(self.latest.items()):
            ts = _float(raw.get("__ts"))
            if ts is not None:
                seen.add_sample(seen.name, {"device": device}, ts)
            up.add_sample(up.name, {"device": device},
                          1.0 if ts is not None and self.now - ts <= self.stale_after_s else 0.0)
            for key, text in sorted(raw.items()):
                if key == "__ts":
                    continue
                value = _float(text)
                if value is None:
                    continue
                try:
                    name, labels = parse_series_key(key)
                except SeriesKeyError:
                    continue
                if series_reserved(name):  # a device may not publish ThoxDash's own families
                    continue
                labels.pop("device", None)  # ours wins
                full = PREFIX + name
                counter = metric_type(name) == "counter" and name.endswith("_total")
                family_name = full[: -len("_total")] if counter else full
                family = families.get(family_name)
                if family is None:
                    family = families[family_name] = Metric(family_name, _help(name),
                                                            "counter" if counter else "gauge")
                family.add_sample(full, {"device": device, **labels}, value)
        yield seen
        yield up
        yield from (families[n] for n in sorted(families))


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def render(latest: dict[str, dict[str, str]], now: float | None = None,
           stale_after_s: float | None = None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LatestCollector(latest, time.time() if now is None else now,
                                      settings.STALE_AFTER_S if stale_after_s is None else stale_after_s))
    return generate_latest(registry)


def scrape_token_ok(header: str, tokens: Iterable[str]) -> bool:
    if not header.startswith("Bearer "):
        return False
    given = header[7:].strip().encode()
    return any(t and hmac.compare_digest(given, t.encode()) for t in tokens)


def _handler(request: HttpRequest) -> HttpResponse:
    try:
        latest = store().latest_all()
    except (redis.ConnectionError, redis.TimeoutError) as exc:  # Prometheus records up=0
        return HttpResponse(f"telemetry store unavailable: {exc.__class__.__name__}\n", status=503,
                            content_type="text/plain; charset=utf-8")
    return HttpResponse(render(latest), content_type=CONTENT_TYPE_LATEST)


_with_api_auth: Callable[[HttpRequest], HttpResponse] = api_auth()(_handler)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if scrape_token_ok(request.headers.get("Authorization", ""), [settings.METRICS_TOKEN]):
        return _handler(request)
    return _with_api_auth(request)
