"""Dashboard shaping as plain functions, and rollups against a real Redis."""

from __future__ import annotations

import math
import time

from thoxdash.fleet import rows
from thoxdash.latency import bucket_stats, percentile
from thoxdash.live import ceiling_forecast, downsample, irq_matrix, parse_key, series_key, shrink
from thoxdash.payload import range_payload, rollup_step
from thoxdash.rollup import mean_buckets, rollup_device

HOSTILE = "<img src=x onerror=alert(1)>"


def test_lttb_keeps_ends_and_peak_within_budget():
    xs = [float(i) for i in range(10_000)]
    ys = [math.sin(i / 300.0) for i in range(10_000)]
    ys[4321] = 50.0
    dx, dy = downsample(xs, ys, 500)
    assert len(dx) == 500 and dx[0] == 0.0 and dx[-1] == 9999.0
    assert 50.0 in dy  # a spike survives downsampling
    assert dx == sorted(dx)


def test_shrink_rounds_for_the_wire():
    out = shrink({"a": [[1.23456789, 2.0], [0.123456789, float("nan")]]}, 100)
    assert out["a"] == [[1.235, 2.0], [0.12346, None]]


def test_keys_round_trip_with_hostile_labels():
    key = series_key("request_latency_p99_seconds", {"runtime": "ollama", "model": 'x"}<b>\\'})
    name, labels = parse_key(key)
    assert name == "request_latency_p99_seconds" and labels["model"] == 'x"}<b>\\'


def test_latency_buckets_percentiles_ttft_speed_and_slo():
    reqs = [{"ts": 100.0 + i * 0.1, "runtime": "triton", "model": "yolo", "total_s": 0.01 * (i + 1),
             "status": 200} for i in range(100)]
    reqs += [{"ts": 105.0, "runtime": "ollama", "model": HOSTILE, "total_s": 5.0, "ttft_s": 0.3,
              "completion_tokens": 200, "completion_s": 4.0}]
    cols = bucket_stats(reqs, 10.0, [{"runtime": "triton", "model": "yolo", "deadline_s": 0.5}])
    p99 = cols['request_latency_p99_seconds{model="yolo",runtime="triton"}']
    assert p99[0] == [100.0] and p99[1] == [0.99]
    assert cols['request_latency_p50_seconds{model="yolo",runtime="triton"}'][1] == [0.5]
    assert cols['request_slo_compliance_ratio{model="yolo",runtime="triton"}'][1] == [0.5]
    hostile = series_key("request_tokens_per_second", {"runtime": "ollama", "model": HOSTILE})
    assert cols[hostile][1] == [50.0]
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0


def test_irq_matrix_rates_and_isolated_cpus():
    irq = {'irq_interrupts_total{cpu="0",irq="eth0"}': [[0.0, 10.0], [0.0, 1000.0]],
           'irq_interrupts_total{cpu="4",irq="eth0"}': [[0.0, 10.0], [0.0, 50.0]],
           'irq_interrupts_total{cpu="4",irq="nvme"}': [[0.0, 10.0], [500.0, 100.0]]}  # reset
    m = irq_matrix(irq, {"4", "5"})
    assert m["cpus"] == ["0", "4"] and m["irqs"][0] == "eth0"
    assert m["z"][0] == [100, 5] and m["z"][1] == [0, 0]
    assert m["isolated"] == ["4"]
    assert irq_matrix({}) is None


def test_ceiling_forecast():
    pts = [(float(t), 4e9 + t * 1e6) for t in range(0, 300, 10)]
    f = ceiling_forecast({"ollama": pts, "over": [(0.0, 7e9)], "flat": [(0.0, 1e9), (10.0, 1e9)]},
                         {"ollama": 5.5e9, "over": 6e9, "flat": 2e9})
    assert abs(f["ollama"]["eta_s"] - (5.5e9 - pts[-1][1]) / 1e6) < 1
    assert f["over"]["eta_s"] == 0 and f["flat"]["eta_s"] is None


def test_fleet_rows_headline_numbers():
    now = 1000.0
    fleet = {"a": {"info": {"board": {"model": "Orin <b>", "l4t": "36.4", "jetpack": "6.1"}},
                   "latest": {"__ts": "999.0", "gpu_load_ratio": "0.5", 'temperature_celsius{zone="gpu"}': "71.5",
                              'temperature_celsius{zone="cpu"}': "60", 'runtime_memory_bytes{runtime="ollama"}': "5e9",
                              'runtime_ceiling_bytes{runtime="ollama"}': "5.5e9"}},
             "b": {"info": {}, "latest": {"__ts": "900.0"}}, "c": {"info": {}, "latest": {}}}
    out = {r["id"]: r for r in rows(fleet, {"a": 2}, 15.0, now)}
    assert out["a"]["status"] == "up" and out["b"]["status"] == "stale" and out["c"]["status"] == "unknown"
    assert out["a"]["hottest"] == {"celsius": 71.5, "zone": "gpu"} and out["a"]["alerts"] == 2
    assert out["a"]["runtime"]["runtime"] == "ollama" and abs(out["a"]["runtime"]["ratio"] - 0.90909) < 1e-4
    assert out["a"]["board"] == "Orin <b>" and out["a"]["jetpack"] == "6.1"


def test_mean_buckets():
    recs = [{"ts": 0.0, "values": {"a": 1.0}}, {"ts": 5.0, "values": {"a": 3.0, "b": 1.0}},
            {"ts": 10.0, "values": {"a": 10.0}}]
    assert mean_buckets(recs, 10) == {0: {"a": 2.0, "b": 1.0}, 10: {"a": 10.0}}


def test_rollups_are_incremental_and_feed_long_ranges(store):
    now = math.floor(time.time() / 600) * 600 + 300.0
    start = now - 3 * 3600
    store.register_device("roll", board={"model": "x"})
    store.publish("roll", [{"ts": start + i, "source": "s", "values": {
        "gpu_load_ratio": (i % 100) / 100.0, 'runtime_memory_bytes{runtime="ollama"}': 1e9 + i * 1e4}}
        for i in range(0, 3 * 3600, 2)])
    store.publish("roll", [{"ts": start + i, "source": "request", "request": {
        "runtime": "ollama", "model": HOSTILE, "total_s": 1.0, "ttft_s": 0.2}} for i in range(0, 3 * 3600, 30)])
    first = rollup_device(store, "roll", now=now, config={"slos": []})
    assert first[10] > 1000 and first[60] > 170 and first[600] >= 17
    assert rollup_device(store, "roll", now=now, config={"slos": []}) == {10: 0, 60: 0, 600: 0}
    store.publish("roll", [{"ts": now + i, "source": "s", "values": {"gpu_load_ratio": 0.5}} for i in range(0, 60, 2)])
    later = rollup_device(store, "roll", now=now + 60, config={"slos": []})
    assert later[10] == 6 and later[60] == 1
    hour = store.read_rollups("roll", 60, since=start + 3600, until=start + 7199)
    expected = sum((i % 100) / 100.0 for i in range(3600, 3660, 2)) / 30
    assert len(hour) == 60 and abs(hour[0]["values"]["gpu_load_ratio"] - expected) < 1e-9
    lat_key = series_key("request_latency_p50_seconds", {"runtime": "ollama", "model": HOSTILE})
    assert hour[0]["values"][lat_key] == 1.0

    assert rollup_step(86_400) == 60 and rollup_step(900) is None
    payload = range_payload(store, "roll", 86_400, 300, {"slos": []}, now=now + 60)
    assert payload["source"] == "rollup:60"
    xs, ys = payload["series"]["gpu_load_ratio"]
    assert len(xs) <= 300 and xs[-1] >= now + 60 - 130  # raw tail after the last rollup
    assert lat_key in payload["series"]
    assert payload["forecast"]["ollama"]["slope"] > 0
    short = range_payload(store, "roll", 900, 300, {"slos": []}, now=now)
    assert short["source"] == "raw" and len(short["series"]["gpu_load_ratio"][0]) <= 300
