"""End to end with real parts: daphne, a Celery worker, Redis, and headless Chromium."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from collectors.store import TelemetryStore, connect
from scripts.ensure_browser import chromium

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def login(client: httpx.Client, base: str, username: str, password: str) -> None:
    page = client.get(base + "/accounts/login/")
    token = page.cookies.get("csrftoken") or client.cookies.get("csrftoken")
    r = client.post(base + "/accounts/login/",
                    data={"username": username, "password": password, "csrfmiddlewaretoken": token},
                    headers={"Referer": base + "/accounts/login/"})
    assert r.status_code in (200, 302)


def test_pages_need_login(stack):
    for path in ("/", "/devices/x/", "/alerts/", "/advisor/", "/settings/"):
        r = httpx.get(stack.url + path, follow_redirects=False)
        assert r.status_code == 302 and "/accounts/login/" in r.headers["location"], path
    assert httpx.get(stack.url + "/api/devices").status_code == 401


def test_plotly_served_locally(stack):
    r = httpx.get(stack.url + "/static/plotly/plotly.min.js")
    assert r.status_code == 200 and len(r.content) > 1_000_000


def test_celery_worker_fires_ceiling_alert(stack):
    store = TelemetryStore(connect(stack.env["REDIS_URL"]), stack.prefix)
    now = time.time()
    store.register_device("celery-dev", board={"model": "test"})
    store.publish("celery-dev", [{"ts": now - 2 + i * 0.5, "source": "s",
                                  "values": {'runtime_memory_bytes{runtime="ollama"}': 6.0e9}} for i in range(4)])
    stack.manage("shell", "-c", "from advisors.tasks import evaluate_device; evaluate_device.delay('celery-dev')")
    deadline = time.time() + 30
    out = ""
    while time.time() < deadline:
        out = stack.manage("shell", "-c", "from advisors.models import Alert; "
                           "print(list(Alert.objects.filter(device='celery-dev').values_list('rule', 'state')))")
        if "runtime_memory_over_ceiling" in out:
            break
        time.sleep(0.5)
    assert "('runtime_memory_over_ceiling', 'firing')" in out, stack.log("worker")[-3000:]


@pytest.mark.skipif(chromium() is None, reason="make test installs chromium; this run has none")
def test_browser_sees_live_chart_update(stack):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    store = TelemetryStore(connect(stack.env["REDIS_URL"]), stack.prefix)
    store.register_device("browser-dev", board={"model": "Jetson <b>Orin</b>"})
    now = time.time()
    store.publish("browser-dev", [{"ts": now - 10 + i, "source": "jtop", "values": {
        "gpu_load_ratio": 0.3, "ram_used_bytes": 3e9, 'cpu_load_ratio{cpu="0"}': 0.1}} for i in range(10)])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 900},
                                # bypass_csp: wait_for_function evals in the page, which the CSP forbids (checked
                                # under the real CSP in tests/test_hostile_devices.py)
                                bypass_csp=True)
        page.goto(stack.url + "/devices/browser-dev/")
        assert "/accounts/login/" in page.url
        page.fill("input[name=username]", "viewer")
        page.fill("input[name=password]", "viewer-pass-123")
        page.click("button[type=submit]")
        page.wait_for_url("**/devices/browser-dev/")
        assert page.locator(".board").inner_text() == "Jetson <b>Orin</b>"  # escaped, shown as text
        page.wait_for_function("document.getElementById('charts').dataset.updates >= '1'", timeout=15000)
        before = int(page.eval_on_selector("#charts", "e => e.dataset.updates"))
        page.wait_for_timeout(500)
        store.publish("browser-dev", [{"ts": time.time(), "source": "jtop", "values": {"gpu_load_ratio": 0.97}}])
        page.wait_for_function(f"parseInt(document.getElementById('charts').dataset.updates) > {before}", timeout=15000)
        ys = page.evaluate("document.getElementById('chart-gpu').data[0].y")
        assert ys[-1] == 0.97
        page.screenshot(path=str(ARTIFACTS / "device.png"), full_page=True)
        browser.close()
    assert os.path.getsize(ARTIFACTS / "device.png") > 10_000
