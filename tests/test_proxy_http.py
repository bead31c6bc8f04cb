"""HTTP/1.1 edge cases of the latency proxy, with raw-socket upstreams and clients so every byte
on the wire is under the test's control."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from tests.proxy_helpers import client, records_in_store, start_proxy

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    return head, body


class RawUpstream:
    def __init__(self, handler: Handler):
        self.handler = handler
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.connections = 0
        self.server: asyncio.base_events.Server | None = None
        self.url = ""

    async def __aenter__(self) -> RawUpstream:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(self, reader, writer)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0)
        host, port = self.server.sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def request(self, reader: asyncio.StreamReader) -> bytes:
        head, body = await read_request(reader)
        self.heads.append(head)
        self.bodies.append(body)
        return body


async def raw_exchange(
    url: str, data: bytes, until_close: bool = True, timeout: float = 10
) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(data)
    try:
        if until_close:
            return await asyncio.wait_for(reader.read(-1), timeout)
        return await asyncio.wait_for(reader.read(65536), timeout)
    finally:
        writer.close()


CHUNKED_BODY = (
    b"7;ext=1\r\n" + b'{"a":1}' + b"\r\n" + b"1\r\n\n\r\n"
    b"1A\r\n" + b'{"model":"m","done":true}\n' + b"\r\n0\r\n\r\n"
)


@pytest.fixture
async def proxy_for(store):
    running = []

    async def start(url: str):
        r = await start_proxy(url, store)
        running.append(r)
        return r

    yield start
    for r in running:
        await r.stop()


async def test_chunked_framing_is_forwarded_byte_for_byte(proxy_for, store):
    async def handler(up, reader, writer):
        while True:
            await up.request(reader)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n"
                b"X-Upstream: yes\r\nKeep-Alive: timeout=5\r\n\r\n" + CHUNKED_BODY
            )
            await writer.drain()

    async with RawUpstream(handler) as up:
        proxy = await proxy_for(up.url)
        body = json.dumps({"model": "m", "prompt": "x"}).encode()
        raw = await raw_exchange(
            proxy.url,
            b"POST /api/generate HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body),
        )
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert rest == CHUNKED_BODY
    assert b"X-Upstream: yes" in head and b"Transfer-Encoding: chunked" in head
    assert b"Keep-Alive" not in head and b"Connection: close" in head
    (rec,) = await records_in_store(store, "requests")
    # the payload, de-chunked, was parsed: two objects, the last one final
    assert "parse_errors" not in rec["request"] and rec["request"]["response_bytes"] == 34
    assert up.heads[0].startswith(b"POST /api/generate HTTP/1.1\r\nHost: " + up.url[7:].encode())
    assert b"Connection: close" not in up.heads[0]  # hop-by-hop: the proxy keeps its upstream link


async def test_compressed_bodies_are_not_decompressed(proxy_for, store):
    payload = gzip.compress(b'{"model":"m","message":{"content":"hi"},"done":true}\n')

    async def handler(up, reader, writer):
        while True:
            await up.request(reader)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nContent-Encoding: gzip\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
            )
            await writer.drain()

    async with RawUpstream(handler) as up:
        proxy = await proxy_for(up.url)
        async with (
            client() as s,
            s.post(
                proxy.url + "/api/chat",
                json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
                headers={"Accept-Encoding": "gzip"},
            ) as resp,
        ):
            assert resp.headers["Content-Encoding"] == "gzip"
            assert await resp.read() == payload
    assert b"Accept-Encoding: gzip" in up.heads[0]
    (rec,) = await records_in_store(store, "requests")
    assert rec["request"]["status"] == 200 and "parse_errors" not in rec["request"]


async def test_upstream_dying_mid_body_truncates_the_client_too(proxy_for, store):
    async def handler(up, reader, writer):
        await up.request(reader)
        writer.write(
            b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"partial":'
        )
        await writer.drain()

    async with RawUpstream(handler) as up:
        proxy = await proxy_for(up.url)
        async with (
            client() as s,
            s.post(proxy.url + "/v1/chat/completions", json={"model": "m", "messages": []}) as resp,
        ):
            assert resp.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()
    (rec,) = await records_in_store(store, "requests")
    assert rec["request"]["error"].startswith("upstream broke off the response")


async def test_broken_chunked_framing_ends_the_exchange(proxy_for, store):
    async def handler(up, reader, writer):
        await up.request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\ndata:\r\nZZ\r\n"
        )
        await writer.drain()
        await asyncio.sleep(30)

    async with RawUpstream(handler) as up:
        proxy = await proxy_for(up.url)
        async with (
            client() as s,
            s.post(proxy.url + "/v1/chat/completions", json={"model": "m", "messages": []}) as resp,
        ):
            with pytest.raises(aiohttp.ClientPayloadError):
                await asyncio.wait_for(resp.read(), 10)
    (rec,) = await records_in_store(store, "requests")
    assert "bad chunk size" in rec["request"]["error"]


async def test_expect_continue_chunked_request_head_and_pipelining(proxy_for, store):
    async def handler(up, reader, writer):
        while True:
            head, body = await read_request(reader)
            up.heads.append(head)
            up.bodies.append(body)
            if head.startswith(b"HEAD"):
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 42\r\n\r\n"
                )
            else:
                out = b'{"echo":%d}' % len(body)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(out), out)
                )
            await writer.drain()

    async with RawUpstream(handler) as up:
        proxy = await proxy_for(up.url)
        host, port = proxy.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(
                b"POST /v1/embeddings HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            assert (
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                == b"HTTP/1.1 100 Continue\r\n\r\n"
            )
            writer.write(b'4\r\n{"a"\r\n3\r\n:1}\r\n0\r\n\r\n')
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert (
                head.startswith(b"HTTP/1.1 200") and await reader.readexactly(10) == b'{"echo":7}'
            )
            # HEAD (a length but no body) then a GET, pipelined on the same connection
            writer.write(
                b"HEAD /api/tags HTTP/1.1\r\nHost: a\r\n\r\nGET /api/ps HTTP/1.1\r\nHost: a\r\n\r\n"
            )
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert b"Content-Length: 42" in head
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert (
                head.startswith(b"HTTP/1.1 200") and await reader.readexactly(10) == b'{"echo":0}'
            )
        finally:
            writer.close()
    assert up.bodies[0] == b'{"a":1}' and b"Content-Length: 7" in up.heads[0]
    assert b"Expect" not in up.heads[0] and b"Transfer-Encoding" not in up.heads[0]
    assert [h.split(b" ")[0] for h in up.heads] == [b"POST", b"HEAD", b"GET"]
    assert up.connections == 1  # one kept-alive upstream connection served all three


async def test_a_kept_alive_connection_the_upstream_closed_is_retried(proxy_for, store):
    async def handler(up, reader, writer):
        await up.request(reader)  # one exchange per connection, then close without saying so
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        )
        await writer.drain()

    async with RawUpstream(handler) as up:
        proxy = await proxy_for(up.url)
        async with client() as s:
            for _ in range(3):
                async with s.post(
                    proxy.url + "/api/embed", json={"model": "m", "input": "x"}
                ) as resp:
                    assert resp.status == 200 and await resp.read() == b"{}"
                await asyncio.sleep(0.05)  # let the upstream's close reach the proxy (or not)
    assert up.connections == 3
    recs = await records_in_store(store, "requests", n=3)
    assert [r["request"]["status"] for r in recs] == [200, 200, 200]


async def test_http10_client_gets_a_plain_body_and_a_close(proxy_for, store):
    async def handler(up, reader, writer):
        while True:
            await up.request(reader)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
                + CHUNKED_BODY
            )
            await writer.drain()

    async with RawUpstream(handler) as up:
        proxy = await proxy_for(up.url)
        raw = await raw_exchange(proxy.url, b"GET /api/tags HTTP/1.0\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding" not in head and b"Connection: close" in head
    assert body == b'{"a":1}\n{"model":"m","done":true}\n'


@pytest.mark.parametrize(
    "request_bytes,status",
    [
        (b"NONSENSE\r\n\r\n", b"400"),
        (
            b"POST /api/generate HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            b"400",
        ),
        (b"GET / HTTP/2.0\r\n\r\n", b"505"),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", b"431"),
    ],
)
async def test_malformed_requests_get_an_error_not_a_crash(proxy_for, request_bytes, status):
    async def handler(up, reader, writer):
        while True:
            await up.request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()

    async with RawUpstream(handler) as up:
        proxy = await proxy_for(up.url)
        raw = await raw_exchange(proxy.url, request_bytes)
        assert raw.split(b" ")[1] == status and b"Connection: close" in raw
        assert up.heads == []  # nothing reached the runtime
        # and the proxy still serves
        raw = await raw_exchange(
            proxy.url, b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        assert raw.startswith(b"HTTP/1.1 200 OK") and raw.endswith(b"{}")


async def test_a_request_the_kept_alive_upstream_dropped_unanswered_is_sent_again(proxy_for, store):
    async def handler(up, reader, writer):
        await up.request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        )
        await writer.drain()
        await up.request(reader)  # the next one is read, then dropped without an answer

    async with RawUpstream(handler) as up:
        proxy = await proxy_for(up.url)
        async with client() as s:
            for _ in range(3):
                async with s.post(
                    proxy.url + "/api/embed", json={"model": "m", "input": "x"}
                ) as resp:
                    assert resp.status == 200 and await resp.read() == b"{}"
    assert up.connections == 3
    recs = await records_in_store(store, "requests", n=3)
    assert [r["request"]["status"] for r in recs] == [200, 200, 200]
    assert all(r["request"]["queue_s"] >= 0 for r in recs)
    assert proxy.proxy.in_flight == 0 and proxy.proxy.admission.running() == 0
