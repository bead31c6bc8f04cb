"""The proxy keeps serving through a Redis outage and publishes what it buffered afterwards;
and `python -m collectors proxy` runs as a command."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collectors.store import TelemetryStore, connect
from tests.proxy_helpers import DEVICE, client, records_in_store, start_proxy, wait_until
from tests.proxy_upstreams import Upstream

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(port: int, workdir: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            connect(f"redis://127.0.0.1:{port}/0").ping()
            return proc
        except Exception:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("private redis-server did not start")


@pytest.fixture
async def upstream():
    u = await Upstream().start()
    yield u
    await u.stop()


async def test_redis_outage_keeps_serving_and_buffers(upstream, tmp_path):
    port = free_port()
    redis_proc = await asyncio.to_thread(start_redis, port, tmp_path)
    store = TelemetryStore(
        connect(f"redis://127.0.0.1:{port}/0", socket_timeout=1), prefix="outage:"
    )
    running = await start_proxy(upstream.url, store)
    try:
        async with client() as s:
            async with s.post(
                running.url + "/api/generate", json={"model": "before", "prompt": "x"}
            ) as resp:
                assert resp.status == 200
            await records_in_store(store, "requests")
            redis_proc.terminate()
            await asyncio.to_thread(redis_proc.wait, 10)
            for i in range(3):
                async with s.post(
                    running.url + "/api/generate", json={"model": f"during{i}", "prompt": "x"}
                ) as resp:
                    assert resp.status == 200 and (await resp.read()) == upstream.sent[-1]
            await wait_until(lambda: running.publisher.redis_ok is False, what="outage noticed")
            await wait_until(lambda: len(running.publisher.buffer) >= 3, what="records buffered")
        redis_proc = await asyncio.to_thread(start_redis, port, tmp_path)
        recs = await records_in_store(store, "requests", n=3)
        assert [r["request"]["model"] for r in recs] == ["during0", "during1", "during2"]
        assert running.publisher.redis_ok is True
    finally:
        await running.stop()
        redis_proc.terminate()
        redis_proc.wait(10)


async def test_command_line_proxy_serves_records_and_stops_cleanly(upstream, store, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "THOXDASH_REDIS_PREFIX": store.prefix,
        "THOXDASH_PROXY_PUBLISH_S": "0.05",
        "THOXDASH_PROXY_SPILL": str(tmp_path),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "collectors",
        "proxy",
        "--listen",
        f"127.0.0.1:{port}",
        "--upstream",
        upstream.url,
        "--runtime",
        "ollama",
        "--device",
        DEVICE,
        "--redis",
        os.environ["REDIS_URL"],
        cwd=str(ROOT),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        async with client() as s:

            async def up() -> bool:
                try:
                    async with s.get(url + "/api/version") as resp:
                        return resp.status == 200
                except OSError:
                    return False

            deadline = time.monotonic() + 30
            while not await up():
                assert proc.returncode is None and time.monotonic() < deadline, (
                    "proxy did not come up"
                )
                await asyncio.sleep(0.1)
            async with s.post(
                url + "/api/chat",
                json={"model": "cli", "messages": [{"role": "user", "content": "x"}]},
            ) as resp:
                assert (await resp.read()) == upstream.sent[-1]
        (rec,) = await records_in_store(store, "requests")
        assert rec["request"]["model"] == "cli" and rec["request"]["endpoint"] == "/api/chat"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 20)
    assert code == 0


async def test_command_line_rejects_a_bad_listen_address(tmp_path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "collectors",
        "proxy",
        "--listen",
        "nonsense",
        "--upstream",
        "http://127.0.0.1:9",
        "--runtime",
        "ollama",
        "--device",
        DEVICE,
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and b"HOST:PORT" in out
