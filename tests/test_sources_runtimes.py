"""The runtimes source: processes mapped to runtimes, memory summed, models tracked, events emitted."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.agent import Agent
from collectors.sources import procs
from collectors.sources.host import HostSource
from collectors.sources.runtimes import RuntimeConfigError, RuntimeSource, load_specs
from collectors.tegra import nvmap_memory_by_pid as nvmap_clients
from tests.procfs import add_process, write
from tests.runtime_servers import LoopbackServer, OllamaState, ollama_model, ollama_routes

ROOT = Path("/")


def events(records, kind=None):
    out = [r["event"] for r in records if "event" in r]
    return [e for e in out if kind is None or e["kind"] == kind]


def values(records):
    merged = {}
    for r in records:
        merged.update(r.get("values", {}))
    return merged


def config(tmp_path: Path, runtimes: list[dict], defaults: bool = False) -> str:
    path = tmp_path / "runtimes.json"
    path.write_text(json.dumps({"runtimes": runtimes, "defaults": defaults}))
    return str(path)


def spawn(tag: str, child: bool = False) -> subprocess.Popen:
    code = "import sys, time, subprocess\n"
    if child:
        code += "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
    code += ("b = bytearray(30 * 1024 * 1024)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
             "print('ready', flush=True)\nsys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", code, tag], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def stop(proc: subprocess.Popen) -> None:
    for pid in _descendants(proc.pid):
        subprocess.run(["kill", "-9", str(pid)], check=False)
    proc.kill()
    proc.wait(timeout=10)


def _descendants(pid: int) -> list[int]:
    out = []
    for other in procs.pids(ROOT):
        st = procs.stat(ROOT, other)
        if st and st.ppid == pid:
            out += [other, *_descendants(other)]
    return out


def test_real_process_with_ollama_api_memory_models_and_events(tmp_path):
    tag = f"thoxfake-ollama-{uuid.uuid4().hex[:8]}"
    state = OllamaState({"llama3.2:3b": ollama_model("llama3.2:3b", 3_400_000_000, 3_400_000_000)})
    with LoopbackServer(ollama_routes(state)) as srv:
        path = config(tmp_path, [{"name": "ollama", "kind": "ollama", "url": srv.url, "ceiling_bytes": 5.5e9,
                                  "match": {"cmdline": [tag]}}])
        source = RuntimeSource(root=ROOT, config_path=path, api_timeout=2.0)
        proc = spawn(tag, child=True)
        try:
            first = source.collect(time.time())
            v = values(first)
            assert v['runtime_up{runtime="ollama"}'] == 1.0
            assert v['runtime_processes{runtime="ollama"}'] == 2.0  # the child follows its parent
            assert v['runtime_rss_bytes{runtime="ollama"}'] >= 30 * 1024 * 1024
            assert v['runtime_memory_bytes{runtime="ollama"}'] >= v['runtime_rss_bytes{runtime="ollama"}']
            assert v['runtime_ceiling_bytes{runtime="ollama"}'] == 5.5e9
            assert v['runtime_model_bytes{model="llama3.2:3b",runtime="ollama"}'] == 3.4e9
            assert v['runtime_model_vram_bytes{model="llama3.2:3b",runtime="ollama"}'] == 3.4e9
            assert events(first) == []  # the first answer is the baseline
            state.models["phi4:14b"] = ollama_model("phi4:14b", 9_000_000_000, 4_000_000_000)
            second = source.collect(time.time())
            assert events(second) == [{"kind": "model_loaded", "runtime": "ollama", "model": "phi4:14b"}]
            source.clients["ollama"].evict("llama3.2:3b")
            third = source.collect(time.time())
            assert events(third) == [{"kind": "model_unloaded", "runtime": "ollama", "model": "llama3.2:3b"}]
            state_rec = next(r for r in third if "state" in r)["state"]["runtimes"]["ollama"]
            assert state_rec["models"] == ["phi4:14b"] and proc.pid in state_rec["pids"]
        finally:
            stop(proc)
        srv.routes[("GET", "/api/ps")] = lambda r: (503, "application/json", b'{"error":"shutting down"}')
        gone = source.collect(time.time())
        assert values(gone)['runtime_up{runtime="ollama"}'] == 0.0
        assert events(gone, "runtime_stopped") == [{"kind": "runtime_stopped", "runtime": "ollama"}]
        assert "shutting down" in next(r for r in gone if "state" in r)["state"]["runtimes"]["ollama"]["api"]
        source.close()


def test_default_specs_recognise_each_runtime_and_nvmap_gpu_memory(tmp_path):
    root = tmp_path
    add_process(root, 100, "ollama", ["/usr/local/bin/ollama", "serve"], rss_pages=1000)
    add_process(root, 101, "ollama", ["/usr/local/bin/ollama", "runner", "--model", "x"], ppid=100, rss_pages=500)
    add_process(root, 200, "llama-server", ["./llama-server", "-m", "m.gguf"])
    add_process(root, 300, "tritonserver", ["tritonserver", "--model-repository=/m"])
    add_process(root, 400, "python3", ["python3", "-m", "vllm.entrypoints.openai.api_server"])
    add_process(root, 401, "VLLM::EngineCor", ["VLLM::EngineCore"], ppid=400)
    add_process(root, 500, "trtllm-serve", ["/usr/bin/python3", "/usr/local/bin/trtllm-serve", "llama"])
    add_process(root, 600, "python3", ["python3", "run_custatevec_bench.py"])
    add_process(root, 700, "bash", ["bash"])
    add_process(root, 701, "evil) S 1 2 3\n\x1b[2J", ["evil"], ppid=700)
    write(root, "sys/kernel/debug/nvmap/iovmm/clients",
          "CLIENT                        PROCESS      PID        SIZE\n"
          "user                           ollama      101    2097152K\n"
          "user                     gnome shell      900      1024K\n"
          "user                           broken      abc        12K\n"
          "total                                              2098176K\n")
    assert nvmap_clients(root) == {101: 2097152 * 1024, 900: 1024 * 1024}
    source = RuntimeSource(root=root, config_path=None, api_timeout=0.2)
    source.specs = [s for s in source.specs]  # defaults
    for spec in source.specs:
        spec.url = None  # no API probing in this tree
    v = values(source.collect(time.time()))
    for rt in ("ollama", "llamacpp", "triton", "vllm", "tensorrt_llm", "cuquantum"):
        assert v[f'runtime_up{{runtime="{rt}"}}'] == 1.0, rt
    page = procs.PAGE_SIZE
    assert v['runtime_rss_bytes{runtime="ollama"}'] == 1500 * page
    assert v['runtime_gpu_memory_bytes{runtime="ollama"}'] == 2097152 * 1024
    assert v['runtime_memory_bytes{runtime="ollama"}'] == 1500 * page + 2097152 * 1024
    assert v['runtime_processes{runtime="vllm"}'] == 2.0
    assert v['runtime_ceiling_bytes{runtime="cuquantum"}'] == 2.5e9
    assert not any("bash" in k or "evil" in k for k in v)


def test_container_and_cgroup_matching(tmp_path):
    root = tmp_path
    cid = "3f" * 32
    add_process(root, 10, "python3", ["python3", "serve.py"], cgroup=f"0::/system.slice/docker-{cid}.scope")
    add_process(root, 11, "python3", ["python3", "other.py"], cgroup="0::/system.slice/quantum.service")
    path = config(tmp_path, [{"name": "llm", "match": {"container": ["^3f3f3f"]}},
                             {"name": "qjob", "ceiling_bytes": 1e9, "match": {"cgroup": ["quantum\\.service"]}}])
    v = values(RuntimeSource(root=root, config_path=path).collect(time.time()))
    assert v['runtime_processes{runtime="llm"}'] == 1.0 and v['runtime_processes{runtime="qjob"}'] == 1.0
    assert v['runtime_ceiling_bytes{runtime="qjob"}'] == 1e9


@pytest.mark.parametrize("content, message", [
    ("{not json", "not JSON"),
    ('{"runtimes": [{"kind": "ollama"}]}', "non-empty 'name'"),
    ('{"runtimes": [{"name": "x", "match": {"cmdline": ["(unclosed"]}}]}', "bad regular expression"),
    ('{"runtimes": [{"name": "x", "kind": "tgi"}]}', "unknown runtime kind 'tgi'"),
    ('{"runtimes": [{"name": "x", "ceiling_bytes": -1}]}', "positive number"),
    ('{"runtimes": [{"name": "x", "match": {"names": "ok", "cmdline": [1]}}]}', "list of strings"),
])
def test_bad_config_is_a_clear_source_status(tmp_path, content, message, store):
    path = tmp_path / "rt.json"
    path.write_text(content)
    with pytest.raises(RuntimeConfigError, match="runtimes config"):
        load_specs(path)
    source = RuntimeSource(root=ROOT, config_path=str(path))
    agent = Agent("cfg", [source, HostSource(interval=1.0)], store)
    agent.tick()
    agent.close()
    assert agent.status["runtimes"].ok is False and message in agent.status["runtimes"].message
    assert store.latest("cfg")["values"]["ram_total_bytes"] > 0
    assert RuntimeConfigError.__name__ in agent.status["runtimes"].message


def test_missing_config_file_names_the_path(tmp_path):
    with pytest.raises(RuntimeConfigError, match="cannot read"):
        load_specs(tmp_path / "absent.json")


def test_hung_runtime_api_does_not_stall_the_agent(tmp_path, store):
    srv = LoopbackServer({})
    srv.routes[("GET", "/api/ps")] = srv.hang()
    with srv:
        path = config(tmp_path, [{"name": "ollama", "kind": "ollama", "url": srv.url}])
        runtimes = RuntimeSource(root=ROOT, config_path=path, api_timeout=0.3, interval=0.2)
        agent = Agent("hung", [runtimes, HostSource(interval=0.2)], store, source_timeout=5.0)
        start = time.monotonic()
        for _ in range(5):
            agent.tick()
            time.sleep(0.2)
        elapsed = time.monotonic() - start
        agent.close()
    assert elapsed < 8
    latest = store.latest("hung")
    assert latest["values"]['runtime_up{runtime="ollama"}'] == 0.0
    assert latest["values"]['runtime_api_up{runtime="ollama"}'] == 0.0
    assert "no answer" in latest["state"]["runtimes"]["ollama"]["api"]
    assert latest["values"]['agent_source_up{source="host"}'] == 1.0


def test_hostile_model_names_round_trip_through_redis(tmp_path, store):
    from collectors.series import parse_series_key

    hostile = 'llama"},x{y="1\\\n\x1b[2J\u202e'
    state = OllamaState({hostile: ollama_model(hostile, 1000, 500)})
    with LoopbackServer(ollama_routes(state)) as srv:
        path = config(tmp_path, [{"name": "ollama", "kind": "ollama", "url": srv.url}])
        source = RuntimeSource(root=ROOT, config_path=path)
        agent = Agent("hostile", [source], store)
        agent.tick()
        agent.close()
    keys = [k for k in store.latest("hostile")["values"] if k.startswith("runtime_model_bytes")]
    assert len(keys) == 1
    name, labels = parse_series_key(keys[0])
    assert name == "runtime_model_bytes" and labels == {"model": hostile, "runtime": "ollama"}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_nvmap_clients(text):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        write(Path(tmp), "sys/kernel/debug/nvmap/iovmm/clients", text)
        out = nvmap_clients(Path(tmp))
    assert out is not None and all(pid >= 0 and size >= 0 for pid, size in out.items())


def test_servers_of_one_kind_on_other_ports_are_runtimes_of_their_own(tmp_path):
    root = tmp_path
    add_process(root, 200, "llama-server", ["./llama-server", "-m", "a.gguf"])  # default port 8080
    add_process(root, 300, "llama-server", ["./llama-server", "-m", "b.gguf", "--port", "9090"])
    add_process(root, 301, "llama-server", ["./llama-server", "--port=41234"], ppid=300)  # a router child
    add_process(root, 400, "llama-server", ["./llama-server", "--port=9191", "--models-dir", "/m"])
    source = RuntimeSource(root=root, config_path=None, api_timeout=0.2)
    found = source.matcher.scan()
    assert found["llamacpp"] == [200] and found["llamacpp:9090"] == [300, 301] and found["llamacpp:9191"] == [400]
    assert source.matcher.derived["llamacpp:9090"].url == "http://127.0.0.1:9090"
    assert source.matcher.derived["llamacpp:9090"].kind == "llamacpp"
    v = values(source.collect(time.time()))
    assert v['runtime_processes{runtime="llamacpp:9090"}'] == 2.0 and v['runtime_up{runtime="llamacpp"}'] == 1.0
    source.close()
