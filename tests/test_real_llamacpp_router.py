"""A real llama-server in router mode (`--models-dir`): metrics, slots and latency per model with
`?model=`, evict and its errors, and no model loaded by the agent's reads (issue 12: finding 5)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from collectors.proxy.series import DECODE_TPS
from collectors.runtimes import RuntimeApiError, client_for
from collectors.sources.latency_scrape import LatencyScrapeSource
from collectors.sources.runtimes import RuntimeSource
from tests.real_llamacpp import LlamaServer, http, model_path

pytestmark = pytest.mark.timeout(180)
A, B = "tiny-a", "tiny-b"


@pytest.fixture(scope="module")
def router(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    shutil.copy(model_path(tmp_path_factory.mktemp("model")), models / f"{A}.gguf")
    shutil.copy(models / f"{A}.gguf", models / f"{B}.gguf")
    with LlamaServer(None, models_dir=models, extra=["--models-max", "2"], alias=None,
                     log_dir=tmp_path_factory.mktemp("log")) as srv:
        yield srv


def status_of(srv: LlamaServer, model: str) -> str:
    _, body = srv.get("/models")
    for entry in body["data"]:
        if entry["id"] == model:
            return entry["status"]["value"]
    raise AssertionError(f"{model} not listed")


def load(srv: LlamaServer, model: str) -> None:
    status, body = http("POST", srv.url + "/models/load", {"model": model})
    assert status == 200, body
    deadline = time.monotonic() + 60
    while status_of(srv, model) != "loaded":
        assert time.monotonic() < deadline, f"{model} never loaded"
        time.sleep(0.2)


def generate(srv: LlamaServer, model: str, n: int) -> dict:
    status, body = http("POST", srv.url + "/v1/chat/completions", {
        "model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": n, "temperature": 0})
    assert status == 200, body
    return body


def values_of(records: list[dict]) -> dict[str, float]:
    out: dict[str, float] = {}
    for rec in records:
        out.update(rec.get("values") or {})
    return out


def test_router_metrics_slots_and_latency_per_model(router, tmp_path):
    load(router, A)
    assert status_of(router, B) == "unloaded"
    cfg = tmp_path / "runtimes.json"
    cfg.write_text(json.dumps({"runtimes": [{"name": "router", "kind": "llamacpp", "url": router.url}],
                               "defaults": False}))
    src = RuntimeSource(root=Path("/"), config_path=str(cfg))
    scrape = LatencyScrapeSource(url=router.url, kind="llamacpp", runtime="router")
    try:
        scrape.collect(1.0)
        src.collect(1.0)
        body = generate(router, A, 24)
        v = values_of(src.collect(2.0))
        s = values_of(scrape.collect(2.0))
        state = [r for r in src.collect(3.0) if "state" in r][0]["state"]["runtimes"]["router"]
    finally:
        src.close()
        scrape.close()
    assert v[f'llamacpp:tokens_predicted_total{{model="{A}"}}'] >= 24
    assert v[f'llamacpp_slots_total{{model="{A}"}}'] >= 1
    assert s[f'{DECODE_TPS}{{model="{A}",runtime="router"}}'] == pytest.approx(
        body["timings"]["predicted_per_second"], rel=1e-4)
    assert state["models"] == [A]
    assert status_of(router, B) == "unloaded"  # reading did not load anything


def test_router_evict_and_a_second_evict(router):
    load(router, B)
    with client_for("llamacpp", router.url) as client:
        answer = client.evict(B)
        assert answer.get("success") is True
        deadline = time.monotonic() + 30
        while status_of(router, B) != "unloaded":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        with pytest.raises(RuntimeApiError) as err:
            client.evict(B)
    assert err.value.permanent
    assert "not running" in err.value.message and "single-model" not in err.value.message
