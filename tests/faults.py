"""Helpers for the fault tests: a private redis-server that can be SIGKILLed and restarted on the
same port and data folder (AOF on), an HTTP receiver that can go away and come back, a websocket
client with the session cookie of a logged-in user."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests import fake_device
from tests.stack import free_port


def wait_for(cond: Callable[[], Any], timeout: float = 20.0, what: str = "condition", every: float = 0.2) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class RedisServer:
    """Our own redis-server (never the shared one): AOF persistence, killable, restartable."""

    def __init__(self, tmp: Path):
        self.dir = tmp / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        # appendfsync always: an acknowledged write survives the SIGKILL the tests use as an outage
        # (with everysec, Redis itself may drop the last seconds it acknowledged under load; the
        # agent cannot resend what Redis acknowledged, and the stream check would blame the agent)
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        log = (self.dir / "redis.log").open("a")
        self.proc = subprocess.Popen([server, "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "always",
                                      "--save", "", "--daemonize", "no"], stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._answers, 10, "redis-server to answer", 0.05)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), 0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


class Receiver:
    """A webhook receiver on a fixed port that can be taken down and brought back."""

    def __init__(self, port: int | None = None, delay_s: float = 0.0):
        self.port = port or free_port()
        self.delay_s = delay_s  # how long each answer waits after the body was recorded
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.arrivals: list[float] = []  # time.time() of each body, same order as `bodies`
        self._httpd: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    owner.bodies.append(json.loads(raw))
                except ValueError:
                    owner.bodies.append({"raw": raw.decode(errors="replace")})
                owner.headers.append(dict(self.headers))
                owner.arrivals.append(time.time())
                if owner.delay_s:
                    time.sleep(owner.delay_s)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the sender went away mid-request (a killed worker)
                    pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


def session_cookie(base: str, username: str, password: str) -> str:
    with httpx.Client() as client:
        client.get(base + "/accounts/login/")
        token = client.cookies.get("csrftoken")
        r = client.post(base + "/accounts/login/", data={"username": username, "password": password,
                                                         "csrfmiddlewaretoken": token},
                        headers={"Referer": base + "/accounts/login/"})
        assert r.status_code in (200, 302)
        sessionid = client.cookies.get("sessionid")
    assert sessionid, "login failed"
    return sessionid


def python_env(base: dict[str, str], **extra: str) -> dict[str, str]:
    env = {**base, **extra}
    env.setdefault("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def pids_of(proc: subprocess.Popen) -> list[int]:
    import psutil

    try:
        parent = psutil.Process(proc.pid)
        return [proc.pid] + [c.pid for c in parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def sigkill_tree(proc: subprocess.Popen) -> None:
    for pid in pids_of(proc):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    proc.wait(10)


ROOT_DIR = Path(__file__).resolve().parent.parent


def agent_root(tmp: Path) -> Path:
    """A fake device tree (actions act on it, never on this machine) with this machine's /proc
    counters copied in, so the host source samples every second."""
    root = fake_device.build(tmp / "root")
    for name in ("stat", "meminfo", "loadavg"):
        (root / "proc").mkdir(exist_ok=True)
        (root / "proc" / name).write_text(Path("/proc", name).read_text())
    return root


class MakeRun:
    """scripts/run.sh (what `make run` starts) on a free port over a given Redis, with its own
    database, run dir and key prefix; the agent reads a fake device tree (`agent_root`)."""

    DEVICE = "fault-host"
    KEY = "fault-run-agent-key"  # the server's master key (run.sh derives the agent's own from it)
    PASSWORD = "admin-pass-123"

    def __init__(self, tmp: Path, redis_url: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.root = agent_root(tmp)
        self.log = tmp / "make-run.log"
        self.prefix = "thoxfaultrun:"
        self.env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}", "REDIS_URL": redis_url,
                    "THOXDASH_REDIS_PREFIX": self.prefix, "THOXDASH_RUN_DIR": str(tmp / "run"),
                    "THOXDASH_PORT": str(self.port), "THOXDASH_ADMIN_PASSWORD": self.PASSWORD,
                    "THOXDASH_SECRET_KEY": "test-secret-key-for-the-fault-run-only-0123456789",
                    "THOXDASH_AGENT_KEY": self.KEY, "THOXDASH_METRICS_TOKEN": "fault-run-scrape-token",
                    "THOXDASH_LIVE_PART_BYTES": "2048",  # snapshots in several parts, as a big device's
                    "THOXDASH_DEVICE": self.DEVICE, "THOXDASH_AGENT_ROOT": str(self.root),
                    "DJANGO_SETTINGS_MODULE": "thoxdash.settings", "PYTHONPATH": str(ROOT_DIR)}
        self.env.pop("PYTEST_CURRENT_TEST", None)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["bash", "scripts/run.sh"], cwd=ROOT_DIR, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self.log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def exits(self) -> list[str]:
        return [line for line in self.text().splitlines() if "exited with code" in line]

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)  # the supervisor stops every process it started
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
