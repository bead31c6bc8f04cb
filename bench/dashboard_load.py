"""Dashboard load bench: prints figures, asserts nothing.

1. Device page over 24 h of 1 s data for 12 series (rolled up the way the Celery task does), in
   headless Chromium: bytes of data shipped (HTML + range JSON + websocket frames, as transferred)
   and, separately, the static bundle (plotly.min.js, our JS/CSS); time to first chart (from
   navigation start to the first Plotly chart drawn), cold (a fresh browser profile: nothing
   cached, no V8 code cache) and warm (the next visit), medians over --runs.  Targets: <= 300 KB
   of data, <= 1 s to the first chart.
2. Live sample-to-browser latency with N concurrent websocket viewers (default 50): a sample is
   published with its own timestamp; each viewer records when the update carrying it arrives.
   Target: p99 <= 250 ms.

    python -m bench.dashboard_load [--runs 5] [--no-live] [--viewers 50] [--seconds 30] [--redis URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import httpx

from collectors.store import TelemetryStore, connect
from scripts.ensure_browser import chromium
from tests.stack import Stack
from thoxdash.rollup import rollup_device

SERIES = [
    "gpu_load_ratio",
    "gpu_freq_hz",
    "emc_load_ratio",
    "ram_used_bytes",
    "swap_used_bytes",
    'temperature_celsius{zone="cpu"}',
    'temperature_celsius{zone="gpu"}',
    'power_watts{rail="VDD_IN"}',
    'power_watts{rail="VDD_CPU_GPU_CV"}',
    'cpu_load_ratio{cpu="0"}',
    'cpu_load_ratio{cpu="1"}',
    'runtime_memory_bytes{runtime="ollama"}',
]


def seed_day(store: TelemetryStore, device: str, now: float) -> float:
    started = time.perf_counter()
    store.register_device(device, board={"model": "bench"})
    start = now - 86_400
    chunk = []
    for i in range(86_400):
        t = start + i
        phase = (i % 3600) / 3600.0
        chunk.append(
            {
                "ts": t,
                "source": "bench",
                "values": {
                    key: round((n + 1) * (0.5 + 0.4 * phase) + (i % 17) / 100.0, 4)
                    for n, key in enumerate(SERIES)
                },
            }
        )
        if len(chunk) == 5000:
            store.publish(device, chunk)
            chunk = []
    if chunk:
        store.publish(device, chunk)
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100.0 * len(ordered) + 0.5)) - 1))]


def login_cookies(base: str) -> dict[str, str]:
    with httpx.Client() as client:
        client.get(base + "/accounts/login/")
        token = client.cookies.get("csrftoken")
        client.post(
            base + "/accounts/login/",
            data={"username": "admin", "password": "admin-pass-123", "csrfmiddlewaretoken": token},
            headers={"Referer": base + "/accounts/login/"},
        )
        return {"sessionid": client.cookies.get("sessionid")}


PAGE_STATS = """() => {
    const nav = performance.getEntriesByType('navigation')[0];
    let data = nav.transferSize || nav.encodedBodySize, statics = 0, plotly = 0, plotlyRaw = 0, plotlyStart = 0,
        plotlyFirstByte = 0, plotlyEnd = 0,
        rangeStart = 0, rangeEnd = 0;
    for (const r of performance.getEntriesByType('resource')) {
        if (r.name.includes('/static/')) {
            statics += r.transferSize;  // 0 when it came from the cache
            if (r.name.includes('plotly')) {
                plotly = r.transferSize; plotlyRaw = r.decodedBodySize; plotlyStart = r.startTime;
                plotlyFirstByte = r.responseStart; plotlyEnd = r.responseEnd;
            }
        } else {
            data += r.transferSize || r.encodedBodySize;
            if (r.name.includes('/range')) { rangeStart = r.startTime; rangeEnd = r.responseEnd; }
        }
    }
    return {data, statics, plotly, plotlyRaw, plotlyStart, plotlyFirstByte, plotlyEnd, rangeStart, rangeEnd,
            html_ms: nav.responseEnd, dcl_ms: nav.domContentLoadedEventEnd,
            first_chart_ms: parseInt(document.getElementById('charts').dataset.firstChartMs),
            points: (document.getElementById('chart-gpu').data || []).reduce((n, t) => n + t.x.length, 0)};
}"""


def page_load(stack: Stack, runs: int = 5) -> list[dict[str, float]]:
    """Cold (a fresh browser profile: empty HTTP and code caches) then warm (the next navigation
    to the page in the same profile), `runs` times; one dict of figures per run."""
    from playwright.sync_api import sync_playwright

    results: list[dict[str, float]] = []
    # the server gzips each static file once and keeps it: warm that, not the browser
    httpx.get(
        stack.url + "/static/plotly/plotly.min.js", headers={"Accept-Encoding": "gzip"}, timeout=60
    )
    with sync_playwright() as p:
        for _ in range(runs):
            out: dict[str, float] = {}
            # a persistent profile has a disk cache, as a user's browser does (incognito contexts
            # keep a small in-memory cache that does not hold the plotly bundle)
            ctx = p.chromium.launch_persistent_context(
                tempfile.mkdtemp(prefix="thoxdash-chrome-"),
                executable_path=chromium(),
                headless=True,
                viewport={"width": 1366, "height": 768},
                # bypass_csp: wait_for_function evals in the page, which the CSP forbids (checked
                # under the real CSP in tests/test_hostile_devices.py)
                bypass_csp=True,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--disable-dev-shm-usage",
                ],
            )
            page = ctx.new_page()
            page.goto(stack.url + "/accounts/login/")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", "admin-pass-123")
            page.click("button[type=submit]")
            page.wait_for_url(stack.url + "/")
            for label in ("cold", "warm"):
                if label == "cold":
                    ctx.new_cdp_session(page).send("Network.clearBrowserCache")
                else:
                    page.goto(stack.url + "/")  # a new navigation, not a reload of the same URL
                ws_bytes = [0]

                def on_ws(ws, counter=ws_bytes):
                    ws.on(
                        "framereceived",
                        lambda payload, c=counter: c.__setitem__(
                            0, c[0] + len(payload if isinstance(payload, (bytes, str)) else "")
                        ),
                    )

                page.on("websocket", on_ws)
                page.goto(stack.url + "/devices/bench-24h/?range=24h")
                page.wait_for_function(
                    "document.getElementById('charts').dataset.source === 'rollup:60'",
                    timeout=120_000,
                )
                page.wait_for_timeout(1500)  # let the websocket's first frames arrive too
                stats = page.evaluate(PAGE_STATS)
                page.remove_listener("websocket", on_ws)
                out[f"{label}_data_bytes_http"] = stats["data"]
                out[f"{label}_data_bytes_ws"] = ws_bytes[0]
                out[f"{label}_static_bytes_transferred"] = stats["statics"]
                out[f"{label}_plotly_bytes_transferred"] = stats["plotly"]
                out["plotly_bundle_bytes_raw"] = stats["plotlyRaw"]
                out[f"{label}_first_chart_ms"] = stats["first_chart_ms"]
                for mark in (
                    "html_ms",
                    "dcl_ms",
                    "plotlyStart",
                    "plotlyFirstByte",
                    "plotlyEnd",
                    "rangeStart",
                    "rangeEnd",
                ):
                    out[f"{label}_{mark}"] = round(stats[mark])
                out["gpu_chart_points"] = stats["points"]
            ctx.close()
            results.append(out)
    return results


async def live_latency(
    stack: Stack, store: TelemetryStore, viewers: int, seconds: float
) -> dict[str, float]:
    cookies = login_cookies(stack.url)
    device = "bench-live"
    store.register_device(device, board={"model": "bench"})
    store.publish(
        device, [{"ts": time.time() - 1, "source": "bench", "values": {"gpu_load_ratio": 0.0}}]
    )
    delays: list[float] = []
    ready = asyncio.Event()
    connected = [0]
    stop = asyncio.Event()

    async def viewer(session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(
            stack.url.replace("http", "ws") + f"/ws/devices/{device}/",
            headers={"Origin": stack.url},
            max_msg_size=0,
        ) as ws:
            await ws.receive(timeout=60)  # snapshot
            connected[0] += 1
            if connected[0] == viewers:
                ready.set()
            while not stop.is_set():
                try:
                    msg = await ws.receive(timeout=2)
                except asyncio.TimeoutError:
                    continue
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                arrived = time.time()
                data = json.loads(msg.data)
                for t in (data.get("series") or {}).get("gpu_load_ratio", [[], []])[0]:
                    delays.append(arrived - t)

    async with aiohttp.ClientSession(cookies=cookies) as session:
        tasks = [asyncio.create_task(viewer(session)) for _ in range(viewers)]
        await asyncio.wait_for(ready.wait(), 120)
        end = time.time() + seconds
        sent = 0
        while time.time() < end:
            await asyncio.to_thread(
                store.publish,
                device,
                [
                    {
                        "ts": time.time(),
                        "source": "bench",
                        "values": {"gpu_load_ratio": (sent % 100) / 100},
                    }
                ],
            )
            sent += 1
            await asyncio.sleep(1.0)
        await asyncio.sleep(2.0)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    ms = [d * 1000 for d in delays]
    return {
        "viewers": viewers,
        "samples_sent": sent,
        "deliveries": len(ms),
        "expected": sent * viewers,
        "p50_ms": statistics.median(ms) if ms else float("nan"),
        "p99_ms": percentile(ms, 99) if ms else float("nan"),
        "max_ms": max(ms) if ms else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--viewers", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    ap.add_argument(
        "--runs", type=int, default=5, help="cold + warm page loads, each in a fresh profile"
    )
    ap.add_argument("--no-live", action="store_true", help="skip the live websocket latency part")
    args = ap.parse_args(argv)
    prefix = f"thoxbench:{uuid.uuid4().hex[:8]}:"
    store = TelemetryStore(connect(args.redis), prefix)
    stack = Stack(
        Path(tempfile.mkdtemp(prefix="thoxdash-dashbench-")), args.redis, prefix, worker=False
    )
    stack.start()
    try:
        now = time.time()
        seed_s = seed_day(store, "bench-24h", now)
        started = time.perf_counter()
        written = rollup_device(store, "bench-24h", now=time.time(), config={"slos": []})
        rollup_s = time.perf_counter() - started
        print(
            f"seeded 24 h x {len(SERIES)} series at 1 s in {seed_s:.1f} s; "
            f"first rollup pass {rollup_s:.1f} s ({written})"
        )
        runs = page_load(stack, args.runs)
        for key in runs[0]:
            values = [r[key] for r in runs]
            print(f"  {key}: median {statistics.median(values)}  (runs: {values})")
        for label in ("cold", "warm"):
            data_kb = (
                statistics.median(
                    r[f"{label}_data_bytes_http"] + r[f"{label}_data_bytes_ws"] for r in runs
                )
                / 1024
            )
            first = statistics.median(r[f"{label}_first_chart_ms"] for r in runs)
            print(
                f"{label}: data shipped {data_kb:.1f} KB (target <= 300), first chart {first:.0f} ms median of "
                f"{len(runs)} (target <= 1000); static transferred "
                f"{statistics.median(r[f'{label}_static_bytes_transferred'] for r in runs) / 1024:.0f} KB, of it "
                f"plotly {statistics.median(r[f'{label}_plotly_bytes_transferred'] for r in runs) / 1024:.0f} KB"
            )
        if args.no_live:
            return 0
        live = asyncio.run(live_latency(stack, store, args.viewers, args.seconds))
        print(
            f"live: {live['viewers']} viewers, {live['deliveries']}/{live['expected']} deliveries, "
            f"p50 {live['p50_ms']:.1f} ms, p99 {live['p99_ms']:.1f} ms (target <= 250), max {live['max_ms']:.1f} ms"
        )
    finally:
        stack.stop()
        store.delete_prefix()
    return 0


if __name__ == "__main__":
    sys.exit(main())
