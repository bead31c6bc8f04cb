"""Admission control: limits from the store's admission hash, read at run time."""

from __future__ import annotations

import asyncio

import pytest

from collectors.proxy.admission import Admission, Limits
from collectors.proxy.settings import ProxySettings
from tests.proxy_helpers import DEVICE, client, records_in_store, start_proxy, wait_until
from tests.proxy_upstreams import Upstream


@pytest.fixture
async def upstream():
    u = await Upstream().start()
    yield u
    await u.stop()


@pytest.fixture
async def proxied(upstream, store):
    # this proxy lets clients choose any priority (the default lets them only lower it)
    allow_all = ProxySettings(client_priorities=frozenset(("high", "normal", "low")))
    running = await start_proxy(upstream.url, store, settings=allow_all)
    yield running
    await running.stop()


GEN = {"model": "hold", "prompt": "hi"}


async def _set_limits(store, proxied, scope, limits):
    await asyncio.to_thread(store.set_admission, DEVICE, scope, limits)
    want = Limits.parse(limits) if limits is not None else None
    await wait_until(
        lambda: proxied.proxy.admission.limits.get(scope) == want, what=f"limits {scope} applied"
    )


async def test_over_the_limit_ollama_gets_503_openai_gets_429_with_retry_after(
    proxied, upstream, store
):
    await _set_limits(
        store, proxied, "ollama", {"max_concurrency": 1, "max_queue": 0, "retry_after_s": 7}
    )
    async with client() as s:
        held = await s.post(proxied.url + "/api/generate", json=GEN)
        await asyncio.wait_for(upstream.started.wait(), 10)
        async with s.post(
            proxied.url + "/api/generate", json={"model": "x", "prompt": "hi"}
        ) as resp:
            assert resp.status == 503 and resp.headers["Retry-After"] == "7"
            assert (await resp.json())["error"].startswith("server busy")
        async with s.post(
            proxied.url + "/v1/chat/completions",
            json={"model": "x", "stream": True, "messages": []},
        ) as resp:
            assert resp.status == 429 and resp.headers["Retry-After"] == "7"
            assert (await resp.json())["error"]["type"] == "rate_limit_exceeded"
        upstream.release.set()
        assert (await held.read()) == upstream.sent[-1]
        held.close()
    recs = await records_in_store(store, "requests", n=3)
    rejected = [r["request"] for r in recs if r["request"].get("rejected")]
    assert sorted(r["status"] for r in rejected) == [429, 503]
    assert proxied.proxy.admission.rejected_total == 2
    # only the held request reached the upstream
    assert [p for _, p, _, _ in upstream.requests] == ["/api/generate"]


async def test_high_priority_waits_for_a_slot_instead_of_being_refused(proxied, upstream, store):
    await _set_limits(store, proxied, "ollama", {"max_concurrency": 1, "max_queue": 0})
    async with client() as s:
        held = await s.post(proxied.url + "/api/generate", json=GEN)
        await asyncio.wait_for(upstream.started.wait(), 10)
        high = asyncio.create_task(
            s.post(
                proxied.url + "/api/generate",
                json={"model": "fine", "prompt": "x"},
                headers={"X-Thoxdash-Priority": "high"},
            )
        )
        await wait_until(lambda: proxied.proxy.admission.waiting() == 1, what="high request queued")
        assert not high.done()
        upstream.release.set()
        await held.read()
        resp = await asyncio.wait_for(high, 15)
        assert resp.status == 200 and (await resp.read()) == upstream.sent[-1]
    recs = await records_in_store(store, "requests", n=2)
    high_rec = [r["request"] for r in recs if r["request"]["model"] == "fine"][0]
    assert high_rec["priority"] == "high" and high_rec["admission_wait_s"] > 0


async def test_limits_change_at_run_time_without_restart(proxied, upstream, store):
    await _set_limits(store, proxied, "ollama/hold", {"max_concurrency": 1, "max_queue": 0})
    async with client() as s:
        held = await s.post(proxied.url + "/api/generate", json=GEN)
        await asyncio.wait_for(upstream.started.wait(), 10)
        async with s.post(proxied.url + "/api/generate", json=GEN) as resp:
            assert resp.status == 503  # same model: over its limit
        async with s.post(
            proxied.url + "/api/generate", json={"model": "other", "prompt": "x"}
        ) as resp:
            assert resp.status == 200  # another model is not limited
        await _set_limits(store, proxied, "ollama/hold", None)
        second = asyncio.create_task(s.post(proxied.url + "/api/generate", json=GEN))
        await wait_until(lambda: len(upstream.requests) == 3, what="second hold request forwarded")
        upstream.release.set()
        for resp in (held, await asyncio.wait_for(second, 15)):
            assert resp.status == 200
            await resp.read()


async def test_queue_timeout_rejects_a_waiting_request(proxied, upstream, store):
    await _set_limits(
        store, proxied, "ollama", {"max_concurrency": 1, "max_queue": 5, "queue_timeout_s": 0.2}
    )
    async with client() as s:
        held = await s.post(proxied.url + "/api/generate", json=GEN)
        await asyncio.wait_for(upstream.started.wait(), 10)
        async with s.post(
            proxied.url + "/api/generate", json={"model": "x", "prompt": "y"}
        ) as resp:
            assert resp.status == 503
        upstream.release.set()
        await held.read()
    recs = await records_in_store(
        store,
        "requests",
        n=2,
        pred=lambda r: r["request"].get("rejected") or r["request"]["model"] == "hold",
    )
    rejected = [r["request"] for r in recs if r["request"].get("rejected")][0]
    assert rejected["error"] == "queue timeout" and rejected["admission_wait_s"] >= 0.2


async def test_waiters_are_served_by_priority_then_arrival():
    adm = Admission("ollama")
    adm.update({"ollama": {"max_concurrency": 1}, "other": {"max_concurrency": 0}})
    assert "other" not in adm.limits
    first = await adm.acquire("m", None)
    order: list[str] = []

    async def want(name: str, prio: str) -> None:
        ticket = await adm.acquire("m", prio)
        order.append(name)
        await asyncio.sleep(0)
        ticket.release()

    tasks = [
        asyncio.create_task(want(n, p))
        for n, p in [
            ("low1", "low"),
            ("normal1", "normal"),
            ("high1", "high"),
            ("low2", "low"),
            ("high2", "high"),
        ]
    ]
    await wait_until(lambda: adm.waiting() == 5, what="five waiters")
    first.release()
    await asyncio.gather(*tasks)
    assert order == ["high1", "high2", "normal1", "low1", "low2"]
    assert adm.running() == 0 and adm.waiting() == 0


async def test_cancelled_waiter_gives_back_nothing_and_leaves_the_queue():
    adm = Admission("ollama")
    adm.update({"ollama": {"max_concurrency": 1}})
    first = await adm.acquire(None, None)
    waiter = asyncio.create_task(adm.acquire(None, "low"))
    await wait_until(lambda: adm.waiting() == 1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert adm.waiting() == 0
    first.release()
    assert adm.running() == 0
    again = await asyncio.wait_for(adm.acquire(None, None), 5)
    assert adm.running() == 1
    again.release()


def test_bad_limit_values_fall_back_to_defaults():
    limits = Limits.parse(
        {
            "max_concurrency": "two",
            "max_queue": -1,
            "retry_after_s": 3,
            "default_priority": "urgent",
        }
    )
    assert limits.max_concurrency == float("inf") and limits.max_queue == float("inf")
    assert limits.retry_after_s == 3 and limits.default_priority == "normal"
    assert Limits.parse("nonsense") == Limits()
