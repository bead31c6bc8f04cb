"""Record the agent (NVML + runtimes + latency scrape) and the proxy around a real llama-server on
a GPU, in the recording format (tests/fixtures/gpu/ holds one, with its README).

Run on a machine with an NVIDIA GPU, the CUDA build of llama-server
(`scripts/ensure_llama_server.py --cuda 90 --sources-tar ...`) and the tiny model:
    python3 -m scripts.record_llama_gpu --server BIN --model tiny-random.gguf --out llama-gpu.jsonl

The server runs with every layer on the GPU (-ngl 99). The agent samples every 0.5 s (NVML) and
1 s (runtimes source, latency scrape) while requests go through the proxy (kept in memory):
streams of 256 tokens two at a time, non-streaming answers of 300 tokens, answers of 2 and 1
tokens; `workload_phase` events mark the phases. nvidia-smi's own per-process figure is written
into the header notes for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from collectors.agent import Agent
from collectors.proxy.server import Proxy, serve
from collectors.recording import dumps
from collectors.sources.latency_scrape import LatencyScrapeSource
from collectors.sources.nvml import NvmlSource
from collectors.sources.runtimes import RuntimeSource

RUNTIME = "llama-gpu"
ALIAS = "tiny-random"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, body: dict[str, Any], timeout: float = 120.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def chat(n: int, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": ALIAS, "messages": [{"role": "user", "content": "Say hello."}],
                            "max_tokens": n, "temperature": 0, "seed": 1, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def start_server(binary: str, model: str, port: int, ngl: int, log: Path) -> subprocess.Popen[bytes]:
    args = [binary, "-m", model, "--alias", ALIAS, "--host", "127.0.0.1", "--port", str(port), "--metrics",
            "--slots", "-np", "2", "-c", "4096", "-ngl", str(ngl)]
    proc = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"llama-server exited {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            pass
        time.sleep(0.25)
    proc.kill()
    raise SystemExit("llama-server not healthy in 120 s")


def nvidia_smi_apps() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,process_name,used_memory", "--format=csv"],
                             capture_output=True, text=True, timeout=20, check=False)
        return out.stdout.strip()
    except OSError as exc:
        return f"nvidia-smi: {exc}"


async def workload(proxy_url: str, events: list[dict[str, Any]], pid: int) -> None:
    def phase(name: str, **kw: Any) -> None:
        events.append({"ts": time.time(), "source": "event",
                       "event": {"kind": "workload_phase", "pid": pid, "phase": name, **kw}})

    url = proxy_url + "/v1/chat/completions"
    phase("idle")
    await asyncio.sleep(3.0)
    phase("streams", tokens=256, concurrent=2, requests=12)
    for _ in range(6):
        await asyncio.gather(*(asyncio.to_thread(post, url, chat(256, True)) for _ in range(2)))
    phase("non_streaming", tokens=300, requests=4)
    for _ in range(4):
        await asyncio.to_thread(post, url, chat(300, False))
    phase("short", tokens=[2, 1])
    for n in (2, 2, 1, 1):
        await asyncio.to_thread(post, url, chat(n, False))
    phase("idle_after")
    await asyncio.sleep(3.0)
    phase("end")


async def amain(args: argparse.Namespace) -> int:
    port = free_port()
    out = Path(args.out)
    server = start_server(args.server, args.model, port, args.ngl, out.with_suffix(".server.log"))
    url = f"http://127.0.0.1:{port}"
    cfg = out.with_suffix(".runtimes.json")
    cfg.write_text(json.dumps({"runtimes": [{"name": RUNTIME, "kind": "llamacpp", "url": url,
                                              "match": {"names": ["llama-server"]}}], "defaults": False}))
    sources = [NvmlSource(root=Path("/"), interval=0.5),
               RuntimeSource(root=Path("/"), interval=1.0, config_path=str(cfg)),
               LatencyScrapeSource(root=Path("/"), interval=1.0, url=url, kind="llamacpp", runtime=RUNTIME)]
    agent = Agent("h200-llama-gpu", sources, store=None)
    records: list[dict[str, Any]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            records.extend(agent.collect_due(time.time()))
            stop.wait(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    proxy = Proxy(url, RUNTIME, agent.device)
    proxy.records.kept = []
    served = await serve(proxy, "127.0.0.1", 0)
    host, proxy_port = served.addresses[0][:2]
    events: list[dict[str, Any]] = []
    smi_busy = ""
    try:
        task = asyncio.create_task(workload(f"http://{host}:{proxy_port}", events, server.pid))
        while not task.done():
            await asyncio.sleep(2.0)
            if not smi_busy:
                smi_busy = await asyncio.to_thread(nvidia_smi_apps)
        await task
    finally:
        stop.set()
        sampler.join()
        await served.cleanup()
        agent.close()
        server.terminate()
        server.wait(10)
    kept = proxy.records.kept or []
    state: dict[str, Any] = next((r["state"] for r in records if "gpu_name" in r.get("state", {})), {})
    header = {"thoxdash_recording": 1, "device": agent.device,
              "board": {"kind": "dgpu", "gpu": state.get("gpu_name"), "driver": state.get("driver_version")},
              "notes": (f"Real telemetry on {state.get('gpu_name')}: llama.cpp llama-server (CUDA build, "
                        f"pid {server.pid}, -ngl {args.ngl}, tiny random-weight model) watched by the agent "
                        "(NVML every 0.5 s, runtimes source and latency scrape every 1 s) while requests went "
                        "through the ThoxDash proxy. nvidia-smi during the load: " + smi_busy.replace("\n", "; "))}
    merged = sorted(records + kept + events, key=lambda r: r["ts"])
    with out.open("w", encoding="utf-8") as fh:
        fh.write(dumps(header) + "\n")
        for record in merged:
            fh.write(dumps(record) + "\n")
    gpu_bytes = [r["values"].get(f'runtime_gpu_memory_bytes{{runtime="{RUNTIME}"}}') for r in records
                 if "values" in r]
    print(json.dumps({"records": len(merged), "requests": sum(1 for r in kept if "request" in r),
                      "server_pid": server.pid, "runtime_gpu_memory_bytes_max": max(filter(None, gpu_bytes),
                                                                                     default=None),
                      "nvidia_smi": smi_busy, "gpu": state.get("gpu_name")}))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--server", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ngl", type=int, default=99)
    return asyncio.run(amain(ap.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
