"""Outage figures: `make run` over a Redis SIGKILLed for --outage seconds, and webhooks over a
receiver that is down for --receiver-outage seconds while alerts fire.

Part 1 runs scripts/run.sh (supervisor, daphne, worker, beat, agent on a fake device tree, demo
replay) over a private redis-server with Chromium holding the agent's device page open, kills Redis,
restarts it (empty of nothing: AOF on) and prints, per process, the time from Redis's return to
the first sign of it working again, next to the same measure taken before the outage (the peer):
web page 200, agent data newer than the return, demo replay data, the open page drawing new
points, an action's result, a breach's alert row. Also: the agent's records buffered and dropped,
the largest gap in its stream, the processes that exited.

Part 2 runs daphne + a Celery worker + beat over a private redis-server with two webhooks, one
receiver down and one up; --alerts devices breach one after another across the receiver outage;
then the receiver comes back. Printed: notifications the returning receiver got (of how many), in
which order, how long it took after its return, and the healthy receiver's delay as the peer.

    .venv/bin/python -m bench.outage [--outage 30] [--receiver-outage 300] [--alerts 10] [--part 1|2]
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collectors.actions import signing  # noqa: E402
from collectors.store import TelemetryStore, connect  # noqa: E402
from tests.faults import MakeRun, Receiver, RedisServer, session_cookie, wait_for  # noqa: E402
from tests.stack import Stack  # noqa: E402

BREACH = 'runtime_memory_bytes{runtime="ollama"}'
NEWEST_X = """() => { let best = 0; document.querySelectorAll('.js-plotly-plot').forEach(function (c) {
  (c.data || []).forEach(function (t) { const xs = t.x || []; if (!xs.length) return; const v = xs[xs.length - 1];
  const ms = typeof v === 'number' ? v : new Date(v).getTime(); if (ms > best) best = ms; }); }); return best; }"""


def breach(store: TelemetryStore, device: str) -> None:
    now = time.time()
    store.register_device(device, board={"model": "bench"})
    store.publish(device, [{"ts": now - 2 + i * 0.5, "source": "s", "values": {BREACH: 6.0e9}} for i in range(5)])


def alert_at(db: str, device: str) -> bool:
    with sqlite3.connect(db, timeout=20) as conn:
        return bool(conn.execute("SELECT 1 FROM advisors_alert WHERE device = ?", (device,)).fetchall())


def retry(fn, timeout: float = 60.0):
    """Call fn until it does not raise (Redis may still be coming back)."""
    deadline = time.time() + timeout
    while True:
        try:
            return fn()
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.05)


class Probes:
    """One poll loop for every process's 'working again' signal, timed from `t0`."""

    def __init__(self, run: MakeRun, store: TelemetryStore, cookie: str, page, db: str, tag: str):
        self.run, self.store, self.cookie, self.page, self.db, self.tag = run, store, cookie, page, db, tag

    def measure(self, t0: float, timeout: float = 120.0) -> dict[str, float | None]:
        import httpx

        device = MakeRun.DEVICE
        message = signing.build(device, "set_governor", {"cpus": "0-3", "value": "performance" if self.tag == "pre"
                                                         else "powersave"})
        queued = [False]
        alert_device = f"bench-{self.tag}-alert"
        breached = [False]
        done: dict[str, float | None] = dict.fromkeys(("web", "agent", "demo", "page", "action", "alert"))
        deadline = t0 + timeout
        while time.time() < deadline and any(v is None for v in done.values()):
            now = time.time()
            if done["web"] is None:
                try:
                    r = httpx.get(self.run.url + "/", cookies={"sessionid": self.cookie}, timeout=2)
                    if r.status_code == 200:
                        done["web"] = time.time() - t0
                except httpx.HTTPError:
                    pass
            try:
                if not queued[0]:
                    own_key = signing.derive_key(MakeRun.KEY, device)  # the agent's own key (run.sh)
                    self.store.action_queue(device).submit(signing.sign(message, own_key))
                    queued[0] = True
                if not breached[0]:
                    breach(self.store, alert_device)
                    breached[0] = True
                if done["agent"] is None and self.store.read(device, since=t0):
                    done["agent"] = time.time() - t0
                if done["demo"] is None and self.store.read("demo-agx-orin", since=t0):
                    done["demo"] = time.time() - t0
                if done["action"] is None and any(r.get("request_id") == message["id"]
                                                  for r in self.store.action_queue(device).results(20)):
                    done["action"] = time.time() - t0
            except Exception:
                pass  # Redis not back yet
            if done["page"] is None and self.page.evaluate(f"({NEWEST_X})()") > t0 * 1000:
                done["page"] = time.time() - t0
            if done["alert"] is None and breached[0] and alert_at(self.db, alert_device):
                done["alert"] = time.time() - t0
            time.sleep(max(0.0, 0.1 - (time.time() - now)))
        return done


def part1(outage_s: float) -> None:
    from playwright.sync_api import sync_playwright

    from scripts.ensure_browser import chromium

    tmp = Path(tempfile.mkdtemp(prefix="thoxdash-outage-"))
    redis_server = RedisServer(tmp)
    redis_server.start()
    run = MakeRun(tmp, redis_server.url)
    run.start()
    store = TelemetryStore(connect(redis_server.url, socket_connect_timeout=0.5, socket_timeout=1), run.prefix)
    db = run.env["DATABASE_URL"].removeprefix("sqlite:///")
    try:
        import httpx

        wait_for(lambda: _ok(httpx, run.url + "/accounts/login/"), 180, "make run's web server", every=0.5)
        wait_for(lambda: store.read(MakeRun.DEVICE) and store.read("demo-agx-orin"), 60, "agent and demo data")
        cookie = session_cookie(run.url, "admin", MakeRun.PASSWORD)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium(), headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
            # bypass_csp: wait_for_function evals in the page, which the CSP forbids (checked
            # under the real CSP in tests/test_hostile_devices.py)
            context = browser.new_context(bypass_csp=True)
            context.add_cookies([{"name": "sessionid", "value": cookie, "url": run.url}])
            page = context.new_page()
            page.goto(run.url + f"/devices/{MakeRun.DEVICE}/")
            page.wait_for_function("document.getElementById('charts').dataset.updates >= '1'", timeout=60000)
            time.sleep(3)
            before = Probes(run, store, cookie, page, db, "pre").measure(time.time())
            time.sleep(3)
            killed_at = time.time()
            redis_server.kill()
            time.sleep(outage_s)
            redis_server.start()
            back_at = time.time()
            after = Probes(run, store, cookie, page, db, "post").measure(back_at)
            browser.close()
        time.sleep(5)
        status = [r for r in store.read(MakeRun.DEVICE, since=killed_at - 5) if r.get("source") == "agent"]
        stamps = [r["ts"] for r in store.read(MakeRun.DEVICE, since=killed_at - 5, until=back_at + 5)]
        gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
        buffered = max(r["values"].get("agent_buffered_records", 0) for r in status)
        dropped = max(r["values"].get("agent_dropped_records_total", 0) for r in status)
        print(f"\n## make run over a {outage_s:g} s Redis outage (SIGKILL, restart with AOF)\n")
        print("| process | signal | before the outage (peer) | after Redis returned |")
        print("|---|---|---|---|")
        what = {"web": "GET / answers 200", "agent": "agent data newer than t0 in Redis",
                "demo": "demo replay data newer than t0", "page": "the open device page draws a point newer than t0",
                "action": "an action submitted at t0 has its result",
                "alert": "a breach written at t0 has its alert row"}
        for key, label in what.items():
            print(f"| {key} | {label} | {_s(before[key])} | {_s(after[key])} |")
        print(f"\nagent: {int(buffered)} records buffered at most, {int(dropped)} dropped; largest gap in its stream "
              f"across the outage {max(gaps):.2f} s ({len(stamps)} records)")
        print(f"processes that exited (restarted by the supervisor): {run.exits() or 'none'}")
    finally:
        run.stop()
        redis_server.stop()


def _ok(httpx, url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _s(value: float | None) -> str:
    return "no answer" if value is None else f"{value:.1f} s"


def part2(outage_s: float, alerts: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="thoxdash-receiver-outage-"))
    redis_server = RedisServer(tmp)
    redis_server.start()
    stack = Stack(tmp, redis_server.url, prefix="thoxbench-hooks:", worker=False)
    stack.start()
    bindir = Path(sys.executable).parent
    stack.spawn("worker", str(bindir / "celery"), "-A", "thoxdash", "worker", "-l", "warning", "--concurrency", "2",
                "--hostname", f"bench-hooks-{stack.port}@%h")
    stack.spawn("beat", str(bindir / "celery"), "-A", "thoxdash", "beat", "-l", "warning",
                "--schedule", str(tmp / "celerybeat-schedule"))
    store = TelemetryStore(connect(redis_server.url), stack.prefix)
    down, up = Receiver(), Receiver().start()
    try:
        for rx in (down, up):
            stack.manage("webhook", "add", rx.url, "--format", "json", "--min-severity", "warning")
        started = time.time()
        fired: dict[str, float] = {}
        for i in range(alerts):
            device = f"bench-hook-{i:02d}"
            wait = started + i * outage_s / alerts - time.time()
            if wait > 0:
                time.sleep(wait)
            breach(store, device)
            fired[device] = time.time()
        time.sleep(max(0.0, started + outage_s - time.time()))
        attempts = stack.manage("webhook", "list").strip()
        down.start()
        back = time.time()

        def firing(rx: Receiver) -> list[str]:
            return [b["device"] for b in rx.bodies if b.get("status") == "firing"]

        with contextlib.suppress(AssertionError):
            wait_for(lambda: len(set(firing(down))) >= alerts, 600, "the backlog", every=0.2)
        drained = time.time() - back
        got = firing(down)
        up_delays = sorted(at - fired[b["device"]] for b, at in zip(up.bodies, up.arrivals, strict=True)
                           if b.get("status") == "firing" and b.get("device") in fired)

        def kinds(rx: Receiver) -> str:
            counts: dict[str, int] = {}
            for b in rx.bodies:
                counts[str(b.get("status"))] = counts.get(str(b.get("status")), 0) + 1
            return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))

        print(f"\n## webhooks over a {outage_s:g} s receiver outage, {alerts} alerts fired during it\n")
        print(f"- returning receiver: {len(set(got))} of {alerts} firing notifications, all within {drained:.1f} s "
              f"of its return; order {'kept' if got == sorted(got) else 'NOT kept: ' + ', '.join(got)}; "
              f"every POST: {kinds(down)}")
        print(f"- healthy receiver (peer): {len(set(firing(up)))} of {alerts} firing, breach-to-POST "
              f"{up_delays[len(up_delays) // 2]:.1f} s median, {up_delays[-1]:.1f} s max; every POST: {kinds(up)}")
        print("- before the return, `webhook list` said:\n\n    " + attempts.replace("\n", "\n    "))
    finally:
        up.stop()
        down.stop()
        stack.stop()
        redis_server.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outage", type=float, default=30.0)
    ap.add_argument("--receiver-outage", type=float, default=300.0)
    ap.add_argument("--alerts", type=int, default=10)
    ap.add_argument("--part", choices=("1", "2", "both"), default="both")
    args = ap.parse_args(argv)
    if args.part in ("1", "both"):
        part1(args.outage)
    if args.part in ("2", "both"):
        part2(args.receiver_outage, args.alerts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
