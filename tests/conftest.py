"""Shared fixtures: a real Redis under a per-run key prefix (never FLUSHALL), and a full stack
(daphne + Celery) in subprocesses for the end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import uuid

import pytest
from hypothesis import settings as hypothesis_settings

from collectors.store import StoreUnavailable, TelemetryStore, connect, ping

# The prefix and database were chosen by tests/isolation.py (a `-p` plugin: before Django's settings).
from tests.isolation import LIVE_PREFIX, RUN_PREFIX, live_keys

# Property tests explore new random inputs on developers' machines; CI (.ci/run sets CI=1) replays a
# fixed derandomized set so that a red CI run is always reproducible with the same command.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ["REDIS_URL"]
    try:
        ping(connect(url))
    except StoreUnavailable as exc:
        pytest.exit(f"tests need a real Redis: {exc} (run `make test`, which starts one)", returncode=3)
    return url


@pytest.fixture
def store(redis_url: str):
    """A TelemetryStore under a prefix unique to this test; its keys are deleted afterwards."""
    s = TelemetryStore(connect(redis_url), prefix=f"{RUN_PREFIX}{uuid.uuid4().hex[:6]}:")
    yield s
    s.delete_prefix()


@pytest.fixture(scope="session", autouse=True)
def _cleanup_run_prefix():
    yield
    with contextlib.suppress(StoreUnavailable):
        TelemetryStore(connect(os.environ["REDIS_URL"]), prefix=RUN_PREFIX).delete_prefix()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No key under the live prefix may appear in the test database (SCAN; nothing else runs there
    under `thox:`): a run that wrote one fails, naming the keys."""
    try:
        leaked = sorted(live_keys(os.environ["REDIS_URL"], LIVE_PREFIX))
    except Exception:  # Redis gone: the tests that needed it already failed
        return
    if leaked:
        session.config.stash[_LEAKED] = leaked
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_LEAKED = pytest.StashKey[list]()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    leaked = config.stash.get(_LEAKED, None)
    if leaked:
        terminalreporter.write_line(
            f"FAILED isolation: {len(leaked)} key(s) under the live prefix {LIVE_PREFIX!r} in the test "
            f"database: {', '.join(leaked[:10])}", red=True)


@pytest.fixture(scope="session")
def stack(redis_url, tmp_path_factory):
    """daphne + Celery worker over a file SQLite DB and this run's Redis prefix."""
    from tests.stack import Stack

    s = Stack(tmp_path_factory.mktemp("stack"), redis_url, prefix=f"{RUN_PREFIX}stack:")
    s.start()
    yield s
    s.stop()
