"""The latency proxy against loopback servers speaking Ollama NDJSON and OpenAI SSE."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.proxy_helpers import DEVICE, client, records_in_store, start_proxy, wait_until
from tests.proxy_upstreams import BUSY, SLOW_S, Upstream


@pytest.fixture
async def upstream():
    u = await Upstream().start()
    yield u
    await u.stop()


@pytest.fixture
async def proxied(upstream, store):
    running = await start_proxy(upstream.url, store)
    yield running
    await running.stop()


def by_model(store, model):
    return lambda r: r["request"].get("model") == model


async def test_ndjson_stream_is_byte_identical_and_timed(proxied, upstream, store):
    async with (
        client() as s,
        s.post(proxied.url + "/api/generate", json={"model": "llama3.2", "prompt": "hi"}) as resp,
    ):
        body = await resp.read()
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/x-ndjson"
    assert body == upstream.sent[-1]
    assert body.count(b"\n") == 4
    (rec,) = await records_in_store(store, "requests")
    assert rec["source"] == "request"
    req = rec["request"]
    assert (
        req["runtime"] == "ollama"
        and req["model"] == "llama3.2"
        and req["endpoint"] == "/api/generate"
    )
    assert req["status"] == 200 and req["stream"] is True
    assert req["prompt_tokens"] == 26 and req["prompt_s"] == pytest.approx(0.13)
    assert req["completion_tokens"] == 3 and req["completion_s"] == pytest.approx(0.4)
    assert req["completion_tokens_per_s"] == pytest.approx(7.5)
    assert req["load_s"] == pytest.approx(0.005) and req["runtime_total_s"] == pytest.approx(0.605)
    assert 0 <= req["queue_s"] <= req["ttft_s"] <= req["total_s"]
    assert req["done_reason"] == "stop" and "error" not in req and "parse_errors" not in req
    # the same request shows up in the latency series
    values = await records_in_store(
        store,
        "telemetry",
        pred=lambda r: (
            'request_ttft_seconds{model="llama3.2",runtime="ollama"}' in r.get("values", {})
        ),
    )
    assert values[0]["values"][
        'request_decode_tokens_per_second{model="llama3.2",runtime="ollama"}'
    ] == pytest.approx(7.5)
    # a small load_duration is not a reload
    assert store.tail(DEVICE, "events") == []


async def test_sse_with_usage_chunk_and_done(proxied, upstream, store):
    payload = {
        "model": "qwen",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "hi"}],
    }
    async with client() as s, s.post(proxied.url + "/v1/chat/completions", json=payload) as resp:
        body = await resp.read()
    assert resp.status == 200
    assert body == upstream.sent[-1] and body.endswith(b"data: [DONE]\n\n") and b": ping" in body
    (rec,) = await records_in_store(store, "requests")
    req = rec["request"]
    assert req["prompt_tokens"] == 12 and req["completion_tokens"] == 3
    assert "tokens_estimated" not in req
    assert req["done_reason"] == "stop"
    # three content chunks 50 ms apart at the end: decode time measured from the stream
    assert req["completion_s"] >= 0.05
    assert req["ttft_s"] <= req["total_s"]


async def test_sse_without_usage_estimates_tokens_from_chunks(proxied, upstream, store):
    payload = {"model": "qwen", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with client() as s, s.post(proxied.url + "/v1/chat/completions", json=payload) as resp:
        body = await resp.read()
    assert body == upstream.sent[-1]
    (rec,) = await records_in_store(store, "requests")
    assert rec["request"]["completion_tokens"] == 3 and rec["request"]["tokens_estimated"] is True


@pytest.mark.parametrize(
    "path,payload",
    [
        ("/api/generate", {"model": "slow", "prompt": "hi"}),
        (
            "/v1/chat/completions",
            {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "x"}]},
        ),
    ],
)
async def test_slow_first_token_measured_from_first_real_output(
    proxied, upstream, store, path, payload
):
    async with client() as s, s.post(proxied.url + path, json=payload) as resp:
        body = await resp.read()
    assert body == upstream.sent[-1]
    (rec,) = await records_in_store(store, "requests")
    req = rec["request"]
    # headers (and for SSE a role-only chunk and a ping) come at once; real output after SLOW_S
    assert req["queue_s"] < SLOW_S
    assert SLOW_S <= req["ttft_s"] < SLOW_S + 5
    assert req["ttft_s"] <= req["total_s"]


async def test_mid_stream_error_at_status_200(proxied, upstream, store):
    async with client() as s:
        async with s.post(
            proxied.url + "/api/generate", json={"model": "error", "prompt": "hi"}
        ) as resp:
            body = await resp.read()
            assert resp.status == 200
        assert body == upstream.sent[-1]
        payload = {"model": "error", "stream": True, "messages": [{"role": "user", "content": "x"}]}
        async with s.post(proxied.url + "/v1/chat/completions", json=payload) as resp:
            body = await resp.read()
        assert body == upstream.sent[-1]
    recs = await records_in_store(store, "requests", n=2)
    ollama, openai = (r["request"] for r in recs)
    assert ollama["status"] == 200 and "llama runner process has terminated" in ollama["error"]
    assert openai["status"] == 200 and openai["error"] == "context shift failed"


async def test_busy_503_passes_through(proxied, upstream, store):
    async with (
        client() as s,
        s.post(
            proxied.url + "/api/chat",
            json={"model": "busy", "messages": [{"role": "user", "content": "x"}]},
        ) as resp,
    ):
        body = await resp.read()
    assert resp.status == 503 and json.loads(body) == BUSY
    (rec,) = await records_in_store(store, "requests")
    assert rec["request"]["status"] == 503 and rec["request"]["error"].startswith("server busy")


async def test_large_load_duration_is_a_model_loaded_event(proxied, upstream, store):
    async with (
        client() as s,
        s.post(proxied.url + "/api/generate", json={"model": "loading", "prompt": "hi"}) as resp,
    ):
        await resp.read()
    (event,) = await records_in_store(store, "events")
    assert event["event"] == {
        "kind": "model_loaded",
        "runtime": "ollama",
        "model": "loading",
        "load_s": 3.5,
        "endpoint": "/api/generate",
    }
    (rec,) = await records_in_store(store, "requests")
    assert rec["request"]["load_s"] == 3.5


async def test_load_and_unload_requests_are_events_not_latency_samples(proxied, upstream, store):
    async with client() as s:
        async with s.post(proxied.url + "/api/generate", json={"model": "m1"}) as resp:
            assert (await resp.json())["done_reason"] == "load"
        async with s.post(
            proxied.url + "/api/generate", json={"model": "m1", "keep_alive": 0}
        ) as resp:
            assert (await resp.json())["done_reason"] == "unload"
    events = await records_in_store(store, "events", n=2)
    assert [e["event"]["kind"] for e in events] == ["model_loaded", "model_unloaded"]
    assert events[0]["event"]["load_s"] == 2.0
    await asyncio.sleep(0.3)  # a few publish ticks
    assert store.tail(DEVICE, "requests") == []


async def test_non_streaming_openai_uses_usage_and_llamacpp_timings(proxied, upstream, store):
    payload = {"model": "qwen", "messages": [{"role": "user", "content": "hi"}]}
    async with (
        client() as s,
        s.post(proxied.url + "/v1/chat/completions?x=1", json=payload) as resp,
    ):
        body = await resp.read()
    assert json.loads(body)["choices"][0]["message"]["content"] == "Hello!"
    assert upstream.requests[-1][1] == "/v1/chat/completions?x=1"
    (rec,) = await records_in_store(store, "requests")
    req = rec["request"]
    assert req["prompt_tokens"] == 12 and req["completion_tokens"] == 3
    # predicted_ms (60) spans n-1 = 2 decode steps: 3 tokens at 30 ms each (issue 12, finding 2)
    assert req["completion_s"] == pytest.approx(0.09) and req["prompt_s"] == pytest.approx(0.04)
    assert req["cached_tokens"] == 4 and req["completion_tokens_per_s"] == pytest.approx(2 / 0.06, rel=1e-3)
    assert "ttft_s" not in req and req["stream"] is False


async def test_bad_bytes_pass_through_untouched_and_count_as_parse_errors(proxied, upstream, store):
    async with client() as s:
        async with s.post(
            proxied.url + "/api/generate", json={"model": "bad", "prompt": "hi"}
        ) as resp:
            body = await resp.read()
        assert resp.status == 200
        assert body == upstream.sent[-1] and b"\xff\xfe" in body and len(body) > 1_200_000
        # the proxy is still fine afterwards
        async with s.post(
            proxied.url + "/api/generate", json={"model": "fine", "prompt": "hi"}
        ) as resp:
            assert (await resp.read()) == upstream.sent[-1]
    bad, fine = (r["request"] for r in await records_in_store(store, "requests", n=2))
    # invalid JSON, non-UTF-8, an oversized line, a non-object
    assert bad["parse_errors"] == 4 and bad["parse_error"].startswith("invalid JSON")
    assert bad["completion_tokens"] == 3 and bad["status"] == 200  # the final chunk still counted
    assert "parse_errors" not in fine


async def test_chunks_are_forwarded_as_they_arrive(proxied, upstream, store):
    async with (
        client() as s,
        s.post(proxied.url + "/api/generate", json={"model": "gate", "prompt": "hi"}) as resp,
    ):
        first = await asyncio.wait_for(resp.content.readline(), 10)
        # the upstream is still holding the rest: the first chunk got here on its own
        assert json.loads(first)["response"] == "Hel" and not upstream.release.is_set()
        upstream.release.set()
        rest = await resp.read()
    assert first + rest == upstream.sent[-1]


async def test_client_disconnect_mid_stream_leaks_nothing(proxied, upstream, store):
    baseline = len(asyncio.all_tasks())
    async with client() as s:
        resp = await s.post(proxied.url + "/api/generate", json={"model": "hold", "prompt": "hi"})
        await asyncio.wait_for(resp.content.readline(), 10)
        assert proxied.proxy.in_flight == 1
        resp.close()  # drop the connection mid-stream
    # the proxy closed its upstream connection: the held upstream handler saw its client go
    await asyncio.wait_for(upstream.closed.wait(), 15)
    await wait_until(lambda: proxied.proxy.in_flight == 0, what="no request in flight")
    (rec,) = await records_in_store(store, "requests")
    assert rec["request"]["client_disconnected"] is True
    assert proxied.proxy.disconnects == 1
    await wait_until(lambda: len(asyncio.all_tasks()) <= baseline, what="no task left behind")
    assert upstream.sent == []


async def test_other_endpoints_and_headers_pass_through(proxied, upstream, store):
    async with (
        client() as s,
        s.get(
            proxied.url + "/api/version?verbose=1",
            headers={"Authorization": "Bearer t", "X-Thoxdash-Priority": "high"},
        ) as resp,
    ):
        body = await resp.read()
    assert resp.status == 200 and json.loads(body) == {"version": "0.5.1"}
    assert resp.headers["Set-Cookie"] == "s=1"
    method, path, headers, _ = upstream.requests[-1]
    assert (method, path) == ("GET", "/api/version?verbose=1")
    assert headers["Authorization"] == "Bearer t" and "X-Thoxdash-Priority" not in headers
    assert headers["Host"] == upstream.url.split("//")[1]
    await asyncio.sleep(0.2)
    assert store.tail(DEVICE, "requests") == []  # not an inference request


async def test_upstream_down_is_a_502_in_the_clients_dialect(store):
    running = await start_proxy("http://127.0.0.1:9", store)
    try:
        async with client() as s:
            async with s.post(
                running.url + "/api/generate", json={"model": "m", "prompt": "x"}
            ) as resp:
                assert resp.status == 502 and "unreachable" in (await resp.json())["error"]
            async with s.post(
                running.url + "/v1/chat/completions", json={"model": "m", "messages": []}
            ) as resp:
                assert (
                    resp.status == 502
                    and (await resp.json())["error"]["type"] == "upstream_unreachable"
                )
        recs = await records_in_store(store, "requests", n=2)
        assert all(r["request"]["status"] == 502 for r in recs)
    finally:
        await running.stop()
