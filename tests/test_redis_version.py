"""The Redis version check: the rule itself, the real server here, and the agent refusing an old
server with one line (a loopback server speaking RESP that reports 6.0.16, what Ubuntu 22.04's apt
ships)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from collectors import redis_version
from collectors.store import connect

ROOT = Path(__file__).resolve().parent.parent


def test_rule_names_found_and_needed():
    assert redis_version.problem("7.0.0") is None
    assert redis_version.problem("7.4.2") is None
    line = redis_version.problem("6.2.14", "redis://db:6379")
    assert line == ("Redis 6.2.14 at redis://db:6379 is too old: ThoxDash needs Redis >= 7.0.0 "
                    "(stream IDs <ms>-*, XAUTOCLAIM and XTRIM MINID)")
    assert "6.0.16" in redis_version.problem("6.0.16")
    assert "no usable version" in redis_version.problem("seven")
    with pytest.raises(ValueError, match="not a Redis version: 'x.1'"):
        redis_version.parse_version("x.1")


def test_real_server_passes(redis_url):
    version = redis_version.server_version(connect(redis_url))
    assert redis_version.parse_version(version) >= redis_version.MIN_VERSION
    redis_version.check(connect(redis_url))
    assert redis_version.check_at_start(connect(redis_url)) is True


def test_unreachable_is_not_checked_yet():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert redis_version.check_at_start(connect(f"redis://127.0.0.1:{port}/0")) is False


class OldRedis:
    """Answers RESP2 like a Redis 6.0.16: HELLO and INFO give the version, PING PONG, AUTH/SELECT OK,
    anything else an error
    (what 6.0 says to commands it lacks, e.g. CLIENT SETINFO)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        with conn:
            reader = conn.makefile("rb")
            while True:
                line = reader.readline()
                if not line:
                    return
                if not line.startswith(b"*"):
                    continue
                args = []
                for _ in range(int(line[1:])):
                    size = int(reader.readline()[1:])
                    args.append(reader.read(size + 2)[:-2].decode().upper())
                if args[0] == "HELLO":  # Redis 6.0's answer, RESP2
                    items = [b"server", b"redis", b"version", b"6.0.16", b"proto", 2, b"id", 7, b"mode",
                             b"standalone", b"role", b"master", b"modules"]
                    out = b"*14\r\n" + b"".join(
                        b":%d\r\n" % i if isinstance(i, int) else b"$%d\r\n%s\r\n" % (len(i), i) for i in items)
                    conn.sendall(out + b"*0\r\n")
                elif args[0] == "INFO":
                    body = b"# Server\r\nredis_version:6.0.16\r\nredis_mode:standalone\r\n"
                    conn.sendall(b"$%d\r\n%s\r\n" % (len(body), body))
                elif args[0] == "PING":
                    conn.sendall(b"+PONG\r\n")
                elif args[0] in ("AUTH", "SELECT"):
                    conn.sendall(b"+OK\r\n")
                else:
                    conn.sendall(b"-ERR unknown command '%s'\r\n" % args[0].encode())

    def close(self) -> None:
        self.sock.close()


def test_agent_refuses_old_server_with_one_line(tmp_path):
    old = OldRedis()
    try:
        assert "6.0.16" in redis_version.problem(redis_version.server_version(
            connect(f"redis://127.0.0.1:{old.port}/0")))
        # a password goes in REDIS_URL (the environment), never on the command line
        env = {**os.environ, "REDIS_URL": f"redis://:hunter2@127.0.0.1:{old.port}/0"}
        result = subprocess.run(
            [sys.executable, "-m", "collectors", "agent", "--device", "old-redis", "--spill", str(tmp_path)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    finally:
        old.close()
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: Redis 6.0.16 at redis://127.0.0.1:{old.port}/0 is too old: ThoxDash needs "
                      "Redis >= 7.0.0 (stream IDs <ms>-*, XAUTOCLAIM and XTRIM MINID)"]
    assert "hunter2" not in result.stderr


def test_restricted_user_reads_version_through_hello(redis_url):
    """A device's ACL user (deploy/redis/thoxdash.acl.example: +@connection, no INFO) still gets
    checked: HELLO is a connection command."""
    import uuid

    admin = connect(redis_url)
    user = f"thoxtest-acl-{uuid.uuid4().hex[:8]}"
    admin.execute_command("ACL", "SETUSER", user, "on", ">pw-123", "resetkeys", "~thoxtest:*", "-@all",
                          "+@connection", "+ping")
    try:
        from urllib.parse import urlsplit

        parts = urlsplit(redis_url)
        client = connect(f"redis://{user}:pw-123@{parts.hostname}:{parts.port or 6379}/0")
        version = redis_version.server_version(client)
        assert version and redis_version.parse_version(version) >= redis_version.MIN_VERSION
        assert redis_version.check_at_start(client) is True
    finally:
        admin.execute_command("ACL", "DELUSER", user)
