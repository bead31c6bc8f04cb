"""The command-line proxy under many idle connections: memory stays bounded (issue 14).

A real `python -m collectors proxy` process (its Redis unreachable: records go to its spill file,
this test touches no Redis); 2,000 client connections are opened and left idle, half of them with
a partial request head; the growth of the proxy's resident memory (VmRSS from /proc) must stay
under a generous bound, and a normal request on a further connection is still answered.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.proxy_threaded import RecordingUpstream, ThreadedProxy, read_response

IDLE_CONNECTIONS = 2000
RSS_GROWTH_BOUND = 60 << 20  # bytes; measured growth is a fraction of this (bench/README.md)
ROOT = Path(__file__).resolve().parent.parent


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen) -> None:
    for _ in range(300):
        assert proc.poll() is None, "the proxy exited"
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the proxy did not listen")


def request() -> bytes:
    return b"GET /api/tags HTTP/1.1\r\nHost: x\r\n\r\n"


def test_rss_stays_bounded_under_2000_idle_connections(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = IDLE_CONNECTIONS * 2 + 200  # this process's sockets and the proxy's (it inherits)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    with ThreadedProxy() as side:  # only for its recording upstream, in a background loop
        upstream: RecordingUpstream = side.upstream
        port = free_port()
        env = {
            **os.environ,
            "THOXDASH_PROXY_SPILL": str(tmp_path / "spill"),
            "THOXDASH_PROXY_MAX_PER_CLIENT": "0",
            "THOXDASH_PROXY_MAX_CONNECTIONS": str(IDLE_CONNECTIONS + 100),
            "THOXDASH_LOG_LEVEL": "WARNING",
        }
        cmd = [sys.executable, "-m", "collectors", "proxy", "--listen", f"127.0.0.1:{port}"]
        cmd += ["--upstream", f"http://127.0.0.1:{upstream.port}", "--runtime", "ollama"]
        cmd += ["--device", "rss-test", "--redis", f"redis://127.0.0.1:{free_port()}/0"]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
        socks: list[socket.socket] = []
        try:
            wait_listening(port, proc)
            with socket.create_connection(("127.0.0.1", port), 10) as sock:
                sock.sendall(request())
                assert read_response(sock)[0] == 200
            before = rss_bytes(proc.pid)
            for i in range(IDLE_CONNECTIONS):
                sock = socket.create_connection(("127.0.0.1", port), 10)
                if i % 2:
                    sock.sendall(b"POST /api/generate HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                socks.append(sock)
            with socket.create_connection(("127.0.0.1", port), 10) as sock:
                sock.settimeout(10)
                sock.sendall(request())  # answered after every earlier connection was accepted
                assert read_response(sock)[0] == 200
            # every idle connection is held by the proxy (one descriptor each), not just queued
            assert len(os.listdir(f"/proc/{proc.pid}/fd")) > IDLE_CONNECTIONS
            grown = rss_bytes(proc.pid) - before
            assert proc.poll() is None
            assert grown < RSS_GROWTH_BOUND, f"RSS grew {grown >> 20} MiB"
            print(f"RSS growth under {IDLE_CONNECTIONS} idle connections: {grown / 2**20:.1f} MiB")
        finally:
            for sock in socks:
                sock.close()
            proc.terminate()
            proc.wait(15)
