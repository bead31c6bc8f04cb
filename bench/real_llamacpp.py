"""ThoxDash against a real llama.cpp llama-server: its figures beside the server's own.

    .venv/bin/python -m bench.real_llamacpp [--ticks 8] [--sleep-ticks 6]

Needs the server `scripts/ensure_llama_server.py` builds and a Redis at REDIS_URL (the proxy
publishes there under its own key prefix, deleted afterwards). Prints:
  1. decode tok/s recorded by the proxy vs the server's own `timings.predicted_per_second`, for
     answers of 300, 2 and 1 tokens (same request, same run);
  2. the agent's decode speed per tick while the server is busy: the runtimes source's
     `llamacpp:predicted_tokens_seconds` and the latency scrape's decode series, both reading
     `/metrics` in the same tick (as the agent runs them), beside the server's own figure for the
     requests finished in that tick (sum of decode steps / sum of predicted_ms); then the same with
     each source reading /metrics itself, as before the fix (the peer in the same run);
  3. a server with `--sleep-idle-seconds 2` and the agent polling it every tick: asleep or awake.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

from collectors.proxy.series import DECODE_TPS
from collectors.sources.latency_scrape import LatencyScrapeSource
from collectors.sources.registry import interval_for
from collectors.sources.runtimes import RuntimeSource
from collectors.store import TelemetryStore, connect
from tests.proxy_helpers import client, records_in_store, start_proxy
from tests.real_llamacpp import ALIAS, LlamaServer, model_path


def chat(n: int, **extra: object) -> dict:
    return {"model": ALIAS, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": n,
            "temperature": 0, "seed": 1, **extra}


async def proxy_vs_server(srv: LlamaServer, store: TelemetryStore) -> None:
    running = await start_proxy(srv.url, store, runtime="bench")
    print("\n1. proxy decode tok/s vs the server's own (timings.predicted_per_second), same request")
    print(f"{'tokens':>7} {'server':>10} {'proxy':>10} {'diff':>8}")
    try:
        for seen, n in enumerate((300, 300, 2, 2, 1), start=1):
            async with client() as s, s.post(running.url + "/v1/chat/completions", json=chat(n)) as resp:
                body = json.loads(await resp.read())
            recs = await records_in_store(store, "requests", n=seen)
            req = recs[-1]["request"]
            server = body["timings"]["predicted_per_second"] if n > 1 else None
            mine = req.get("completion_tokens_per_s")
            diff = f"{(mine / server - 1) * 100:+.2f}%" if server and mine else "-"
            print(f"{n:>7} {server if server else 'none':>10} {mine if mine else 'none':>10} {diff:>8}")
    finally:
        await running.stop()


def busy_ticks(srv: LlamaServer, ticks: int, tmp: Path, tick_s: float, shared: bool = True) -> None:
    cfg = tmp / "runtimes.json"
    cfg.write_text(json.dumps({"runtimes": [{"name": "bench", "kind": "llamacpp", "url": srv.url}],
                               "defaults": False}))
    runtimes = RuntimeSource(root=Path("/"), config_path=str(cfg))
    scrape = LatencyScrapeSource(url=srv.url, kind="llamacpp", runtime="bench")
    stop = threading.Event()
    done: list[tuple[int, float]] = []  # (decode steps, predicted_ms) of each finished request

    def load() -> None:  # two clients back to back, answers of 48 tokens
        while not stop.is_set():
            status, body = srv.chat(max_tokens=48)
            if status == 200:
                done.append((body["timings"]["predicted_n"] - 1, body["timings"]["predicted_ms"]))

    workers = [threading.Thread(target=load, daemon=True) for _ in range(2)]
    how = "one shared /metrics read per tick" if shared else "each source reading /metrics itself (before the fix)"
    print(f"\n2. agent decode tok/s per busy tick ({ticks} ticks of {tick_s:g} s, 2 clients generating; {how})")
    print(f"{'tick':>5} {'runtimes src':>13} {'scrape':>10} {'server: steps/ms of the requests done':>38}")
    for w in workers:
        w.start()
    nonzero = last = before = 0
    try:
        for tick in range(ticks + 1):
            last, before = before, len(done)
            now = time.time()
            s = scrape.collect(now if shared else now - 1e-3)[0]["values"]  # another tick: its own read
            r = runtimes.collect(now)[0]["values"]
            if tick:
                gauge = r.get("llamacpp:predicted_tokens_seconds")
                dec = s.get(f'{DECODE_TPS}{{model="{ALIAS}",runtime="bench"}}')
                finished = done[last:before]
                server = (sum(n for n, _ in finished) / sum(ms for _, ms in finished) * 1000) if finished else None
                nonzero += bool(gauge) and bool(dec)
                print(f"{tick:>5} {gauge or 0:>13.0f} {dec or 0:>10.0f} {server or 0:>38.0f}")
            time.sleep(tick_s)
    finally:
        stop.set()
        for w in workers:
            w.join()
        runtimes.close()
        scrape.close()
    print(f"   non-zero in {nonzero} of {ticks} busy ticks (both sources)")


def sleeping(model: Path, ticks: int, tmp: Path) -> None:
    with LlamaServer(model, extra=["--sleep-idle-seconds", "2"], log_dir=tmp) as srv:
        cfg = tmp / "sleep.json"
        cfg.write_text(json.dumps({"runtimes": [{"name": "sleepy", "kind": "llamacpp", "url": srv.url}],
                                   "defaults": False}))
        runtimes = RuntimeSource(root=Path("/"), config_path=str(cfg))
        scrape = LatencyScrapeSource(url=srv.url, kind="llamacpp", runtime="sleepy")
        srv.chat(max_tokens=8)
        print(f"\n3. --sleep-idle-seconds 2, agent (runtimes source + latency scrape) every 1 s, {ticks} ticks")
        print(f"{'tick':>5} {'is_sleeping':>12} {'agent says':>22} {'server RSS MiB':>15}")
        try:
            time.sleep(3.0)
            for tick in range(ticks):
                now = time.time()
                recs = runtimes.collect(now) + scrape.collect(now)
                state = next((r["state"]["runtimes"]["sleepy"] for r in recs if "runtimes" in r.get("state", {})), {})
                says = "sleeping" if state.get("sleeping") else ("loaded" if state.get("models") else "-")
                print(f"{tick:>5} {str(srv.get('/props')[1].get('is_sleeping')):>12} {says:>22} "
                      f"{srv.rss_bytes() / 2**20:>15.1f}")
                time.sleep(1.0)
            srv.get("/slots")  # what the runtimes source polled every tick before the fix
            time.sleep(1.0)
            print(f"{'peer':>5} {str(srv.get('/props')[1].get('is_sleeping')):>12} {'(one GET /slots)':>22} "
                  f"{srv.rss_bytes() / 2**20:>15.1f}")
        finally:
            runtimes.close()
            scrape.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=8)
    ap.add_argument("--tick-s", type=float, default=interval_for("runtimes"),
                    help="seconds between agent ticks (default: the runtimes source's interval)")
    ap.add_argument("--sleep-ticks", type=int, default=6)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-llama-"))
    model = model_path(tmp / "model")
    store = TelemetryStore(connect(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")),
                           prefix=f"bench-llama-{uuid.uuid4().hex[:6]}:")
    try:
        with LlamaServer(model, log_dir=tmp) as srv:
            asyncio.run(proxy_vs_server(srv, store))
            busy_ticks(srv, args.ticks, tmp, args.tick_s)
            busy_ticks(srv, max(2, args.ticks // 2), tmp, args.tick_s, shared=False)
        sleeping(model, args.sleep_ticks, tmp)
    finally:
        store.delete_prefix()


if __name__ == "__main__":
    main()
