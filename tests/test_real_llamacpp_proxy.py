"""The latency proxy and the canary against a real llama.cpp llama-server (issue 12: findings 2, 3,
4; transparency on /v1/chat/completions, /v1/completions and /completion, streaming and not)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from advisors.canary import speed_check
from collectors.proxy.admission import Limits
from collectors.proxy.series import PROMPT_TPS, latency_values
from tests.proxy_helpers import DEVICE, client, records_in_store, start_proxy, wait_until
from tests.real_llamacpp import ALIAS, LlamaServer, model_path

pytestmark = pytest.mark.timeout(180)
LONG_PROMPT = " ".join(f"word{i}" for i in range(400))


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    model = model_path(tmp_path_factory.mktemp("model"))
    with LlamaServer(model, log_dir=tmp_path_factory.mktemp("log")) as srv:
        yield srv


@pytest.fixture
async def proxied(llama, store):
    running = await start_proxy(llama.url, store, runtime="llm")
    yield running
    await running.stop()


def chat(max_tokens: int, content: str = "Say hello.", **extra) -> dict:
    return {"model": ALIAS, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens,
            "temperature": 0, "seed": 1, **extra}


async def post(url: str, path: str, body: dict) -> tuple[int, bytes]:
    async with client() as s, s.post(url + path, json=body) as resp:
        return resp.status, await resp.read()


def sse_objects(raw: bytes) -> list[dict]:
    out = []
    for line in raw.decode().splitlines():
        if line.startswith("data: ") and line[6:].strip() != "[DONE]":
            out.append(json.loads(line[6:]))
    return out


async def one_record(store, endpoint: str, n: int = 1) -> list[dict]:
    recs = await records_in_store(store, "requests", n=n, pred=lambda r: r["request"].get("endpoint") == endpoint)
    return [r["request"] for r in recs]


# -- finding 2: decode speed over n-1 steps -----------------------------------------------------------
@pytest.mark.parametrize("n", [300, 2])
async def test_proxy_decode_speed_matches_the_servers_timings(proxied, store, n):
    status, raw = await post(proxied.url, "/v1/chat/completions", chat(n))
    assert status == 200
    timings = json.loads(raw)["timings"]
    (req,) = await one_record(store, "/v1/chat/completions")
    assert req["completion_tokens"] == n
    assert req["completion_tokens_per_s"] == pytest.approx(timings["predicted_per_second"], rel=1e-3)


async def test_proxy_one_token_has_no_decode_speed(proxied, store):
    status, raw = await post(proxied.url, "/v1/chat/completions", chat(1, stream=True))
    assert status == 200
    (req,) = await one_record(store, "/v1/chat/completions")
    assert req["completion_tokens"] == 1 and "completion_tokens_per_s" not in req


async def test_native_completion_stream_is_timed_from_its_timings(proxied, store):
    body = {"prompt": "Say hello.", "n_predict": 20, "temperature": 0, "seed": 1, "stream": True}
    status, raw = await post(proxied.url, "/completion", body)
    assert status == 200
    final = sse_objects(raw)[-1]
    assert final["stop"] is True
    (req,) = await one_record(store, "/completion")
    assert req["completion_tokens"] == 20 and req["stream"] is True and req["ttft_s"] > 0
    assert req["completion_tokens_per_s"] == pytest.approx(final["timings"]["predicted_per_second"], rel=1e-3)


@pytest.mark.parametrize("n", [32, 2])
def test_canary_speed_matches_the_servers_timings(llama, n):
    """The canary's decode speed is the server's own (n-1 steps over predicted_ms): the answer it
    parsed is captured on the way (a transport that forwards to the real server and keeps a copy)."""
    seen: list[bytes] = []
    real = httpx.Client(timeout=60)

    def tee(request: httpx.Request) -> httpx.Response:
        resp = real.request(request.method, request.url, content=request.read(),
                            headers={"content-type": "application/json"})
        seen.append(resp.content)
        return httpx.Response(resp.status_code, headers=resp.headers, stream=httpx.ByteStream(seen[-1]))

    with httpx.Client(transport=httpx.MockTransport(tee)) as http:
        records = speed_check(llama.url, "llamacpp", ALIAS, runtime="llm", max_tokens=n, client=http)
    real.close()
    req = records[0]["request"]
    timings = [o for o in sse_objects(seen[0]) if "timings" in o][-1]["timings"]
    assert "error" not in req and req["completion_tokens"] == n == timings["predicted_n"]
    assert req["completion_tokens_per_s"] == pytest.approx(timings["predicted_per_second"], rel=1e-3)
    assert records[1]["values"]['canary_decode_tokens_per_second{model="tiny-random",runtime="llm"}'] > 0


# -- finding 3: prompt speed on a prompt-cache hit ---------------------------------------------------------
async def test_prompt_speed_on_a_cache_hit_counts_only_uncached_tokens(proxied, store):
    body = chat(4, LONG_PROMPT, stream=True, stream_options={"include_usage": True})
    for _ in range(2):
        status, raw = await post(proxied.url, "/v1/chat/completions", body)
        assert status == 200
    timings = [o for o in sse_objects(raw) if "timings" in o][-1]["timings"]
    assert timings["cache_n"] > 100  # the second is a cache hit
    reqs = await one_record(store, "/v1/chat/completions", n=2)
    hit = reqs[-1]
    assert hit["prompt_tokens"] == timings["prompt_n"] + timings["cache_n"]
    assert hit["cached_tokens"] == timings["cache_n"]
    speed = latency_values("llm", [hit])[f'{PROMPT_TPS}{{model="{ALIAS}",runtime="llm"}}']
    assert speed == pytest.approx(timings["prompt_per_second"], rel=1e-3)


async def test_prompt_tokens_without_usage_include_the_cached_ones(proxied, store):
    body = chat(4, LONG_PROMPT + " again", stream=True)
    for _ in range(2):
        status, raw = await post(proxied.url, "/v1/chat/completions", body)
    timings = [o for o in sse_objects(raw) if "timings" in o][-1]["timings"]
    hit = (await one_record(store, "/v1/chat/completions", n=2))[-1]
    assert hit["prompt_tokens"] == timings["prompt_n"] + timings["cache_n"] > 400


# -- finding 4: queue time of non-streaming requests ---------------------------------------------------------
async def test_non_streaming_queue_time_is_not_the_generation(proxied, store):
    """2 slots, 3 requests of 300 tokens: the third waits for a slot; none has queue_s equal to
    its own generation time any more."""
    results = await asyncio.gather(*(post(proxied.url, "/v1/chat/completions", chat(300, f"q{i}"))
                                     for i in range(3)))
    assert [s for s, _ in results] == [200, 200, 200]
    reqs = await one_record(store, "/v1/chat/completions", n=3)
    queued = sorted(r["queue_s"] for r in reqs)
    work = sorted(r["completion_s"] for r in reqs)
    assert queued[0] < work[0] / 2  # served at once: waited far less than it generated
    assert queued[-1] > queued[0]   # the deferred one waited for a slot
    for r in reqs:
        assert r["queue_s"] + r["prompt_s"] + r["completion_s"] * 299 / 300 <= r["total_s"] + 1e-3


# -- transparency ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path,body", [
    ("/v1/completions", {"model": ALIAS, "prompt": "Say hello.", "max_tokens": 12, "temperature": 0}),
    ("/v1/chat/completions", chat(12)),
    ("/completion", {"prompt": "Say hello.", "n_predict": 12, "temperature": 0}),
])
async def test_answers_through_the_proxy_equal_direct_ones(llama, proxied, store, path, body):
    direct_status, direct = await post(llama.url, path, body)
    status, proxied_raw = await post(proxied.url, path, body)
    assert status == direct_status == 200
    a, b = json.loads(direct), json.loads(proxied_raw)
    for volatile in ("id", "created", "timings", "system_fingerprint", "id_slot", "tokens_cached"):
        a.pop(volatile, None)
        b.pop(volatile, None)
    for answer in (a, b):  # the slot's prompt cache differs between the two calls
        answer.get("usage", {}).pop("prompt_tokens_details", None)
    assert a == b
    (req,) = await one_record(store, path)
    assert req["completion_tokens"] == 12 and req["status"] == 200


async def test_error_before_the_stream_is_recorded(proxied, store):
    status, raw = await post(proxied.url, "/v1/chat/completions",
                             chat(4, " ".join(["word"] * 5000), stream=True))
    assert status == 400
    assert json.loads(raw)["error"]["type"] == "exceed_context_size_error"
    (req,) = await one_record(store, "/v1/chat/completions")
    assert req["status"] == 400 and "context" in req["error"]


# -- throttle: the proxy's admission in front of the real server ---------------------------------------
async def test_throttle_serves_one_and_refuses_the_rest_until_undone(proxied, store):
    limits = {"max_concurrency": 1, "max_queue": 0, "retry_after_s": 1}
    await asyncio.to_thread(store.set_admission, DEVICE, "llm", limits)
    await wait_until(lambda: proxied.proxy.admission.limits.get("llm") == Limits.parse(limits), what="limits")
    async with client() as s:
        async def one(i: int) -> tuple[int, str | None]:
            async with s.post(proxied.url + "/v1/chat/completions", json=chat(1000, f"t{i}")) as resp:
                await resp.read()
                return resp.status, resp.headers.get("Retry-After")
        results = await asyncio.gather(*(one(i) for i in range(3)))
    assert sorted(results) == [(200, None), (429, "1"), (429, "1")]
    await asyncio.to_thread(store.set_admission, DEVICE, "llm", None)  # undo
    await wait_until(lambda: proxied.proxy.admission.limits.get("llm") is None, what="limits removed")
    results = await asyncio.gather(*(post(proxied.url, "/v1/chat/completions", chat(8, f"u{i}")) for i in range(3)))
    assert [status for status, _ in results] == [200, 200, 200]
