"""The state a kind's latency scrape (`RuntimeKind.scrape`) works with: the runtime's client,
interval means (Δsum / Δcount between two reads; the first read is the baseline) and series keys.

The scrape writes the series the latency proxy publishes (collectors.proxy.series); each kind's
module says which of its own metrics map to them.
"""

from __future__ import annotations

from typing import Any

from collectors import slim
from collectors.runtimes.base import RuntimeClient
from collectors.series import series_key

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_samples(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, keyed by (name, sorted labels)."""
    # loaded on first use: only an agent watching a runtime with metrics pays for it
    text_string_to_metric_families = slim.prometheus_text_parser()

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


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


class Scrape:
    def __init__(self, client: RuntimeClient, runtime: str, model: str = ""):
        self.client = client
        self.runtime = runtime
        self.model = model  # a configured label for single-model servers
        self.prev: dict[str, tuple[float, float]] = {}
        self.memo: dict[str, Any] = {}  # per-kind state between reads

    def samples(self, path: str = "/metrics", params: dict[str, Any] | None = None) -> Samples:
        """The runtime's Prometheus samples (a reading shared with the runtimes source)."""
        return parse_samples(self.client.metrics_text(path, params=params))

    def json(self, path: str) -> Any:
        return self.client._json("GET", path)

    def delta(self, key: str, value_sum: float, count: float) -> tuple[float, float] | None:
        """(Δsum, Δcount) since the last read; None on the first read or after a reset."""
        prev = self.prev.get(key)
        self.prev[key] = (value_sum, count)
        if prev is None:
            return None
        d_sum, d_count = value_sum - prev[0], count - prev[1]
        if d_count < 0 or d_sum < 0:
            return None
        return d_sum, d_count

    def mean(self, key: str, value_sum: float, count: float) -> float | None:
        """Δsum / Δcount since the last read; None on the first read, no traffic or a reset."""
        d = self.delta(key, value_sum, count)
        if d is None or d[1] <= 0:
            return None
        return d[0] / d[1]

    def key(self, name: str, model: str | None = None) -> str:
        if model is None:
            return series_key(name, runtime=self.runtime)
        return series_key(name, model=model, runtime=self.runtime)

    def histograms(self, s: Samples, names: dict[str, str], label: str, values: dict[str, float | None],
                   per_token: str | None = None) -> None:
        """Interval means of histograms `{metric: series}` per `label`; the `per_token` series
        (seconds per output token) is published as tokens per second."""
        for metric, series in names.items():
            sums = by_label(s, f"{metric}_sum", label)
            counts = by_label(s, f"{metric}_count", label)
            for model, count in counts.items():
                mean = self.mean(f"{metric}/{model}", sums.get(model, 0.0), count)
                if mean is None:
                    continue
                if series == per_token:
                    values[self.key(series, model or self.model)] = 1 / mean if mean > 0 else None
                else:
                    values[self.key(series, model or self.model)] = mean
