"""The dashboard in a real headless Chromium against a real daphne + Redis: every page, live charts,
escaping of hostile device data, the stale state, reconnecting after a server restart, the range
picker over Celery-style rollups, the fleet table and the settings forms."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from collectors.store import TelemetryStore, connect
from scripts.ensure_browser import chromium
from tests.stack import Stack
from thoxdash.rollup import rollup_device

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
HOSTILE = "<img src=x onerror=alert(1)>"
WAIT = 30_000  # ms: generous, the test machine is shared


@pytest.fixture(scope="module")
def dash(redis_url, tmp_path_factory):
    from tests.conftest import RUN_PREFIX

    s = Stack(tmp_path_factory.mktemp("dash"), redis_url, prefix=f"{RUN_PREFIX}dash{uuid.uuid4().hex[:4]}:",
              worker=False)
    s.env["THOXDASH_STALE_AFTER_S"] = "4"
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def dstore(dash):
    return TelemetryStore(connect(dash.env["REDIS_URL"]), dash.prefix)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"])
        yield b
        b.close()


def open_page(browser, dash, user="admin", password="admin-pass-123", width=1366, height=768, dark=False):
    ctx = browser.new_context(viewport={"width": width, "height": height},
                              color_scheme="dark" if dark else "light",
                              # bypass_csp: wait_for_function evals in the page, which the CSP forbids (checked
                              # under the real CSP in tests/test_hostile_devices.py)
                              bypass_csp=True)
    page = ctx.new_page()
    page.set_default_timeout(WAIT)
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.goto(dash.url + "/accounts/login/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(dash.url + "/")
    return page


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def seed(store: TelemetryStore, device: str, seconds: int = 120, end: float | None = None) -> None:
    end = time.time() if end is None else end
    store.register_device(device, board={"model": f"Orin {HOSTILE}", "l4t": "36.4", "jetpack": "6.1"})
    store.publish(device, [{"ts": end - seconds + i, "source": "jtop", "values": {
        "gpu_load_ratio": 0.5, "gpu_freq_hz": 9.0e8, "ram_used_bytes": 6e9, "ram_total_bytes": 8e9,
        'cpu_load_ratio{cpu="0"}': 0.2, 'cpu_load_ratio{cpu="3"}': 0.05,
        'temperature_celsius{zone="gpu"}': 60.0 + i / 10, 'power_watts{rail="VDD_IN"}': 12.0,
        'runtime_memory_bytes{runtime="ollama"}': 4.0e9 + i * 1e6, 'runtime_ceiling_bytes{runtime="ollama"}': 5.5e9,
        f'runtime_memory_bytes{{runtime="{HOSTILE}"}}': 1e9,
        'irq_interrupts_total{cpu="0",irq="eth0"}': i * 100.0, 'irq_interrupts_total{cpu="3",irq="eth0"}': i * 40.0,
        f'irq_interrupts_total{{cpu="3",irq="{HOSTILE}"}}': i * 5.0}} for i in range(seconds)])
    store.publish(device, [{"ts": end - seconds + i, "source": "request", "request": {
        "runtime": "ollama", "model": HOSTILE, "total_s": 2.0 + (i % 7) / 10, "ttft_s": 0.3,
        "completion_tokens": 120, "completion_s": 1.5}} for i in range(0, seconds, 2)])
    store.publish(device, [{"ts": end - seconds / 2, "source": "event",
                            "event": {"kind": "model_loaded", "runtime": "ollama", "model": HOSTILE}},
                           {"ts": end - 1, "source": "tuning", "state": {"isolated_cpus": "3", "thp": "never"}}])


class Feeder:
    """Publishes a sample every `period` seconds until stopped (a device that keeps reporting)."""

    def __init__(self, store: TelemetryStore, device: str, period: float = 0.5):
        self.store, self.device, self.period = store, device, period
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.value = 0.0

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.value = round((self.value + 0.07) % 1.0, 2)
            self.store.publish(self.device, [{"ts": time.time(), "source": "jtop",
                                              "values": {"gpu_load_ratio": self.value}}])
            self.stop_event.wait(self.period)

    def __enter__(self) -> Feeder:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        self.thread.join(5)


def texts(page, selector: str) -> list[str]:
    """textContent of SVG text nodes (what Plotly drew; inner_text does not apply to SVG)."""
    return page.eval_on_selector_all(selector, "els => els.map(e => e.textContent)")


def chart_points(page, chart: str) -> int:
    return page.evaluate(f"(document.getElementById('{chart}').data || [])"
                         ".reduce((n, t) => n + (t.x ? t.x.length : 0), 0)")


def test_every_page_renders_with_data_escaped_and_live(dash, dstore, browser):
    seed(dstore, "dash-dev")
    page = open_page(browser, dash)
    # fleet: the device with its headline numbers; the hostile board name shown as text
    row = page.locator('#fleet tr[data-device="dash-dev"]')
    row.wait_for()
    assert row.locator("td").nth(2).inner_text() == f"Orin {HOSTILE}"
    assert "JetPack 6.1" in row.inner_text() and "ollama" in row.inner_text()
    shot(page, "fleet")

    page.goto(dash.url + "/devices/dash-dev/")
    page.wait_for_function("parseInt(document.getElementById('charts').dataset.rendered || '0') >= 1")
    for chart in ("chart-gpu", "chart-memory", "chart-power", "chart-temp", "chart-cpu", "chart-latency", "chart-ttft"):
        assert chart_points(page, chart) > 0, chart
        assert page.locator(f'[data-nodata-for="{chart}"]').is_hidden()
    page.wait_for_function("(document.getElementById('chart-irq').data || []).length === 1")
    irq_labels = texts(page, "#chart-irq .ytick text")
    assert f"IRQ {HOSTILE}" in irq_labels
    assert "No SLO is set" in page.inner_text("#slo-none")  # no SLO set: says so, and draws no empty axes
    legends = texts(page, "#chart-latency .legendtext")
    assert f"p99 ollama / {HOSTILE}" in legends
    # memory: each runtime against its own ceiling; one without a ceiling is named in the text above
    assert texts(page, "#chart-memory .legendtext") == ["ollama"]
    ollama = page.evaluate("document.getElementById('chart-memory').data[0].y.filter(v => v !== null)")
    assert 0.7 < ollama[-1] < 0.8  # 4.1 GB of a 5.5 GB ceiling, as a share of that ceiling
    forecast = page.inner_text("#forecast")
    # the alerts' units: a 5.5 GB (5.5e9 bytes) ceiling is 5.12 GiB, 1e9 bytes are 954 MiB
    assert "5.12 GiB ceiling" in forecast and f"{HOSTILE}: 954 MiB (no ceiling)" in forecast
    # CPU per core: a heatmap from 0 to 100 %, the isolated core marked
    assert page.evaluate("document.getElementById('chart-cpu').data[0].type") == "heatmap"
    assert "cpu3 ⊘" in texts(page, "#chart-cpu .ytick text")
    assert page.locator("#charts img").count() == 0 and page.dialogs == []
    # a live update reaches the chart
    before = int(page.eval_on_selector("#charts", "e => e.dataset.updates || '0'"))
    dstore.publish("dash-dev", [{"ts": time.time(), "source": "jtop", "values": {"gpu_load_ratio": 0.97}}])
    page.wait_for_function(f"parseInt(document.getElementById('charts').dataset.updates || '0') > {before}")
    ys = page.evaluate("document.getElementById('chart-gpu').data.find(t => t.name === 'GPU load').y")
    assert ys[-1] == 0.97
    page.wait_for_function("document.getElementById('charts').dataset.status === 'live'")
    shot(page, "device")

    for path, name in (("/alerts/", "alerts"), ("/advisor/", "advisor"), ("/settings/", "settings")):
        response = page.goto(dash.url + path)
        assert response.status == 200, path
        assert HOSTILE not in page.content().replace("&lt;img", "")  # only ever escaped
        shot(page, name)
    assert page.dialogs == []
    page.context.close()


def test_4k_dark_layout(dash, dstore, browser):
    seed(dstore, "dash-4k", seconds=60)
    page = open_page(browser, dash, width=3840, height=2160, dark=True)
    page.goto(dash.url + "/devices/dash-4k/")
    page.wait_for_function("parseInt(document.getElementById('charts').dataset.rendered || '0') >= 1")
    bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert bg == "rgb(14, 17, 22)"  # dark theme from the system preference
    columns = page.evaluate("getComputedStyle(document.getElementById('charts')).gridTemplateColumns.split(' ').length")
    assert columns >= 3
    page.click("#theme-toggle")
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    shot(page, "device-4k")
    page.context.close()


def restart_daphne(stack: Stack, down_s: float = 2.0) -> None:
    old = stack.procs[0]
    old.terminate()
    old.wait(15)
    time.sleep(down_s)
    bindir = Path(old.args[0]).parent
    new = stack.spawn("daphne2", str(bindir / "daphne"), "-b", "127.0.0.1", "-p", str(stack.port),
                      "thoxdash.asgi:application")
    stack.procs.remove(new)
    stack.procs[0] = new
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if httpx.get(stack.url + "/accounts/login/", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("daphne did not come back: " + stack.log("daphne2")[-2000:])


def test_stale_state_and_reconnect_after_server_restart(dash, dstore, browser):
    seed(dstore, "dash-live", seconds=30)
    page = open_page(browser, dash)
    page.goto(dash.url + "/devices/dash-live/")
    with Feeder(dstore, "dash-live"):
        page.wait_for_function("document.getElementById('charts').dataset.status === 'live'")
    # the device stops reporting: the page says so by itself
    page.wait_for_function("document.getElementById('charts').dataset.status === 'stale' && "
                           "document.getElementById('live-status').textContent === 'stale'")
    shot(page, "device-stale")
    restart_daphne(dash)
    page.wait_for_function("parseInt(document.getElementById('charts').dataset.connects || '0') >= 2")
    with Feeder(dstore, "dash-live") as feeder:
        page.wait_for_function("document.getElementById('charts').dataset.status === 'live'")
        before = int(page.eval_on_selector("#charts", "e => e.dataset.updates || '0'"))
        page.wait_for_function(f"parseInt(document.getElementById('charts').dataset.updates || '0') > {before + 1}")
        assert feeder.value > 0
    page.context.close()


def test_range_picker_reads_rollups_and_downsamples(dash, dstore, browser):
    now = time.time()
    start = now - 3 * 3600
    dstore.register_device("dash-range", board={"model": "range"})
    dstore.publish("dash-range", [{"ts": start + i, "source": "s", "values": {
        "gpu_load_ratio": (i % 600) / 600.0, 'temperature_celsius{zone="gpu"}': 50 + (i % 300) / 30}}
        for i in range(0, 3 * 3600, 1)])
    rollup_device(dstore, "dash-range", now=now, config={"slos": []})
    page = open_page(browser, dash)
    page.goto(dash.url + "/devices/dash-range/?range=24h")
    page.wait_for_function("document.getElementById('charts').dataset.source === 'rollup:60'")
    width = page.evaluate("document.getElementById('chart-gpu').clientWidth")
    points = chart_points(page, "chart-gpu")
    assert 100 < points <= width + 2
    shot(page, "device-24h")
    page.click("#range-picker button[data-range='1h']")
    page.wait_for_function("document.getElementById('charts').dataset.source === 'rollup:10'")
    page.click("#range-picker button[data-range='15m']")
    page.wait_for_function("document.getElementById('charts').dataset.source === 'raw'")
    assert chart_points(page, "chart-gpu") <= width + 2
    page.click("#range-picker button[data-range='live']")
    page.wait_for_function("document.getElementById('charts').dataset.source === 'live'")
    assert page.locator("#range-picker button[aria-pressed='true']").inner_text() == "live"
    page.context.close()


def test_fleet_sort_filter_and_live_refresh(dash, dstore, browser):
    now = time.time()
    for n in range(40):
        device = f"fleet-{n:02d}"
        dstore.register_device(device, board={"model": "Orin Nano" if n % 2 else "AGX Orin"})
        dstore.publish(device, [{"ts": now - (100 if n == 7 else 0), "source": "jtop",
                                 "values": {"gpu_load_ratio": n / 40, 'temperature_celsius{zone="cpu"}': 40 + n}}])
    page = open_page(browser, dash)
    page.fill("#fleet-filter", "fleet-")
    page.wait_for_function("document.getElementById('fleet').dataset.rows === '40'")
    assert page.locator('#fleet tr[data-device="fleet-07"]').get_attribute("data-status") == "stale"
    page.fill("#fleet-filter", "nano")
    page.wait_for_function("document.getElementById('fleet').dataset.rows === '20'")
    page.fill("#fleet-filter", "fleet-")
    page.click("#fleet th[data-sort='gpu_load']")
    page.click("#fleet th[data-sort='gpu_load']")  # descending
    first = page.locator("#fleet tbody tr").first.get_attribute("data-device")
    assert first == "fleet-39"
    refreshes = int(page.eval_on_selector("#fleet", "e => e.dataset.refreshes || '0'"))
    dstore.publish("fleet-07", [{"ts": time.time() + 30, "source": "jtop", "values": {"gpu_load_ratio": 1.0}}])
    page.wait_for_function(f"parseInt(document.getElementById('fleet').dataset.refreshes || '0') > {refreshes}")
    page.wait_for_function("document.querySelector('#fleet tr[data-device=\"fleet-07\"]').dataset.status === 'up'")
    assert page.locator("#fleet tbody tr").first.get_attribute("data-device") == "fleet-07"  # 100%, sorted
    page.context.close()


def test_settings_edit_runtime_and_slo(dash, dstore, browser):
    dstore.register_device("dash-cfg", board={"model": "x"})
    page = open_page(browser, dash)
    page.goto(dash.url + "/settings/?device=dash-cfg")
    page.fill("input[name='rt-0-ceiling_gb']", "4.25")
    page.fill("input[name='rt-0-match']", "ollama serve")
    rows = page.locator("#runtimes tbody tr").count()
    page.fill(f"input[name='rt-{rows - 1}-name']", "vllm")
    page.select_option(f"select[name='rt-{rows - 1}-kind']", "vllm")
    page.fill(f"input[name='rt-{rows - 1}-ceiling_gb']", "3")
    page.fill("input[name='slo-0-runtime']", "triton")
    page.fill("input[name='slo-0-model']", HOSTILE)
    page.fill("input[name='slo-0-deadline_ms']", "41.7")
    page.click("#runtime-form button[type=submit]")
    page.wait_for_selector(".msg-success")
    assert page.input_value("input[name='rt-0-ceiling_gb']") == "4.25"
    assert page.input_value("input[name='slo-0-model']") == HOSTILE
    out = dash.manage("shell", "-c", "from advisors.models import DeviceSettings; "
                      "d = DeviceSettings.objects.get(device='dash-cfg'); print(d.runtimes); print(d.slos)")
    assert "'ceiling_bytes': 4250000000" in out and "'match': 'ollama serve'" in out and "'name': 'vllm'" in out
    assert "'deadline_s': 0.0417" in out
    page.context.close()
    # a viewer sees the settings but cannot change them
    viewer = open_page(browser, dash, user="viewer", password="viewer-pass-123")
    viewer.goto(dash.url + "/settings/?device=dash-cfg")
    assert viewer.locator("input[name='rt-0-name']").is_disabled()
    status = viewer.evaluate("""async () => (await fetch('/settings/users', {method: 'POST',
        headers: {'X-CSRFToken': document.querySelector('[name=csrfmiddlewaretoken]').value},
        body: new URLSearchParams({op: 'create', username: 'mallory', password: 'password123'})})).status""")
    assert status == 403
    viewer.context.close()


def test_webhook_test_button_posts_to_the_endpoint(dash, browser):
    import http.server
    import socketserver

    received: list[bytes] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            received.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            return

    with socketserver.TCPServer(("127.0.0.1", 0), Hook) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        dash.manage("shell", "-c",
                    f"from advisors.models import Webhook; Webhook.objects.create(url='{url}', format='json')")
        page = open_page(browser, dash)
        page.goto(dash.url + "/settings/")
        page.locator("#webhooks tr", has_text=url).locator("button", has_text="Test").click()
        page.wait_for_selector(".msg-success")
        assert "HTTP 200" in page.inner_text(".messages")
        server.shutdown()
    assert len(received) == 1
    page.context.close()


def test_apply_a_recommendation_and_see_the_audit_row(dash, dstore, browser, tmp_path):
    dstore.register_device("dash-apply", board={"model": "Jetson Orin Nano"})
    dstore.publish("dash-apply", [{"ts": time.time(), "source": "jtop", "values": {"gpu_load_ratio": 0.1}},
                                  {"ts": time.time(), "source": "tuning", "state": {"thp": "always"}}])
    # an executor has read this device's action stream (what an agent does every tick): actions are on
    from collectors.actions.executor import Executor

    Executor(dstore, "dash-apply", tmp_path, key="test-agent-key", config={}).poll()
    page = open_page(browser, dash)
    page.goto(dash.url + "/devices/dash-apply/")
    assert page.locator('#checklist tr[data-check="thp"] .status').inner_text() in ("warn", "fail")
    page.goto(dash.url + "/advisor/?device=dash-apply")
    row = page.locator('#recommendations tbody tr[data-rec="thp"]')
    row.wait_for()
    before = page.locator("#audit tbody tr[data-request]").count()
    row.locator("a.confirm-link").click()
    changes = page.locator('#confirm-dialog tr[data-step="thp"]')
    assert changes.locator("td.old").inner_text() == "always" and changes.locator("td.new").inner_text() == "never"
    page.locator("#confirm-apply").click()
    page.wait_for_selector(".msg-success")
    page.wait_for_function(f"document.querySelectorAll('#audit tbody tr[data-request]').length > {before}")
    audit = page.locator("#audit tbody tr[data-request]").first
    assert "dash-apply" in audit.inner_text() and "admin" in audit.inner_text()
    shot(page, "advisor-applied")
    assert page.dialogs == []
    page.context.close()
