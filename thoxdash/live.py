"""Shaping telemetry for the browser: which series each chart wants, downsampling, IRQ rates and the
time-to-ceiling forecast.

Plain functions, no Django: the websocket consumer, the range API and the rollups all use them.
"""

from __future__ import annotations

import json
import math
from typing import Any

from collectors import series
from collectors.catalog import LIVE_NAMES
from collectors.text import is_uint

IRQ_PREFIX = "irq_interrupts_total{"

Columns = dict[str, list[list[float]]]


def wanted(key: str) -> bool:
    """Whether the browser gets this series (collectors/catalog.py: charted or `live`)."""
    return key.partition("{")[0] in LIVE_NAMES


def parse_key(key: str) -> tuple[str, dict[str, str]]:
    """`name{a="x",b="y"}` -> ("name", {"a": "x", "b": "y"}); a key that does not parse is a bare
    name (device data is shown, never trusted to be well formed)."""
    try:
        return series.parse_series_key(key)
    except series.SeriesKeyError:
        return key, {}


def series_key(name: str, labels: dict[str, str]) -> str:
    """Inverse of parse_key, labels sorted by name (Prometheus text syntax)."""
    return series.series_key(name, **labels)


def to_columns(records: list[dict[str, Any]], keep_irq: bool = False) -> dict[str, Any]:
    """Records -> {"series": {key: [[ts...], [values...]]}, "irq": {key: cols}, "events": [...],
    "requests": [...]}."""
    series: Columns = {}
    irq: Columns = {}
    events: list[dict[str, Any]] = []
    requests: list[dict[str, Any]] = []
    for record in records:
        if "values" in record:
            ts = record["ts"]
            for key, value in record["values"].items():
                if wanted(key):
                    target = series
                elif keep_irq and key.startswith(IRQ_PREFIX):
                    target = irq
                else:
                    continue
                cols = target.get(key)
                if cols is None:
                    cols = target[key] = [[], []]
                cols[0].append(ts)
                cols[1].append(value)
        elif "event" in record:
            events.append({"ts": record["ts"], **record["event"]})
        elif "request" in record:
            requests.append({"ts": record["ts"], **record["request"]})
    return {"series": series, "irq": irq, "events": events, "requests": requests}


def downsample(xs: list[float], ys: list[float], buckets: int) -> tuple[list[float], list[float]]:
    """Largest-Triangle-Three-Buckets: keep the shape of a series in at most `buckets` points."""
    n = len(xs)
    if buckets >= n or buckets < 3:
        return xs, ys
    out_x, out_y = [xs[0]], [ys[0]]
    every = (n - 2) / (buckets - 2)
    a = 0
    for i in range(buckets - 2):
        start = int((i + 1) * every) + 1
        end = min(int((i + 2) * every) + 1, n)
        avg_x = sum(xs[start:end]) / max(end - start, 1)
        avg_y = sum(ys[start:end]) / max(end - start, 1)
        lo = int(i * every) + 1
        hi = int((i + 1) * every) + 1
        best, best_area = lo, -1.0
        ax, ay = xs[a], ys[a]
        for j in range(lo, hi):
            area = abs((ax - avg_x) * (ys[j] - ay) - (ax - xs[j]) * (avg_y - ay))
            if area > best_area:
                best, best_area = j, area
        out_x.append(xs[best])
        out_y.append(ys[best])
        a = best
    out_x.append(xs[-1])
    out_y.append(ys[-1])
    return out_x, out_y


def compact(value: float | None) -> float | int | None:
    """Five significant digits: what a chart can show, in fewer bytes on the wire."""
    if value is None or not math.isfinite(value):
        return None
    if value == 0:
        return 0
    rounded = round(value, 4 - int(math.floor(math.log10(abs(value)))))
    return int(rounded) if rounded == int(rounded) and abs(rounded) < 1e15 else rounded


def shrink(series: Columns, points: int) -> Columns:
    """Downsample every series to at most `points` and round for the wire (ts to ms)."""
    out: Columns = {}
    for key, (xs, ys) in series.items():
        dx, dy = downsample(xs, ys, points)
        out[key] = [[round(x, 3) for x in dx], [compact(y) for y in dy]]  # type: ignore[misc]  # None: JSON null
    return out


def irq_matrix(irq: Columns, isolated: set[str] | None = None, top: int = 40) -> dict[str, Any] | None:
    """Interrupt rates per (irq, cpu) over the window the columns cover -> heatmap data.

    Counter resets count as zero. Keeps the `top` busiest IRQs (plus any that hit an isolated CPU)."""
    rates: dict[tuple[str, str], float] = {}
    for key, (xs, ys) in irq.items():
        if len(xs) < 2 or xs[-1] <= xs[0]:
            continue
        _, labels = parse_key(key)
        rate = max(0.0, (ys[-1] - ys[0]) / (xs[-1] - xs[0]))
        rates[(labels.get("irq", "?"), labels.get("cpu", "?"))] = rate
    if not rates:
        return None
    isolated = isolated or set()

    def cpu_order(c: str) -> tuple[int, str]:
        return (int(c), "") if is_uint(c) else (1 << 30, c)

    cpus = sorted({c for _, c in rates}, key=cpu_order)
    totals: dict[str, float] = {}
    hot_iso: set[str] = set()
    for (irq_name, cpu), rate in rates.items():
        totals[irq_name] = totals.get(irq_name, 0.0) + rate
        if cpu in isolated and rate > 0:
            hot_iso.add(irq_name)
    ranked = sorted(totals, key=lambda k: -totals[k])
    irqs = ranked[:top] + sorted(hot_iso - set(ranked[:top]))
    z = [[compact(rates.get((i, c), 0.0)) for c in cpus] for i in irqs]
    return {"irqs": irqs, "cpus": cpus, "z": z, "isolated": sorted(isolated & set(cpus), key=cpu_order)}


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, y) points (units per second); 0 with fewer than 2 points."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    if den <= 0:
        return 0.0
    return sum((t - mt) * (y - my) for t, y in points) / den


def ceiling_forecast(memory: dict[str, list[tuple[float, float]]], ceilings: dict[str, float],
                     window_s: float = 300.0) -> dict[str, dict[str, Any]]:
    """Per runtime: current memory, its ceiling, the trend and the seconds until it reaches the
    ceiling at that trend (0 when already over; None when flat, falling or no ceiling)."""
    out: dict[str, dict[str, Any]] = {}
    for runtime, points in memory.items():
        if not points:
            continue
        end = points[-1][0]
        recent = [p for p in points if p[0] >= end - window_s]
        current = recent[-1][1]
        rate = slope(recent)
        ceiling = ceilings.get(runtime)
        eta: float | None = None
        if ceiling:
            if current >= ceiling:
                eta = 0.0
            elif rate > 0:
                eta = (ceiling - current) / rate
        out[runtime] = {"current": compact(current), "ceiling": compact(ceiling) if ceiling else None,
                        "slope": compact(rate), "eta_s": compact(eta) if eta is not None else None}
    return out


def memory_points(series: Columns) -> tuple[dict[str, list[tuple[float, float]]], dict[str, float]]:
    """runtime_memory_bytes / runtime_ceiling_bytes columns -> ({runtime: points}, {runtime: ceiling})."""
    memory: dict[str, list[tuple[float, float]]] = {}
    ceilings: dict[str, float] = {}
    for key, (xs, ys) in series.items():
        name, labels = parse_key(key)
        runtime = labels.get("runtime")
        if runtime is None or not xs:
            continue
        if name == "runtime_memory_bytes":
            memory[runtime] = list(zip(xs, ys, strict=True))
        elif name == "runtime_ceiling_bytes":
            ceilings[runtime] = ys[-1]
    return memory, ceilings


def split_series(series: Columns, part_bytes: int, max_bytes: int) -> tuple[list[Columns], int]:
    """Cut a series map into parts of at most ~`part_bytes` of JSON each (a part holds whole series;
    one larger than `part_bytes` goes alone), keeping at most `max_bytes` in all. Returns the parts
    (at least one, maybe empty) and how many series were left out for the bound."""
    parts: list[Columns] = [{}]
    size = total = dropped = 0
    for key in sorted(series):
        cost = len(key) + 8 + len(json.dumps(series[key], separators=(",", ":")))
        if total + cost > max_bytes:
            dropped += 1
            continue
        if size and size + cost > part_bytes:
            parts.append({})
            size = 0
        parts[-1][key] = series[key]
        size += cost
        total += cost
    return parts, dropped
