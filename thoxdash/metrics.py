"""GET /metrics: the latest value of every series of every device, in Prometheus text format.

Each series key (`name{label="v"}`) becomes `thoxdash_name{device="<id>",label="v"}`; HELP and TYPE
come from the metric catalog (collectors/catalog.py; unlisted `_total` series are counters), names
follow node_exporter (`exported`: `_hz` is exported as `_hertz`; a gauge whose recording name ends
in `_total`, declared so by its runtime kind, without it). Per device there are also
`thoxdash_device_last_seen_timestamp_seconds` and `thoxdash_device_up` (1 while fresher than
THOXDASH_STALE_AFTER_S); a device that is down exports `thoxdash_device_up 0` and nothing else.
Labels starting with `__` are dropped, `pid` too (values summed over it); device series that would
take one of ThoxDash's own names are dropped, so the exposition stays promtool-clean whatever a
device sends. Request histograms (TTFT, total, queue, decode speed; `_bucket`/`_sum`/`_count` per
device, runtime and model) and the requests counter come from thoxdash.histograms, ThoxDash's own
health from thoxdash.selfmetrics. All devices are read with a few Redis pipelines.

Authentication (every endpoint needs one): a logged-in session, an API bearer token
(`manage.py apitoken`), or the scrape token in THOXDASH_METRICS_TOKEN sent as
`Authorization: Bearer <token>` (Prometheus: `authorization: {credentials: ...}`).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric

from advisors.telemetry import store
from collectors import runtimes
from collectors.catalog import help_text, metric_type
from collectors.series import SeriesKeyError, parse_series_key
from thoxdash.auth import api_auth
from thoxdash.selfmetrics import SELF_METRICS

PREFIX = "thoxdash_"


def _help(name: str) -> str:
    return help_text(name)  # collectors/catalog.py: the one list of names, units and help


# Recording names that end in _total but are gauges (declared by each runtime kind): exported
# under a gauge name without the suffix.
TOTAL_GAUGES = runtimes.total_gauges()
DROPPED_LABELS = {"pid"}  # churns a new series per process: values are summed over it


def exported(name: str) -> tuple[str, str]:
    """(exported name without the prefix, type) of a recording series name. The recording format
    keeps its names (`_hz`, docs/METRICS.md); the exposition follows node_exporter (`_hertz`)."""
    if name in TOTAL_GAUGES:
        return name[: -len("_total")], "gauge"
    counter = name.endswith("_total") and metric_type(name) == "counter"
    if name.endswith("_total") and not counter:  # a catalogued gauge: no _total in its exported name
        name = name[: -len("_total")]
    if name.endswith("_hz"):
        name = name[: -len("_hz")] + "_hertz"
    return name, "counter" if counter else "gauge"


def own_families() -> set[str]:
    """Names (without the prefix) ThoxDash exports itself; a device series may not take them."""
    from thoxdash.histograms import own_families as histogram_names

    names = {"device_last_seen_timestamp_seconds", "device_up", *SELF_METRICS, *histogram_names()}
    for counter in [n for n in names if n.endswith("_total")]:
        names.add(counter[: -len("_total")])
    return names


class LatestCollector:
    """A prometheus_client collector over one snapshot of every device's latest hash (and the
    request histograms). A device that is down exports `thoxdash_device_up 0` only."""

    def __init__(self, latest: dict[str, dict[str, str]], now: float, stale_after_s: float,
                 histograms: dict[str, dict[str, str]] | None = None):
        self.latest = latest
        self.now = now
        self.stale_after_s = stale_after_s
        self.histograms = histograms or {}

    def _device_series(self, up: dict[str, bool]) -> dict[str, tuple[str, str, dict[tuple, float]]]:
        """{family: (type, recording name, {(sample name, sorted labels): value})} of every device
        that is up."""
        own = own_families()
        families: dict[str, tuple[str, str, dict[tuple, float]]] = {}
        for device, raw in sorted(self.latest.items()):
            if not up[device]:
                continue
            for key, text in sorted(raw.items()):
                value = _float(text)
                if key.startswith("__") or value is None:
                    continue
                try:
                    name, labels = parse_series_key(key)
                except SeriesKeyError:
                    continue
                recorded = name
                name, kind = exported(name)
                family = name[: -len("_total")] if kind == "counter" else name
                if name in own or family in own:
                    continue  # a device may not shadow ThoxDash's own families
                dropped = any(k in DROPPED_LABELS for k in labels)
                labels = {k: v for k, v in labels.items()
                          if not k.startswith("__") and k not in DROPPED_LABELS and k != "device"}
                labels["device"] = device  # ours wins
                kind_now, _, samples = families.setdefault(family, (kind, recorded, {}))
                if kind_now != kind:
                    continue  # `x_total` (counter x) and a gauge `x`: the first one seen keeps the name
                sample = (PREFIX + name, tuple(sorted(labels.items())))
                if sample in samples and dropped:
                    samples[sample] += value  # e.g. GPU memory of every process with this name
                else:
                    samples.setdefault(sample, value)
        return families

    def collect(self) -> Iterator[Metric]:
        seen = Metric(f"{PREFIX}device_last_seen_timestamp_seconds",
                      "Unix time of the device's latest telemetry.", "gauge")
        up_family = Metric(f"{PREFIX}device_up", "1 while the device reported within the stale window.",
                           "gauge")
        up: dict[str, bool] = {}
        for device, raw in sorted(self.latest.items()):
            ts = _float(raw.get("__ts"))
            up[device] = ts is not None and self.now - ts <= self.stale_after_s
            up_family.add_sample(up_family.name, {"device": device}, 1.0 if up[device] else 0.0)
            if ts is not None and up[device]:
                seen.add_sample(seen.name, {"device": device}, ts)
        yield seen
        yield up_family
        families = self._device_series(up)
        for family in sorted(families):
            kind, recorded, samples = families[family]
            metric = Metric(PREFIX + family, _help(recorded), kind)
            for (name, labels), value in samples.items():
                metric.add_sample(name, dict(labels), value)
            yield metric
        yield from histogram_metrics({d: h for d, h in self.histograms.items() if up.get(d)})


def histogram_metrics(raw: dict[str, dict[str, str]]) -> Iterator[Metric]:
    from thoxdash.histograms import HISTOGRAMS, REQUESTS_FAMILY, REQUESTS_HELP, samples

    helps = {spec.name: spec.help for spec in HISTOGRAMS.values()}
    for family, rows in sorted(samples(raw).items()):
        if family == REQUESTS_FAMILY:
            metric = Metric(PREFIX + family, REQUESTS_HELP, "counter")
        else:
            metric = Metric(PREFIX + family, helps[family], "histogram")
        for name, labels, value in rows:
            metric.add_sample(PREFIX + name, labels, value)
        yield metric


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def render(latest: dict[str, dict[str, str]], now: float | None = None,
           stale_after_s: float | None = None, histograms: dict[str, dict[str, str]] | None = None,
           extra: Iterable[Any] = ()) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LatestCollector(latest, time.time() if now is None else now,
                                      settings.STALE_AFTER_S if stale_after_s is None else stale_after_s,
                                      histograms))
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry)


def scrape_token_ok(header: str, tokens: Iterable[str]) -> bool:
    if not header.startswith("Bearer "):
        return False
    given = header[7:].strip().encode()
    return any(t and hmac.compare_digest(given, t.encode()) for t in tokens)


def _handler(request: HttpRequest) -> HttpResponse:
    from thoxdash import histograms
    from thoxdash.selfmetrics import SelfCollector

    s = store()
    try:
        latest = s.latest_all()
        devices = sorted(latest)
        histograms.catch_up(s.r, s.prefix, devices)  # None: another scrape is counting right now
        hist = histograms.read_all(s.r, s.prefix, devices)
    except (redis.ConnectionError, redis.TimeoutError) as exc:  # Prometheus records up=0
        return HttpResponse(f"telemetry store unavailable: {exc.__class__.__name__}\n", status=503,
                            content_type="text/plain; charset=utf-8")
    return HttpResponse(render(latest, histograms=hist, extra=[SelfCollector(s)]),
                        content_type=CONTENT_TYPE_LATEST)


_with_api_auth: Callable[[HttpRequest], HttpResponse] = api_auth()(_handler)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if scrape_token_ok(request.headers.get("Authorization", ""), [settings.METRICS_TOKEN]):
        return _handler(request)
    return _with_api_auth(request)
