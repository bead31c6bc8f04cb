"""What the agent leaves out of memory (collectors/slim.py): ssl when no configured URL uses TLS,
importlib.metadata and redis.asyncio until used; and that it keeps them when they are needed.

Each case starts a real `python -m collectors agent` process (no mocks: the import system decides)
and reads what it loaded: the module table at exit for `--once`, /proc/PID/maps for a running agent
publishing to the test Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from collectors import slim
from collectors.runtimes.http import HttpTransport, TransportError
from collectors.store import TelemetryStore, connect
from tests.isolation import RUN_PREFIX

ROOT = Path(__file__).resolve().parent.parent

# runs the agent as `python -m collectors agent ...` does, and prints what was loaded at exit
PROBE = """
import atexit, json, runpy, sys
def report():
    ssl = sys.modules.get("ssl", "absent")
    meta = sys.modules.get("importlib.metadata")
    print(json.dumps({"ssl": "left out" if ssl is None else ("absent" if ssl == "absent" else "loaded"),
                      "_ssl": "_ssl" in sys.modules,
                      "metadata_ran": "importlib.metadata._meta" in sys.modules,
                      "metadata_lazy": type(meta).__name__ == "_LazyModule",
                      "redis_asyncio_ran": "redis.asyncio.connection" in sys.modules,
                      "http_client": "http.client" in sys.modules}), file=sys.stderr)
atexit.register(report)
sys.argv = ["collectors", "agent"] + sys.argv[1:]
runpy.run_module("collectors", run_name="__main__", alter_sys=True)
"""


def probe(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    base = {k: v for k, v in os.environ.items()
            if k not in ("THOXDASH_AGENT_RUNTIMES", "THOXDASH_AGENT_CONFIG", "THOXDASH_AGENT_SLIM")}
    out = subprocess.run([sys.executable, "-c", PROBE, "--device", "slim", "--once", "--root", str(tmp_path),
                          *args], capture_output=True, text=True, timeout=60, cwd=ROOT,
                         env={**base, **(env or {})})
    assert out.returncode == 0, out.stderr
    assert [json.loads(line) for line in out.stdout.splitlines()], "the agent printed no sample"
    return json.loads(out.stderr.strip().splitlines()[-1])


def test_plain_urls_leave_out_ssl_metadata_and_the_asyncio_client(tmp_path):
    loaded = probe(tmp_path, "--redis", "redis://127.0.0.1:6379/15")
    assert loaded == {"ssl": "left out", "_ssl": False, "metadata_ran": False, "metadata_lazy": True,
                      "redis_asyncio_ran": False, "http_client": False}


def test_a_rediss_url_keeps_tls(tmp_path):
    loaded = probe(tmp_path, "--redis", "rediss://db.example:6380/0")
    assert loaded["ssl"] == "loaded" and loaded["_ssl"] is True
    loaded = probe(tmp_path, env={"REDIS_URL": "REDISS://db.example:6380/0"})
    assert loaded["_ssl"] is True


def test_an_https_runtime_in_either_config_keeps_tls(tmp_path):
    runtimes = tmp_path / "runtimes.json"
    runtimes.write_text(json.dumps({"runtimes": [{"name": "remote", "kind": "ollama",
                                                  "url": "https://gpu-box.lan:11434"}]}))
    assert probe(tmp_path, env={"THOXDASH_AGENT_RUNTIMES": str(runtimes)})["_ssl"] is True
    allow = tmp_path / "etc/thoxdash/agent.json"
    allow.parent.mkdir(parents=True)
    allow.write_text(json.dumps({"runtimes": [{"name": "vllm", "kind": "vllm", "url": "https://127.0.0.1:8000"}]}))
    assert probe(tmp_path)["_ssl"] is True


def test_slim_can_be_turned_off(tmp_path):
    loaded = probe(tmp_path, env={"THOXDASH_AGENT_SLIM": "0"})
    assert loaded["_ssl"] is True and loaded["metadata_ran"] is True and loaded["redis_asyncio_ran"] is True


def test_config_texts_follow_the_agents_own_lookup(tmp_path):
    (tmp_path / "etc/thoxdash").mkdir(parents=True)
    (tmp_path / "etc/thoxdash/agent.json").write_text('{"runtimes": []}')
    texts = slim.agent_config_texts(["--root", str(tmp_path), "--redis", "redis://h/1", "--device", "x"],
                                    {"THOXDASH_AGENT_RUNTIMES": str(tmp_path / "missing.json")})
    assert texts == ["redis://h/1", '{"runtimes": []}']  # a missing file is skipped, not an error
    assert slim.agent_config_texts([], {"REDIS_URL": "redis://env/2"})[0] == "redis://env/2"
    assert not slim.mentions_tls(texts)
    assert slim.mentions_tls(['{"url": "HTTPS://x"}']) and slim.mentions_tls(["rediss://x"])


def test_a_redis_py_that_needs_ssl_at_import_gets_everything(tmp_path):
    """If a redis-py release read ssl at import, the agent undoes what it left out (one warning)."""
    fake = tmp_path / "site" / "redis"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("import ssl\nVERSION = ssl.OPENSSL_VERSION\n")
    code = ("import sys; from collectors import slim; done = slim.leave_out(tls=False); import redis; "
            "from importlib import metadata; "
            "print(done, sys.modules.get('ssl') is not None, redis.VERSION.startswith('OpenSSL'), "
            "bool(metadata.version('pytest')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": f"{tmp_path / 'site'}:{ROOT}"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "True", "True", "True"]
    assert "redis-py does not import without ssl" in out.stderr


def test_https_without_tls_is_a_clear_transport_error():
    code = ("import sys; sys.modules['ssl'] = None\n"
            "from collectors.runtimes.http import HttpTransport, TransportError\n"
            "try:\n    HttpTransport().request('GET', 'https://127.0.0.1:9/api/ps', {}, None, 1)\n"
            "except TransportError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("https://127.0.0.1:9: this agent runs without TLS, because no URL in its "
                                  "configuration at start used it (collectors/slim.py); restart the agent to load it")
    with pytest.raises(TransportError, match="Connection refused"):  # with ssl (this process): tried
        HttpTransport().request("GET", "https://127.0.0.1:9/api/ps", {}, None, 1)


def test_connect_gives_redis_py_its_version(redis_url):
    client = connect(redis_url)
    kwargs = client.connection_pool.connection_kwargs
    info = kwargs.get("driver_info")
    assert (info.lib_version if info is not None else kwargs.get("lib_version")) == redis.__version__
    assert client.ping() is True


def test_a_running_agent_publishes_without_libssl_mapped(redis_url, tmp_path):
    prefix = f"{RUN_PREFIX}slim{os.getpid()}:"
    env = {k: v for k, v in os.environ.items()
           if k not in ("THOXDASH_AGENT_RUNTIMES", "THOXDASH_AGENT_CONFIG", "THOXDASH_AGENT_SLIM")}
    env.update(THOXDASH_REDIS_PREFIX=prefix, THOXDASH_AGENT_INTERVALS="runtimes=1,irq=1")
    proc = subprocess.Popen([sys.executable, "-m", "collectors", "agent", "--device", "slim", "--redis", redis_url,
                             "--spill", str(tmp_path / "spill")], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    store = TelemetryStore(connect(redis_url), prefix=prefix)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not store.latest("slim").get("values"):
            time.sleep(0.2)
        assert store.latest("slim").get("values"), "the agent published nothing"
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "libssl" not in maps and "_ssl." not in maps
        assert proc.poll() is None
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
        store.delete_prefix()
    assert "Traceback" not in err

