"""Test isolation, loaded as a pytest plugin (`-p tests.isolation` in pyproject's addopts) so that it
runs before pytest-django imports the settings: every run gets its own key prefix
(`thoxtest:<run>:`) on its own Redis database number (THOXDASH_TEST_REDIS_DB, default 15), never the
live `thox:` prefix of an installed ThoxDash on database 0.

The suite refuses to start when the effective settings still name the live prefix or database, and
at the end of the session checks (SCAN, never FLUSH) that no key under the live prefix appeared in
the test database.
"""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlparse, urlunparse

import pytest

LIVE_PREFIX = "thox:"
TEST_PREFIX_ROOT = "thoxtest:"
DEFAULT_URL = "redis://127.0.0.1:6379/0"


def _with_db(url: str, db: int) -> str:
    """The same Redis server as `url`, on database `db` (unix sockets take ?db=)."""
    parsed = urlparse(url)
    if parsed.scheme == "unix":
        query = "&".join(p for p in parsed.query.split("&") if p and not p.startswith("db="))
        return urlunparse(parsed._replace(query=f"{query}&db={db}" if query else f"db={db}"))
    return urlunparse(parsed._replace(path=f"/{db}"))


def _db_of(url: str) -> int:
    parsed = urlparse(url)
    if parsed.scheme == "unix":
        for part in parsed.query.split("&"):
            if part.startswith("db="):
                return int(part[3:])
        return 0
    path = parsed.path.strip("/")
    return int(path) if path.isdigit() else 0


# -- applied at import, before Django's settings are read --------------------------------------------
LIVE_URL = os.environ.get("REDIS_URL", DEFAULT_URL)
TEST_DB = int(os.environ.get("THOXDASH_TEST_REDIS_DB", "15"))
TEST_URL = _with_db(LIVE_URL, TEST_DB)
if not os.environ.get("THOXDASH_REDIS_PREFIX", "").startswith(TEST_PREFIX_ROOT):
    os.environ["THOXDASH_REDIS_PREFIX"] = f"{TEST_PREFIX_ROOT}{uuid.uuid4().hex[:8]}:"
RUN_PREFIX = os.environ["THOXDASH_REDIS_PREFIX"]
os.environ["REDIS_URL"] = TEST_URL
# The broker follows REDIS_URL (settings); one set in the shell would point at the live install's. Not
# set here either: subprocesses given their own REDIS_URL (a private redis-server) must use it.
os.environ.pop("CELERY_BROKER_URL", None)
os.environ.setdefault("THOXDASH_TEST_LIVE_REDIS_URL", LIVE_URL)


def refusal(prefix: str, url: str) -> str | None:
    """Why a run with this prefix and URL must not start, or None."""
    if prefix.startswith(LIVE_PREFIX) or LIVE_PREFIX.startswith(prefix):
        return f"tests refuse to run against the live Redis prefix {LIVE_PREFIX!r} (got {prefix!r})"
    if not prefix.startswith(TEST_PREFIX_ROOT):
        return f"tests run only under a {TEST_PREFIX_ROOT!r} prefix (got {prefix!r})"
    if TEST_DB == 0 or _db_of(url) == 0:
        return "tests refuse to run on Redis database 0 (the live install's); set THOXDASH_TEST_REDIS_DB"
    return None


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    why = refusal(os.environ["THOXDASH_REDIS_PREFIX"], os.environ["REDIS_URL"])
    try:
        from django.conf import settings

        if settings.configured:
            why = why or refusal(settings.REDIS_PREFIX, settings.REDIS_URL)
            if settings.CELERY_TASK_DEFAULT_QUEUE.startswith(LIVE_PREFIX):
                why = why or f"the Celery queue {settings.CELERY_TASK_DEFAULT_QUEUE!r} is the live one"
    except ImportError:  # pragma: no cover - Django is a dependency
        pass
    if why:
        pytest.exit(why, returncode=4)


def live_keys(url: str, prefix: str = LIVE_PREFIX) -> set[str]:
    """Key names under `prefix` at `url` (SCAN: never blocks, never FLUSH)."""
    import redis

    client = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=2)
    try:
        return set(client.scan_iter(match=f"{prefix}*", count=1000))
    finally:
        client.close()
