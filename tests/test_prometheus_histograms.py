"""Request histograms, exposition rules and the Grafana dashboards, against the real parts.

- The exposition rules (plain functions): `_hertz`, gauge types, down devices, `pid` and `__` labels,
  names that clash with ThoxDash's own; promtool stays clean on hostile device input.
- The histograms are counted incrementally from a real Redis request stream.
- A real Prometheus scrapes a running stack (daphne + Celery worker + beat) with a bearer token
  while requests arrive: histogram_quantile over ThoxDash's buckets returns a value, and every
  query of every panel of deploy/grafana/dashboards/*.json returns data.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from collectors.store import TelemetryStore, connect
from tests.stack import free_port
from thoxdash import histograms
from thoxdash.metrics import exported, render

ROOT = Path(__file__).resolve().parent.parent
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))


def promtool(body: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30)


def request(ts: float, ttft: float, total: float, status: int = 200, **extra) -> dict:
    return {"ts": ts, "source": "request", "request": {
        "runtime": "ollama", "model": "gpt-oss:20b", "endpoint": "/api/generate", "status": status,
        "ttft_s": ttft, "total_s": total, "queue_s": 0.02, "completion_tokens": 120, "completion_s": total - ttft,
        **extra}}


def test_exported_names_and_types():
    assert exported("gpu_freq_hz") == ("gpu_freq_hertz", "gauge")
    assert exported("cpu_freq_hz") == ("cpu_freq_hertz", "gauge")
    assert exported("llamacpp_slots_total") == ("llamacpp_slots", "gauge")
    assert exported("irq_interrupts_total") == ("irq_interrupts_total", "counter")
    assert exported("gpu_load_ratio") == ("gpu_load_ratio", "gauge")


def test_buckets_and_increments():
    assert histograms.bucket_index((0.1, 1.0), 0.1) == 0
    assert histograms.bucket_index((0.1, 1.0), 0.5) == 1
    assert histograms.bucket_index((0.1, 1.0), 7.0) == 2
    assert histograms.SECONDS_BUCKETS[0] == 0.01 and histograms.SECONDS_BUCKETS[-1] == 60.0
    reqs = [request(0, 0.3, 2.3)["request"], request(0, 0.04, 1.04)["request"],
            {"runtime": "ollama", "model": "gpt-oss:20b", "rejected": True, "status": 429},
            {"runtime": "ollama", "model": "gpt-oss:20b", "status": 500, "ttft_s": "bad", "total_s": math.nan}]
    counts, sums = histograms.increments(reqs)
    sep = histograms.SEP
    assert counts[sep.join(("req", "ollama", "gpt-oss:20b", "200"))] == 2
    assert counts[sep.join(("req", "ollama", "gpt-oss:20b", "rejected"))] == 1
    assert counts[sep.join(("req", "ollama", "gpt-oss:20b", "500"))] == 1
    assert counts[sep.join(("ttft", "ollama", "gpt-oss:20b", "count"))] == 2
    assert sums[sep.join(("ttft", "ollama", "gpt-oss:20b", "sum"))] == pytest.approx(0.34)
    assert counts[sep.join(("decode", "ollama", "gpt-oss:20b", "count"))] == 2  # 60 and 120 tok/s


def test_exposition_rules_and_promtool_on_hostile_input():
    now = time.time()
    latest = {
        "up-dev": {"__ts": repr(now), 'gpu_freq_hz': "1.3e9", "llamacpp_slots_total": "4",
                   'gpu_process_memory_bytes{pid="11",process="python3"}': "100",
                   'gpu_process_memory_bytes{pid="12",process="python3"}': "50",
                   'power_watts{__name__="x",rail="VDD_IN"}': "7.5",
                   "device_up": "5", "request_duration_seconds_bucket": "3", "recorded_requests_total": "9",
                   "rules_cycles_total": "1", "weird": "1", "weird_total": "2", "gpu_load_ratio": "0.5"},
        "down-dev": {"__ts": repr(now - 3600), "gpu_load_ratio": "0.9", 'gpu_freq_hz': "1e9"},
    }
    hist = {"up-dev": {histograms.SEP.join(("ttft", "ollama", "m", "3")): "2",
                       histograms.SEP.join(("ttft", "ollama", "m", "count")): "2",
                       histograms.SEP.join(("ttft", "ollama", "m", "sum")): "0.2",
                       histograms.SEP.join(("req", "ollama", "m", "200")): "2"},
            "down-dev": {histograms.SEP.join(("req", "ollama", "m", "200")): "7"}}
    body = render(latest, now=now, stale_after_s=15, histograms=hist).decode()
    assert 'thoxdash_gpu_freq_hertz{device="up-dev"} 1.3e+09' in body
    assert "_hz{" not in body and "_hz " not in body
    assert "# TYPE thoxdash_llamacpp_slots gauge" in body and 'thoxdash_llamacpp_slots{device="up-dev"} 4.0' in body
    assert 'thoxdash_gpu_process_memory_bytes{device="up-dev",process="python3"} 150.0' in body
    assert "pid=" not in body and "__name__" not in body
    assert 'thoxdash_power_watts{device="up-dev",rail="VDD_IN"} 7.5' in body
    assert 'thoxdash_device_up{device="up-dev"} 1.0' in body and 'thoxdash_device_up{device="down-dev"} 0.0' in body
    assert [line for line in body.splitlines() if "down-dev" in line] == ['thoxdash_device_up{device="down-dev"} 0.0']
    assert "# TYPE thoxdash_request_time_to_first_token_seconds histogram" in body
    assert ('thoxdash_request_time_to_first_token_seconds_bucket{device="up-dev",le="0.1",model="m",'
            'runtime="ollama"} 2.0') in body
    assert 'thoxdash_recorded_requests_total{device="up-dev",model="m",runtime="ollama",status="200"} 2.0' in body
    assert "thoxdash_rules_cycles_total{" not in body  # a device may not take ThoxDash's own names
    check = promtool(body)
    assert check.returncode == 0, check.stdout + check.stderr + body


def test_catch_up_counts_each_request_once(store):
    now = time.time()
    device = "hist-dev"
    store.register_device(device)
    store.publish(device, [request(now - 5, 0.3, 2.0), request(now - 4, 0.05, 0.5, status=503)])
    r, prefix = store.r, store.prefix
    assert histograms.catch_up(r, prefix, [device], now=now) == 2
    assert histograms.catch_up(r, prefix, [device], now=now) == 0  # nothing new
    store.publish(device, [request(now - 1, 0.2, 1.0)])
    r.set(f"{prefix}reqhist:lock", "1")
    assert histograms.catch_up(r, prefix, [device], now=now) is None  # another scrape is counting
    r.delete(f"{prefix}reqhist:lock")
    assert histograms.catch_up(r, prefix, [device], now=now) == 1
    raw = histograms.read_all(r, prefix, [device])
    families = histograms.samples(raw)
    counts = {tuple(sorted(lb.items())): v for n, lb, v in families["request_duration_seconds"]
              if n.endswith("_count")}
    assert list(counts.values()) == [3.0]
    statuses = {lb["status"]: v for _, lb, v in families["recorded_requests"]}
    assert statuses == {"200": 2.0, "503": 1.0}
    buckets = [v for n, lb, v in families["request_time_to_first_token_seconds"] if n.endswith("_bucket")]
    assert buckets == sorted(buckets) and buckets[-1] == 3.0  # cumulative, +Inf = count


# -- a real Prometheus over a running stack ------------------------------------------------------

def panel_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                out.append((path.name, panel["title"], target["expr"]))
    return out


def test_dashboards_are_provisionable():
    assert {p.name for p in DASHBOARDS} == {"thoxdash-fleet.json", "thoxdash-device.json"}
    uids = set()
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        uids.add(dash["uid"])
        names = [v["name"] for v in dash["templating"]["list"]]
        assert "datasource" in names
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids))
        for panel in dash["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], panel["title"]
    assert uids == {"thoxdash-fleet", "thoxdash-device"}
    provisioning = (ROOT / "deploy/grafana/provisioning/dashboards/thoxdash.yaml").read_text()
    assert "apiVersion: 1" in provisioning and "type: file" in provisioning
    from scripts import grafana_dashboards

    rendered = grafana_dashboards.render()
    for path in DASHBOARDS:  # the files are what the script writes (edit the script, not the JSON)
        assert path.read_text() == rendered[path.name], f"{path.name}: run python scripts/grafana_dashboards.py"


@pytest.fixture(scope="module")
def busy_stack(redis_url, tmp_path_factory):
    """A stack with beat (rules run, self-metrics fill) and a device that keeps serving requests."""
    from tests.conftest import RUN_PREFIX
    from tests.stack import Stack

    stack = Stack(tmp_path_factory.mktemp("prom-stack"), redis_url, prefix=f"{RUN_PREFIX}prom:")
    stack.start()
    stack.spawn("beat", str(Path(sys.executable).parent / "celery"), "-A", "thoxdash", "beat", "-l", "warning",
                "-s", str(stack.tmp / "beat-schedule"))
    store = TelemetryStore(connect(redis_url), stack.prefix)
    store.register_device("graf-orin", board={"model": "test"})
    stop = threading.Event()

    def feed() -> None:
        i = 0
        while not stop.is_set():
            now = time.time()
            store.publish("graf-orin", [
                {"ts": now, "source": "jtop", "values": {
                    "gpu_load_ratio": 0.6, "gpu_freq_hz": 9.18e8, 'cpu_load_ratio{cpu="0"}': 0.3,
                    "ram_total_bytes": 8e9, "ram_used_bytes": 5e9, "swap_used_bytes": 0.0,
                    'temperature_celsius{zone="gpu"}': 55.0, 'power_watts{rail="VDD_IN"}': 9.5,
                    'runtime_memory_bytes{runtime="ollama"}': 4e9, 'runtime_ceiling_bytes{runtime="ollama"}': 5.5e9,
                    "memory_pressure_some_ratio": 0.01}},
                request(now, 0.05 + 0.1 * (i % 5), 1.0 + 0.5 * (i % 3)),
                request(now, 0.4, 3.0, status=500 if i % 4 == 0 else 200)])
            i += 1
            stop.wait(0.3)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    yield stack
    stop.set()
    thread.join(timeout=5)
    stack.stop()
    store.delete_prefix()


def _query(base: str, promql: str) -> list[dict]:
    r = httpx.get(base + "/api/v1/query", params={"query": promql}, timeout=5)
    r.raise_for_status()
    return r.json()["data"]["result"]


def concrete(expr: str, device: str) -> str:
    expr = expr.replace("$__rate_interval", "10s").replace("$device", device)
    assert "$" not in expr, expr
    return expr


def test_prometheus_quantiles_and_every_grafana_panel(busy_stack, tmp_path: Path):
    config = tmp_path / "prometheus.yml"
    config.write_text("\n".join([
        "global:", "  scrape_interval: 1s", "  scrape_timeout: 1s", "scrape_configs:",
        "  - job_name: thoxdash", "    metrics_path: /metrics", "    authorization:", "      type: Bearer",
        f"      credentials: {busy_stack.env['THOXDASH_METRICS_TOKEN']}", "    static_configs:",
        f"      - targets: ['127.0.0.1:{busy_stack.port}']"]) + "\n")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    p99 = ('histogram_quantile(0.99, sum by (le, runtime, model) '
           '(rate(thoxdash_request_time_to_first_token_seconds_bucket{device="graf-orin"}[10s])))')
    queries = [(d, t, concrete(e, "graf-orin")) for d, t, e in panel_queries()]
    try:
        deadline = time.time() + 90
        empty: list[tuple[str, str, str]] = queries
        value = None
        while time.time() < deadline:
            try:
                got = _query(base, p99)
                value = float(got[0]["value"][1]) if got else None
                empty = [q for q in empty if not _query(base, q[2])]
            except httpx.HTTPError:
                pass
            if value is not None and math.isfinite(value) and not empty:
                break
            time.sleep(1)
        scrape = httpx.get(busy_stack.url + "/metrics",
                           headers={"Authorization": f"Bearer {busy_stack.env['THOXDASH_METRICS_TOKEN']}"}).text
        assert value is not None and math.isfinite(value), (tmp_path / "prometheus.log").read_text()[-2000:]
        assert 0.05 <= value <= 0.5  # within the TTFTs sent (0.05 .. 0.45 s), bucket-interpolated
        assert not empty, f"panels without data: {empty}\n{busy_stack.log('worker')[-1500:]}"
        check = promtool(scrape)
        assert check.returncode == 0, check.stdout + check.stderr
        assert re.search(r'thoxdash_recorded_requests_total\{device="graf-orin",model="gpt-oss:20b",'
                         r'runtime="ollama",status="500"\} \d', scrape)
        assert "thoxdash_rules_cycles_total " in scrape and "thoxdash_rules_evaluation_lag_seconds " in scrape
    finally:
        proc.terminate()
        proc.wait(timeout=15)
