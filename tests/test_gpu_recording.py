"""The recording of the agent and the proxy around a CUDA-built llama-server on an NVIDIA H200
(tests/fixtures/gpu/, made by scripts/record_llama_gpu.py; see its README): the GPU memory of the
server's process is attributed to the llama.cpp runtime, its requests are recorded, and the
latency scrape names the model it served (issue 12, finding 9)."""

from __future__ import annotations

import re
from pathlib import Path

from collectors.recording import load

FIXTURE = Path(__file__).parent / "fixtures" / "gpu" / "llama-h200.jsonl"
RT = 'runtime="llama-gpu"'


def test_gpu_memory_of_llama_server_is_attributed_to_the_runtime():
    rec = load(FIXTURE)
    assert rec.header["board"]["gpu"] == "NVIDIA H200"
    states = [r["state"]["runtimes"]["llama-gpu"] for r in rec.records if "runtimes" in r.get("state", {})]
    pid = states[0]["pids"][0]
    assert all(s["pids"] == [pid] and s["models"] == ["tiny-random"] for s in states)
    nvml = [v for r in rec.records if r["source"] == "nvml" and (v := r.get("values"))]
    by_pid = {k: x for v in nvml for k, x in v.items()
              if k.startswith("gpu_process_memory_bytes") and f'pid="{pid}"' in k}
    attributed = [r["values"][f"runtime_gpu_memory_bytes{{{RT}}}"] for r in rec.records
                  if r["source"] == "runtimes" and "values" in r]
    assert attributed and set(attributed) == set(by_pid.values()) == {746_586_112.0}
    # nvidia-smi's own figure for that pid, noted during the load: the same 712 MiB
    smi = re.search(rf"{pid}, [^,]*llama-server, (\d+) MiB", rec.header["notes"])
    assert smi and int(smi.group(1)) == round(746_586_112 / 2**20)


def test_requests_through_the_proxy_are_recorded():
    rec = load(FIXTURE)
    reqs = [r["request"] for r in rec.records if "request" in r]
    assert len(reqs) == 20 and {r["status"] for r in reqs} == {200}
    assert {r["model"] for r in reqs} == {"tiny-random"} and {r["runtime"] for r in reqs} == {"llama-gpu"}
    assert sorted(r["completion_tokens"] for r in reqs) == [1, 1, 2, 2] + [256] * 12 + [300] * 4
    assert all("completion_tokens_per_s" not in r for r in reqs if r["completion_tokens"] == 1)
    assert all(r["completion_tokens_per_s"] > 0 for r in reqs if r["completion_tokens"] > 1)
    phases = [r["event"]["phase"] for r in rec.records if r.get("event", {}).get("kind") == "workload_phase"]
    assert phases == ["idle", "streams", "non_streaming", "short", "idle_after", "end"]


def test_latency_scrape_names_the_served_model():
    rec = load(FIXTURE)
    keys = {k for r in rec.records if r["source"].startswith("latency_scrape") for k in r.get("values", {})
            if k.startswith("request_decode_tokens_per_second")}
    assert keys == {f'request_decode_tokens_per_second{{model="tiny-random",{RT}}}'}
