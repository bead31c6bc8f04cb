"""Test runs never touch a live install: a private redis-server stands in for a machine running
ThoxDash (keys under `thox:` on database 0); the suite's own test files run against it in a
subprocess, even with the live prefix exported; every live key is byte-identical afterwards (DUMP),
none was added on any database, and runs aimed at the live prefix or database refuse to start."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import redis

from tests.isolation import TEST_DB, refusal
from tests.redis_server import private_redis as private_redis_server
from tests.stack import ROOT

# Test files that write through Django's settings (the ones that leaked 18 devices before) and
# through the `store` fixture.
PROBE_FILES = ["tests/test_fleet_batch.py", "tests/test_retention.py", "tests/test_store.py"]


@pytest.fixture
def private_redis(tmp_path):
    with private_redis_server(tmp_path) as port:
        yield port


def _seed_live(r: redis.Redis) -> None:
    r.hset("thox:devices", mapping={"orin-live": '{"board":{"model":"live"}}', "t-batch-0": '{"live":1}'})
    r.xadd("thox:dev:orin-live:telemetry", {"j": '{"ts":1,"source":"s","values":{"x":1}}'})
    r.hset("thox:dev:orin-live:latest", mapping={"x": "1.0", "__ts": "1.0"})


def _snapshot(port: int) -> dict[tuple[int, str], bytes]:
    out = {}
    for db in range(16):
        r = redis.Redis(port=port, db=db)
        for key in r.scan_iter(match="thox:*", count=1000):
            out[(db, key.decode())] = r.dump(key)
    return out


def _run_suite(port: int, *files: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items()
            if k not in ("THOXDASH_REDIS_PREFIX", "THOXDASH_TEST_REDIS_DB", "CELERY_BROKER_URL",
                         "THOXDASH_TEST_LIVE_REDIS_URL", "PYTEST_ADDOPTS")}
    full.update({"REDIS_URL": f"redis://127.0.0.1:{port}/0", **env})
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *files],
                          cwd=ROOT, env=full, capture_output=True, text=True, timeout=300)


def test_a_run_leaves_the_live_prefix_untouched(private_redis):
    live = redis.Redis(port=private_redis)
    _seed_live(live)
    before = _snapshot(private_redis)
    assert len(before) == 3
    # the live prefix exported in the shell (an install's env file sourced) changes nothing
    out = _run_suite(private_redis, *PROBE_FILES, THOXDASH_REDIS_PREFIX="thox:")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "passed" in out.stdout
    assert _snapshot(private_redis) == before
    # and the run's own keys went to the test database, under its own prefix, and were cleaned up
    assert redis.Redis(port=private_redis, db=0).dbsize() == 3
    assert not list(redis.Redis(port=private_redis, db=15).scan_iter(match="thoxtest:*"))


def test_the_suite_refuses_the_live_database(private_redis):
    out = _run_suite(private_redis, "tests/test_store.py", THOXDASH_TEST_REDIS_DB="0")
    assert out.returncode == 4, out.stdout[-2000:] + out.stderr[-2000:]
    assert "database 0" in out.stdout + out.stderr
    assert redis.Redis(port=private_redis).dbsize() == 0


def test_a_leaked_live_key_fails_the_run(private_redis, tmp_path):
    """The end-of-session SCAN catches a test that writes under `thox:` in the test database."""
    leaky = ROOT / "tests" / f"test_zz_leak_{os.getpid()}.py"
    leaky.write_text("import os, redis\n\ndef test_leak():\n"
                     "    redis.Redis.from_url(os.environ['REDIS_URL']).set('thox:leaked', 1)\n")
    try:
        out = _run_suite(private_redis, str(leaky.relative_to(ROOT)))
    finally:
        leaky.unlink()
    assert out.returncode == 1, out.stdout[-2000:]
    assert "thox:leaked" in out.stdout


def test_the_plugin_routes_this_run_to_the_test_database():
    assert os.environ["THOXDASH_REDIS_PREFIX"].startswith("thoxtest:")
    assert os.environ["REDIS_URL"].endswith(f"/{TEST_DB}")
    # the broker follows REDIS_URL; subprocesses with their own Redis must not inherit a broker URL
    assert "CELERY_BROKER_URL" not in os.environ


@pytest.mark.parametrize(("prefix", "url", "refused"), [
    ("thox:", "redis://h/15", True),
    ("thox:sub:", "redis://h/15", True),
    ("thoxtest:ab12:", "redis://h/15", False),
    ("thoxtest:ab12:", "redis://h/0", True),
    ("mine:", "redis://h/15", True),
])
def test_refusal_rules(prefix, url, refused):
    assert (refusal(prefix, url) is not None) is refused
