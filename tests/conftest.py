"""Shared fixtures: a real Redis under a per-run key prefix (never FLUSHALL), and a full stack
(daphne + Celery) in subprocesses for the end-to-end tests."""

from __future__ import annotations

import os
import uuid

# Isolate this run's keys before Django reads its settings.
RUN_PREFIX = os.environ.setdefault("THOXDASH_REDIS_PREFIX", f"thoxtest:{uuid.uuid4().hex[:8]}:")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")

import contextlib  # noqa: E402

import pytest  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402

from collectors.store import StoreUnavailable, TelemetryStore, connect, ping  # noqa: E402

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


@pytest.fixture(scope="session")
def stack(redis_url, tmp_path_factory):
    """daphne + Celery worker over a file SQLite DB and this run's Redis prefix."""
    from tests.stack import Stack

    s = Stack(tmp_path_factory.mktemp("stack"), redis_url, prefix=f"{RUN_PREFIX}stack:")
    s.start()
    yield s
    s.stop()
