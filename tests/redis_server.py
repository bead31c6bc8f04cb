"""A private redis-server on a free port, for tests that need their own (ACLs, a stand-in for a live
install): started here, stopped here, never the shared one."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import redis

from tests.faults import wait_for
from tests.stack import free_port


@contextlib.contextmanager
def private_redis(tmp: Path, *args: str, ping_user: tuple[str, str] | None = None) -> Iterator[int]:
    port = free_port()
    log = tmp / f"redis-{port}.log"
    proc = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port),
                             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp), *args],
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    user, password = ping_user or (None, None)
    client = redis.Redis(port=port, username=user, password=password, socket_connect_timeout=2)

    def up() -> bool:
        try:
            return client.ping()
        except redis.RedisError:
            return False

    try:
        wait_for(up, 15, f"the private redis-server ({log.read_text()[-500:] if log.exists() else ''})")
        yield port
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)
