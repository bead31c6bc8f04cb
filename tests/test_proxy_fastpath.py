"""The latency proxy's hot-path shortcuts keep records exactly as they were: deferred parsing gives
the same fields as parsing while streaming, requests forwarded from the socket callback are
recorded and clean up after a client that leaves at once, and the publisher drains every record
when it stops."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct

import pytest

from collectors.proxy.exchange import Exchange
from collectors.proxy.publisher import Publisher
from collectors.proxy.server import Proxy
from collectors.proxy.settings import ProxySettings
from collectors.proxy.timing import StreamTiming, request_fields
from tests.proxy_helpers import DEVICE, client, records_in_store, start_proxy, wait_until
from tests.proxy_upstreams import Upstream


def _ndjson(*objs: object) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objs)


STREAMS = {
    "ndjson": (
        "ndjson",
        _ndjson(
            {"model": "m", "response": "", "done": False},
            {"model": "m", "response": "Hel", "done": False},
            {"model": "m", "response": "lo", "done": False},
            {
                "model": "m",
                "response": "",
                "done": True,
                "done_reason": "stop",
                "total_duration": 9_000_000,
                "load_duration": 1_000_000,
                "prompt_eval_count": 3,
                "prompt_eval_duration": 2_000_000,
                "eval_count": 2,
                "eval_duration": 5_000_000,
            },
        ),
    ),
    "ndjson_bad": (
        "ndjson",
        b'{"model":"m","response":"a","done":false}\n{not json}\n\xff\xfe\n'
        + b'{"response":"'
        + b"x" * 300
        + b'"}\n'
        + b'{"error":"boom"}\n[1,2]\n'
        + b'{"model":"m","response":"b","done":false}',
    ),  # last line: no newline
    "sse": (
        "sse",
        b": ping\n\n"
        b'data: {"model":"o","choices":[{"delta":{"role":"assistant"}}]}\n\n'
        b'data: {"model":"o","choices":[{"delta":{"content":"Hi"}}]}\r\n\r\n'
        b'data: {"model":"o","choices":[{"delta":{"content":" there"}}]}\n\n'
        b'data: {"model":"o","choices":[{"delta":{},"finish_reason":"stop"}]}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}\n\n'
        b'event: error\ndata: {"message":"late"}\n\n'
        b"data: [DONE]\n\n",
    ),
    "sse_oversized": (
        "sse",
        b'data: {"choices":[{"delta":{"content":"' + b"y" * 400 + b'"}}]}\n\n'
        b'data: {"choices":[{"delta":{"content":"z"}}]}\n\n',
    ),
    "json": (
        "json",
        json.dumps(
            {
                "model": "j",
                "choices": [{"message": {"content": "ok"}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1},
                "timings": {
                    "prompt_n": 1,
                    "prompt_ms": 2.0,
                    "predicted_n": 1,
                    "predicted_ms": 3.0,
                    "cache_n": 0,
                },
            }
        ).encode(),
    ),
    "json_bad": ("json", b'{"model": "j", "choices": [\xff'),
    "raw": ("raw", b"\x00\x01binary" * 10),
}


def _pieces(body: bytes, seed: int) -> list[tuple[bytes, float]]:
    rng = random.Random(seed)
    out, pos, t = [], 0, 100.0
    while pos < len(body):
        n = rng.randint(1, 40)
        out.append((body[pos : pos + n], t))
        pos += n
        t += rng.random() * 0.01
    return out


def _fields(st: StreamTiming) -> dict:
    fields = request_fields(st, 99.0, 200.0)
    return {
        **fields,
        "model": st.model,
        "chunks": st.chunks,
        "bytes": st.bytes,
        "objects": st.objects,
        "first_byte_t": st.first_byte_t,
        "sse_done": st.sse_done,
    }


@pytest.mark.parametrize("name", sorted(STREAMS))
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("closed", [True, False])
@pytest.mark.parametrize("defer_max", [1 << 20, 50])
def test_deferred_parsing_gives_the_same_record(name, seed, closed, defer_max):
    framing, body = STREAMS[name]
    eager = StreamTiming(framing, max_line=256)
    deferred = StreamTiming(framing, max_line=256, defer=True, defer_max=defer_max)
    pieces = _pieces(body, seed)
    for data, t in pieces:
        eager.feed(data, t)
        deferred.feed(data, t)
    if closed:
        eager.close(pieces[-1][1])
        deferred.close(pieces[-1][1])
    assert _fields(deferred) == _fields(eager)
    assert _fields(deferred.finalize()) == _fields(eager)  # idempotent


def test_deferred_parsing_holds_back_a_bounded_amount():
    st = StreamTiming("ndjson", defer=True, defer_max=1000)
    line = json.dumps({"response": "t", "done": False}).encode() + b"\n"
    for i in range(500):
        st.feed(line, float(i))
        assert st._deferred_bytes <= 1000 + len(line)
    st.close(500.0)
    assert request_fields(st, 0.0, 500.0)["completion_tokens"] == 500


@pytest.fixture
async def upstream():
    u = await Upstream().start()
    yield u
    await u.stop()


async def test_kept_alive_requests_go_out_from_the_callback_and_are_all_recorded(upstream, store):
    running = await start_proxy(upstream.url, store)
    try:
        async with client() as s:
            for i in range(20):
                async with s.post(
                    running.url + "/api/generate", json={"model": f"m{i % 2}", "prompt": "hi"}
                ) as resp:
                    body = await resp.read()
                    assert resp.status == 200 and body == upstream.sent[-1]
        recs = await records_in_store(store, "requests", 20)
        assert len(recs) == 20
        for rec in recs:
            req = rec["request"]
            assert req["status"] == 200 and req["ttft_s"] > 0 and req["completion_tokens"] >= 1
            assert req["priority"] == "normal" and req["model"] in ("m0", "m1")
        assert running.proxy.in_flight == 0 and running.proxy.admission.running() == 0
        assert len(running.proxy.pool.idle) == 1  # one upstream connection, reused throughout
    finally:
        await running.stop()


async def test_client_gone_right_after_sending_leaks_nothing(upstream, store):
    running = await start_proxy(upstream.url, store)
    try:
        host, port = running.url.removeprefix("http://").split(":")
        body = json.dumps({"model": "hold", "prompt": "x"}).encode()
        request = (
            b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        for _ in range(5):
            with socket.create_connection((host, int(port))) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.sendall(request)  # and reset at once
        await wait_until(
            lambda: (
                running.proxy.in_flight == 0
                and running.proxy.admission.running() == 0
                and not running.proxy.clients
            ),
            what="every request cleaned up",
        )
        recs = await records_in_store(store, "requests", 5)
        assert all(r["request"].get("client_disconnected") for r in recs)
        assert running.proxy.disconnects == 5
        upstream.release.set()
    finally:
        await running.stop()


async def test_publisher_drains_every_record_when_it_stops(store):
    proxy = Proxy("http://127.0.0.1:9", "ollama", DEVICE)
    publisher = Publisher(store, DEVICE, "ollama", interval=3600, build=proxy.records.build)
    proxy.records.publisher = publisher
    publisher.start()
    await asyncio.sleep(0.05)  # the first tick has run: the rest waits for stop()
    for i in range(300):
        st = StreamTiming("ndjson", defer=True)
        st.feed(
            _ndjson(
                {"model": "d", "response": "x", "done": False},
                {"model": "d", "done": True, "eval_count": 1, "eval_duration": 1000},
            ),
            1.0 + i,
        )
        st.close(2.0 + i)
        proxy.records.note(
            {"runtime": "ollama", "model": None, "endpoint": "/api/generate", "status": 200},
            st,
            float(i),
            control=False,
        )
    await asyncio.to_thread(publisher.stop)
    recs = await asyncio.to_thread(store.tail, DEVICE, "requests", 1000)
    assert len(recs) == 300
    assert all(
        r["request"]["model"] == "d" and r["request"]["completion_tokens"] == 1 for r in recs
    )


async def test_idle_keep_alive_connection_is_closed_busy_one_is_not(upstream, store):
    running = await start_proxy(upstream.url, store, settings=ProxySettings(idle_timeout_s=0.4))
    try:
        host, port = running.url.removeprefix("http://").split(":")
        request = b"GET /api/version HTTP/1.1\r\nHost: x\r\n\r\n"
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for _ in range(4):  # busy: a request every 0.2 s, 0.8 s in all, twice the timeout
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                await asyncio.sleep(0.2)
            loop = asyncio.get_running_loop()
            idle_from = loop.time()
            assert await asyncio.wait_for(reader.read(1), 5) == b""  # then idle: closed
            assert 0.1 <= loop.time() - idle_from <= 2.0
        finally:
            writer.close()
    finally:
        await running.stop()


async def test_a_kept_alive_request_runs_without_a_task_and_a_client_gone_mid_stream_is_cleaned_up(
    upstream, store
):
    running = await start_proxy(upstream.url, store)
    try:
        async with client() as s:
            async with s.post(running.url + "/api/generate", json={"model": "m", "prompt": "x"}):
                pass  # an upstream connection now waits, kept alive
            resp = await s.post(
                running.url + "/api/generate", json={"model": "gate", "prompt": "x"}
            )
            await asyncio.wait_for(resp.content.readline(), 10)  # the first chunk came through
            (conn,) = running.proxy.clients
            assert isinstance(conn.exchange, Exchange) and conn.exchange.task is None and running.proxy.in_flight == 1
            proxy_tasks = [
                t for t in asyncio.all_tasks() if t.get_coro().__qualname__.startswith("Proxy.")
            ]
            assert proxy_tasks == []  # no task for it
            resp.close()  # gone mid-stream
        await wait_until(
            lambda: running.proxy.in_flight == 0 and running.proxy.admission.running() == 0,
            what="the request cleaned up",
        )
        recs = await records_in_store(store, "requests", 2)
        gone = [r["request"] for r in recs if r["request"]["model"] == "gate"]
        assert len(gone) == 1 and gone[0]["client_disconnected"] and gone[0]["status"] == 200
        assert running.proxy.disconnects == 1
        upstream.release.set()
    finally:
        await running.stop()


async def test_pipelined_requests_follow_each_other_from_the_callback(upstream, store):
    running = await start_proxy(upstream.url, store)
    try:
        async with client() as s, s.get(running.url + "/api/version") as resp:
            await resp.read()  # warm: one kept-alive upstream connection
        body = json.dumps({"model": "p", "prompt": "x"}).encode()
        one = (
            b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        host, port = running.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(one * 3)
            got = b""
            while got.count(b"\r\n0\r\n\r\n") < 3:
                got += await asyncio.wait_for(reader.read(65536), 10)
            assert got.count(b"HTTP/1.1 200 OK\r\n") == 3
            assert got.count(b'"done": true') == 3
        finally:
            writer.close()
        recs = await records_in_store(store, "requests", 3)
        assert [r["request"]["status"] for r in recs] == [200, 200, 200]
        assert running.proxy.in_flight == 0
    finally:
        await running.stop()
