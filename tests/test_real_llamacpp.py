"""The agent against a real llama.cpp llama-server (issue 12: findings 1, 2, 6, 7, 8, 9).

The server is built by scripts/ensure_llama_server.py (make test runs it) from the llama.cpp
sources of the pinned llama-cpp-python sdist; the model is tests/tiny_gguf.py's, made here. Greedy
decoding of that model always runs to max_tokens, so token counts are exact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from collectors.proxy.series import DECODE_TPS
from collectors.runtimes import client_for
from collectors.runtimes.base import SHARED
from collectors.sources.latency_scrape import LatencyScrapeSource
from collectors.sources.runtimes import RuntimeSource
from collectors.store import TelemetryStore, connect
from tests.isolation import RUN_PREFIX
from tests.real_llamacpp import ALIAS, LlamaServer, model_path

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return model_path(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def llama(model, tmp_path_factory):
    with LlamaServer(model, log_dir=tmp_path_factory.mktemp("log")) as srv:
        yield srv


def runtimes_config(tmp_path: Path, entries: list[dict]) -> str:
    path = tmp_path / "runtimes.json"
    path.write_text(json.dumps({"runtimes": entries, "defaults": False}))
    return str(path)


def values_of(records: list[dict]) -> dict[str, float]:
    out: dict[str, float] = {}
    for rec in records:
        out.update(rec.get("values") or {})
    return out


def state_of(records: list[dict]) -> dict:
    for rec in records:
        if "state" in rec and "runtimes" in rec["state"]:
            return rec["state"]["runtimes"]
    return {}


# -- finding 1: one /metrics read per tick, shared ----------------------------------------------------
def test_runtimes_source_and_latency_scrape_share_one_metrics_read_per_tick(llama, tmp_path):
    """llama-server's tok/s gauges reset on every /metrics read: with two readers per tick the
    runtimes source published 0.0 in 7 of 8 busy ticks. Now both see the same reading."""
    cfg = runtimes_config(tmp_path, [{"name": "llm", "kind": "llamacpp", "url": llama.url}])
    runtimes = RuntimeSource(root=Path("/"), config_path=cfg)
    scrape = LatencyScrapeSource(url=llama.url, kind="llamacpp", runtime="llm")
    gauge = 'llamacpp:predicted_tokens_seconds'
    decode = f'{DECODE_TPS}{{model="{ALIAS}",runtime="llm"}}'
    try:
        for tick in range(5):
            if tick:
                assert llama.chat(max_tokens=24)[0] == 200  # busy: a request finishes every tick
            before = SHARED.reads
            now = 1000.0 + tick
            scraped = values_of(scrape.collect(now))  # the scrape reads first, as it did
            published = values_of(runtimes.collect(now))
            metrics_reads = SHARED.reads - before
            if tick == 0:
                continue  # baseline
            assert published[gauge] > 0, f"tick {tick}: runtimes source saw a reset gauge"
            assert scraped[decode] == pytest.approx(published[gauge])
            assert metrics_reads == 3, metrics_reads  # /metrics, /models, /props: once for both sources
    finally:
        runtimes.close()
        scrape.close()


# -- finding 2: decode speed over n-1 steps -----------------------------------------------------------
@pytest.mark.parametrize("n", [300, 2])
def test_latency_scrape_decode_speed_is_the_servers_own(llama, n):
    scrape = LatencyScrapeSource(url=llama.url, kind="llamacpp", runtime="llm")
    try:
        scrape.collect(1.0)
        status, body = llama.chat(max_tokens=n)
        assert status == 200 and body["timings"]["predicted_n"] == n
        v = values_of(scrape.collect(2.0))
        server = body["timings"]["predicted_per_second"]
        # the server prints 6 significant digits
        assert v[f'{DECODE_TPS}{{model="{ALIAS}",runtime="llm"}}'] == pytest.approx(server, rel=1e-4)
    finally:
        scrape.close()


def test_one_token_request_has_no_decode_speed(llama):
    scrape = LatencyScrapeSource(url=llama.url, kind="llamacpp", runtime="llm")
    try:
        scrape.collect(1.0)
        status, body = llama.chat(max_tokens=1)
        assert status == 200 and body["timings"]["predicted_n"] == 1
        v = values_of(scrape.collect(2.0))
        assert [k for k in v if k.startswith(DECODE_TPS)] == []  # not 1,000,000 tok/s
        assert v[f'request_prompt_tokens_per_second{{model="{ALIAS}",runtime="llm"}}'] > 0  # it did read
    finally:
        scrape.close()


# -- finding 7: a KV-cache figure from /slots --------------------------------------------------------
def test_kv_cache_tokens_from_slots(llama, tmp_path):
    cfg = runtimes_config(tmp_path, [{"name": "llm", "kind": "llamacpp", "url": llama.url}])
    src = RuntimeSource(root=Path("/"), config_path=cfg)
    try:
        status, body = llama.chat("Count the tokens of this prompt please.", max_tokens=40)
        assert status == 200
        v = values_of(src.collect(1.0))
        status, slots = llama.get("/slots")
        held = sum(s.get("n_prompt_tokens", 0) + s.get("next_token", [{}])[0].get("n_decoded", 0)
                   for s in slots)
        assert held >= body["usage"]["prompt_tokens"] + 40 - 1
        assert v["llamacpp_kv_cache_tokens"] == held
        assert v["llamacpp_kv_cache_capacity_tokens"] == sum(s["n_ctx"] for s in slots)
        assert 0 < v["llamacpp_kv_cache_usage_ratio"] < 1
    finally:
        src.close()


# -- finding 9: the scrape labels the model the server serves ----------------------------------------
def test_latency_scrape_labels_the_served_model(llama):
    scrape = LatencyScrapeSource(url=llama.url, kind="llamacpp", runtime="gpu-llm")
    try:
        scrape.collect(1.0)
        assert llama.chat(max_tokens=8)[0] == 200
        keys = [k for k in values_of(scrape.collect(2.0)) if k.startswith(DECODE_TPS)]
        assert keys == [f'{DECODE_TPS}{{model="{ALIAS}",runtime="gpu-llm"}}']
    finally:
        scrape.close()


# -- finding 8: two servers of one kind ----------------------------------------------------------------
def test_two_llama_servers_are_two_runtimes(llama, model, tmp_path):
    with LlamaServer(model, log_dir=tmp_path, slots=1) as other:
        cfg = runtimes_config(tmp_path, [
            {"name": "chat", "kind": "llamacpp", "url": llama.url, "match": {"names": ["llama-server"]}},
            {"name": "embed", "kind": "llamacpp", "url": other.url, "match": {"names": ["llama-server"]}}])
        src = RuntimeSource(root=Path("/"), config_path=cfg)
        try:
            state = state_of(src.collect(1.0))
        finally:
            src.close()
        assert llama.pid in state["chat"]["pids"] and other.pid not in state["chat"]["pids"]
        assert other.pid in state["embed"]["pids"] and llama.pid not in state["embed"]["pids"]
        assert state["chat"]["api"] == state["embed"]["api"] == "ok"


# -- finding 6: never wake a sleeping server; report it asleep ----------------------------------------
def test_agent_does_not_wake_a_sleeping_server(model, tmp_path):
    with LlamaServer(model, log_dir=tmp_path, extra=["--sleep-idle-seconds", "1"]) as srv:
        cfg = runtimes_config(tmp_path, [{"name": "llm", "kind": "llamacpp", "url": srv.url}])
        src = RuntimeSource(root=Path("/"), config_path=cfg)
        scrape = LatencyScrapeSource(url=srv.url, kind="llamacpp", runtime="llm")
        try:
            assert srv.chat(max_tokens=4)[0] == 200
            awake = state_of(src.collect(1.0))["llm"]
            assert awake["models"] == [ALIAS] and "sleeping" not in awake
            deadline = time.monotonic() + 30
            while srv.get("/props")[1].get("is_sleeping") is not True:
                assert time.monotonic() < deadline, "the server never went to sleep"
                time.sleep(0.2)
            events = []
            for tick in range(3):
                records = src.collect(2.0 + tick) + scrape.collect(2.0 + tick)
                events += [r["event"] for r in records if "event" in r]
                asleep = state_of(records)["llm"]
                assert srv.get("/props")[1]["is_sleeping"] is True, f"tick {tick} woke the server"
            assert asleep["models"] == [] and asleep["sleeping"] == [ALIAS]
            assert {"kind": "model_unloaded", "runtime": "llm", "model": ALIAS} in events
            assert "llamacpp_slots_total" not in values_of(records)
        finally:
            src.close()
            scrape.close()


def test_client_reports_model_states_without_waking(model, tmp_path):
    with (LlamaServer(model, log_dir=tmp_path, extra=["--sleep-idle-seconds", "1"]) as srv,
          client_for("llamacpp", srv.url) as client):
        assert client.model_states() == {ALIAS: "loaded"}
        deadline = time.monotonic() + 30
        while client.model_states() != {ALIAS: "sleeping"}:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert client.loaded_models() == [] and client.sleeping == [ALIAS]
        client.metrics()
        assert srv.get("/props")[1]["is_sleeping"] is True


def test_two_llama_servers_without_config_are_two_runtimes(llama, model, tmp_path):
    """The default runtime list: a llama-server on another port than the default 8080 is runtime
    `llamacpp:<port>`, its API read at that port."""
    with LlamaServer(model, log_dir=tmp_path, slots=1) as other:
        src = RuntimeSource(root=Path("/"), config_path=None, api_timeout=2.0)
        try:
            records = src.collect(1.0)
        finally:
            src.close()
    state, v = state_of(records), values_of(records)
    for srv in (llama, other):
        name = f"llamacpp:{srv.port}"
        assert state[name]["pids"] == [srv.pid] and state[name]["api"] == "ok", state.get(name)
        assert state[name]["models"] == [ALIAS] and v[f'runtime_api_up{{runtime="{name}"}}'] == 1.0


def test_speed_of_a_long_answer_while_it_streams(llama, tmp_path):
    """No request finishes in the tick, so the /metrics gauges have nothing to say; the busy slots'
    n_decoded growth between two reads still gives the speed of the answer being generated."""
    cfg = runtimes_config(tmp_path, [{"name": "llm", "kind": "llamacpp", "url": llama.url}])
    src = RuntimeSource(root=Path("/"), config_path=cfg)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (llama.chat(max_tokens=1900, stream=True), done.set()), daemon=True)

    def decoded() -> int:
        slots = llama.get("/slots")[1]
        return max((s["next_token"][0]["n_decoded"] for s in slots if s.get("is_processing")), default=-1)

    try:
        src.collect(1.0)  # baseline of the counters
        worker.start()
        deadline = time.monotonic() + 60
        while decoded() < 10:
            assert time.monotonic() < deadline and not done.is_set(), "the answer never started"
            time.sleep(0.01)
        src.collect(2.0)
        first = decoded()
        while decoded() < first + 100:
            assert time.monotonic() < deadline and not done.is_set(), "the answer ended too soon"
            time.sleep(0.01)
        v = values_of(src.collect(3.0))
        assert not done.is_set()
    finally:
        worker.join(120)
        src.close()
    assert v["llamacpp_slots_decode_tokens_per_second"] > 0
    assert "llamacpp:predicted_tokens_seconds" not in v  # no request finished in this tick


def test_a_slim_agent_watches_a_real_llama_server(redis_url, model, tmp_path):
    """The runtime path of an agent that left ssl out (collectors/slim.py; the rest of what it
    leaves out: tests/test_agent_slim.py): the admin API over http.client and /metrics through
    prometheus_client's parser loaded without its package (which would import ssl)."""
    root = Path(__file__).resolve().parent.parent
    prefix = f"{RUN_PREFIX}slimllama{os.getpid()}:"
    with LlamaServer(model, log_dir=tmp_path) as llama:
        config = tmp_path / "runtimes.json"
        config.write_text(json.dumps({"defaults": False, "runtimes": [
            {"name": "llm", "kind": "llamacpp", "url": llama.url, "scrape_latency": True}]}))
        env = {k: v for k, v in os.environ.items() if k not in ("THOXDASH_AGENT_CONFIG", "THOXDASH_AGENT_SLIM")}
        env.update(THOXDASH_REDIS_PREFIX=prefix, THOXDASH_AGENT_RUNTIMES=str(config),
                   THOXDASH_AGENT_INTERVALS="runtimes=1,latency_scrape=1")
        proc = subprocess.Popen([sys.executable, "-m", "collectors", "agent", "--device", "slim", "--redis",
                                 redis_url, "--spill", str(tmp_path / "spill")], cwd=root, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        store = TelemetryStore(connect(redis_url), prefix=prefix)
        decode = f'{DECODE_TPS}{{model="{ALIAS}",runtime="llm"}}'
        values: dict[str, float] = {}
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and decode not in values:
                assert llama.chat(max_tokens=24)[0] == 200
                time.sleep(0.5)
                values = store.latest("slim").get("values") or {}
            assert values.get('runtime_api_up{runtime="llm"}') == 1.0
            assert values.get(decode, 0) > 0, sorted(values)
            assert any(k.startswith("llamacpp:") for k in values), "no sample of the server's /metrics"
            maps = Path(f"/proc/{proc.pid}/maps").read_text()
            assert "libssl" not in maps and "_ssl." not in maps
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=20)
            store.delete_prefix()
        assert "Traceback" not in err
