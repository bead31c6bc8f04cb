"""The canary speed check against loopback Ollama / OpenAI-compatible servers, and its Celery task."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from advisors.canary import canary_settings, is_due, speed_check
from tests.proxy_upstreams import Upstream


@pytest.fixture
def upstream():
    """The loopback runtimes, on an event loop in a thread (the canary is synchronous code)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    up = asyncio.run_coroutine_threadsafe(Upstream().start(), loop).result(10)
    yield up
    asyncio.run_coroutine_threadsafe(up.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_ollama_speed_check_records_decode_rate(upstream):
    req_rec, values = speed_check(upstream.url, "ollama", "llama3.2", runtime="ollama")
    req = req_rec["request"]
    assert req_rec["source"] == "canary" and req["canary"] is True
    assert req["status"] == 200 and "error" not in req
    assert req["completion_tokens"] == 3 and req["completion_s"] == pytest.approx(0.4)
    assert req["completion_tokens_per_s"] == pytest.approx(7.5)
    assert 0 <= req["ttft_s"] <= req["total_s"]
    key = 'canary_decode_tokens_per_second{model="llama3.2",runtime="ollama"}'
    assert values["values"][key] == pytest.approx(7.5)
    assert values["values"]['canary_up{model="llama3.2",runtime="ollama"}'] == 1.0
    # what was sent: a short, deterministic, streaming generation
    _, path, _, body = upstream.requests[-1]
    sent = json.loads(body)
    assert path == "/api/generate" and sent["stream"] is True
    assert sent["options"]["num_predict"] == 32 and sent["options"]["temperature"] == 0


def test_openai_speed_check_uses_usage_and_stream_times(upstream):
    req_rec, values = speed_check(upstream.url, "llamacpp", "qwen", runtime="llama-server")
    req = req_rec["request"]
    assert req["runtime"] == "llama-server" and req["endpoint"] == "/v1/chat/completions"
    assert req["completion_tokens"] == 3 and "tokens_estimated" not in req
    assert req["completion_s"] > 0 and req["completion_tokens_per_s"] > 0
    assert values["values"]['canary_up{model="qwen",runtime="llama-server"}'] == 1.0


@pytest.mark.parametrize("model,error", [("busy", "server busy"), ("error", "llama runner process")])
def test_failed_check_is_a_record_not_an_exception(upstream, model, error):
    req_rec, values = speed_check(upstream.url, "ollama", model)
    assert error in req_rec["request"]["error"]
    assert values["values"] == {f'canary_up{{model="{model}",runtime="ollama"}}': 0.0}


def test_unreachable_runtime_is_a_failed_check():
    req_rec, values = speed_check("http://127.0.0.1:9", "ollama", "m", timeout_s=5)
    assert "ConnectError" in req_rec["request"]["error"] and "status" not in req_rec["request"]
    assert list(values["values"].values()) == [0.0]


def test_off_by_default_and_enabled_per_runtime():
    assert canary_settings({"name": "ollama", "kind": "ollama"}) is None
    assert canary_settings({"name": "ollama", "kind": "ollama", "canary": {"enabled": False, "model": "m"}}) is None
    on = canary_settings({"name": "ollama", "kind": "ollama", "canary": {"enabled": True, "model": "m"}})
    assert on["url"] == "http://127.0.0.1:11434" and on["model"] == "m"
    by_env = canary_settings({"name": "vllm", "kind": "vllm", "url": "http://h:8000", "model": "x"}, ["vllm"])
    assert by_env["url"] == "http://h:8000" and by_env["kind"] == "vllm"
    assert is_due([], "ollama")
    assert not is_due([{"source": "canary", "request": {"runtime": "ollama"}}], "ollama")
    assert is_due([{"source": "request", "request": {"runtime": "ollama"}}], "ollama")


@pytest.mark.django_db
def test_beat_task_runs_due_checks_once_per_interval(upstream, store, settings):
    from advisors import tasks_canary
    from advisors.models import DeviceSettings
    from thoxdash.celery import app

    assert "canary speed checks" in app.conf.beat_schedule
    DeviceSettings.objects.create(device="canary-dev", runtimes=[
        {"name": "ollama", "kind": "ollama", "url": upstream.url,
         "canary": {"enabled": True, "model": "llama3.2", "interval_s": 600}},
        {"name": "llama-server", "kind": "llamacpp", "url": upstream.url},  # not enabled
    ])
    due = tasks_canary.due_checks(store)
    assert [(d, c["runtime"]) for d, c in due] == [("canary-dev", "ollama")]
    device, check = due[0]
    req = tasks_canary.run_check(store, device, check)
    assert req["completion_tokens_per_s"] == pytest.approx(7.5)
    stored = store.tail("canary-dev", "requests")
    assert stored[0]["request"]["canary"] is True
    latest = store.latest("canary-dev")["values"]
    assert latest['canary_decode_tokens_per_second{model="llama3.2",runtime="ollama"}'] == pytest.approx(7.5)
    # within its interval it is not due again; after it, it is
    assert tasks_canary.due_checks(store) == []
    assert len(tasks_canary.due_checks(store, now=time.time() + 601)) == 1
