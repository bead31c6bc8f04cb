"""Fixtures shared by the latency-proxy tests: a proxy in this event loop, publishing to real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from collectors.proxy.publisher import Publisher
from collectors.proxy.server import Proxy, serve
from collectors.proxy.settings import ProxySettings
from collectors.store import TelemetryStore

DEVICE = "proxy-test"


@dataclass
class Running:
    proxy: Proxy
    publisher: Publisher
    runner: web.ServerRunner
    url: str

    async def stop(self) -> None:
        await self.runner.cleanup()
        await self.proxy.close()
        await asyncio.to_thread(self.publisher.stop)


async def start_proxy(
    upstream_url: str,
    store: TelemetryStore | None,
    runtime: str = "ollama",
    settings: ProxySettings | None = None,
    **publisher_kw: Any,
) -> Running:
    loop = asyncio.get_running_loop()
    proxy = Proxy(upstream_url, runtime, DEVICE, settings=settings)
    publisher = Publisher(
        store,
        DEVICE,
        runtime,
        interval=0.05,
        admission_interval=0.05,
        on_admission=lambda raw: loop.call_soon_threadsafe(proxy.set_limits, raw),
        gauges=proxy.gauges,
        build=proxy.records.build,
        **publisher_kw,
    )
    proxy.records.publisher = publisher
    runner = await serve(proxy, "127.0.0.1", 0)
    publisher.start()
    host, port = runner.addresses[0][:2]
    return Running(proxy, publisher, runner, f"http://{host}:{port}")


async def wait_until(
    cond: Callable[[], Any], timeout: float = 15.0, what: str = "condition"
) -> Any:
    """Poll `cond` (sync, may block briefly) until truthy; generous bound, no fixed sleeps."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(cond) if getattr(cond, "blocking", False) else cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def blocking(fn: Callable[[], Any]) -> Callable[[], Any]:
    fn.blocking = True  # type: ignore[attr-defined]
    return fn


async def records_in_store(
    store: TelemetryStore,
    stream: str,
    n: int = 1,
    pred: Callable[[dict[str, Any]], bool] = lambda r: True,
) -> list[dict[str, Any]]:
    @blocking
    def found() -> list[dict[str, Any]]:
        recs = [r for r in store.tail(DEVICE, stream, 1000) if pred(r)]
        return recs if len(recs) >= n else []

    return await wait_until(found, what=f"{n} {stream} record(s) in Redis")


def client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(auto_decompress=False)
