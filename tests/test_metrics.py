"""GET /metrics: auth, `promtool check metrics`, and a real Prometheus scraping the test stack."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from collectors.store import TelemetryStore, connect
from tests.stack import free_port

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def publish(stack) -> None:
    """Fresh values for both devices (a device silent for THOXDASH_STALE_AFTER_S exports only
    `thoxdash_device_up 0`, so tests that take a while publish again, as an agent would)."""
    store = TelemetryStore(connect(stack.env["REDIS_URL"]), stack.prefix)
    now = time.time()
    for device, load in (("prom-a", 0.25), ("prom-b", 0.75)):
        store.register_device(device, board={"model": "test"})
        store.publish(device, [{"ts": now, "source": "jtop", "values": {
            "gpu_load_ratio": load, "ram_used_bytes": 3.5e9, 'cpu_load_ratio{cpu="0"}': 0.5,
            'temperature_celsius{zone="gpu"}': 51.5, 'irq_interrupts_total{cpu="3",irq="42"}': 1234.0,
            'runtime_memory_bytes{runtime="we\\"ird\\\\name"}': 1.0e9}}])


@pytest.fixture
def published(stack):
    publish(stack)
    return stack


def test_metrics_needs_credentials(published):
    url = published.url + "/metrics"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    api_token = published.manage("apitoken", "viewer").strip()
    for token in (published.env["THOXDASH_METRICS_TOKEN"], api_token):
        r = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")


def test_metrics_exposition_passes_promtool(published, tmp_path: Path):
    r = httpx.get(published.url + "/metrics",
                  headers={"Authorization": f"Bearer {published.env['THOXDASH_METRICS_TOKEN']}"})
    body = r.text
    assert 'thoxdash_gpu_load_ratio{device="prom-a"} 0.25' in body
    assert 'thoxdash_gpu_load_ratio{device="prom-b"} 0.75' in body
    assert 'thoxdash_cpu_load_ratio{cpu="0",device="prom-a"} 0.5' in body
    assert "# TYPE thoxdash_irq_interrupts_total counter" in body
    assert 'thoxdash_irq_interrupts_total{cpu="3",device="prom-a",irq="42"} 1234.0' in body
    assert 'runtime="we\\"ird\\\\name"' in body  # escaped per the text format
    assert 'thoxdash_device_up{device="prom-a"} 1.0' in body
    check = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr


def _query(base: str, promql: str) -> list[dict]:
    r = httpx.get(base + "/api/v1/query", params={"query": promql}, timeout=5)
    r.raise_for_status()
    return r.json()["data"]["result"]


def test_real_prometheus_scrapes_with_bearer_token(published, tmp_path: Path):
    api_token = published.manage("apitoken", "viewer").strip()
    target = f"127.0.0.1:{published.port}"
    config = tmp_path / "prometheus.yml"
    jobs = [("scrape_token", published.env["THOXDASH_METRICS_TOKEN"]), ("api_token", api_token), ("anonymous", None)]
    lines = ["global:", "  scrape_interval: 1s", "  scrape_timeout: 1s", "scrape_configs:"]
    for job, token in jobs:
        lines += [f"  - job_name: {job}", "    metrics_path: /metrics"]
        if token:
            lines += ["    authorization:", "      type: Bearer", f"      credentials: {token}"]
        lines += ["    static_configs:", f"      - targets: ['{target}']"]
    config.write_text("\n".join(lines) + "\n")
    check = subprocess.run([PROMTOOL, "check", "config", str(config)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 45
        got: dict[str, list[dict]] = {}
        while time.time() < deadline:
            publish(published)
            try:
                got = {
                    "value": _query(base, 'thoxdash_gpu_load_ratio{device="prom-b",job="scrape_token"}'),
                    "api": _query(base, 'thoxdash_gpu_load_ratio{device="prom-a",job="api_token"}'),
                    "up": _query(base, "up"),
                }
            except httpx.HTTPError:
                got = {}
            ups = {s["metric"]["job"]: s["value"][1] for s in got.get("up", [])}
            if got.get("value") and got.get("api") and len(ups) == 3:
                break
            time.sleep(0.5)
        assert got.get("value"), (tmp_path / "prometheus.log").read_text()[-2000:]
        assert float(got["value"][0]["value"][1]) == 0.75
        assert float(got["api"][0]["value"][1]) == 0.25
        ups = {s["metric"]["job"]: s["value"][1] for s in got["up"]}
        assert ups == {"scrape_token": "1", "api_token": "1", "anonymous": "0"}
    finally:
        proc.terminate()
        proc.wait(timeout=15)
