"""A real ThoxDash stack in subprocesses, as `make run` starts it, for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    def __init__(self, tmp: Path, redis_url: str, prefix: str, worker: bool = True):
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.prefix = prefix
        self.worker = worker
        self.env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
            "REDIS_URL": redis_url,
            "THOXDASH_REDIS_PREFIX": prefix,
            "THOXDASH_RUN_DIR": str(tmp / "run"),
            "THOXDASH_PORT": str(self.port),
            "THOXDASH_SECRET_KEY": "test-secret-key-for-the-e2e-stack-only-0123456789",
            "THOXDASH_ADMIN_PASSWORD": "admin-pass-123",
            "THOXDASH_AGENT_MASTER_KEY": "test-agent-master-key-0123456789",
            "THOXDASH_METRICS_TOKEN": "test-metrics-scrape-token",
            "DJANGO_SETTINGS_MODULE": "thoxdash.settings",
            "PYTHONPATH": str(ROOT),
        }
        self.procs: list[subprocess.Popen] = []
        self.logs = tmp / "logs"
        self.logs.mkdir(exist_ok=True)

    def agent_env(self, device: str, **extra: str) -> dict[str, str]:
        """The environment of a device's agent: its own derived action key, never the master."""
        from collectors.actions.signing import derive_key

        env = {k: v for k, v in self.env.items() if k != "THOXDASH_AGENT_MASTER_KEY"}
        return {**env, "THOXDASH_AGENT_KEY": derive_key(self.env["THOXDASH_AGENT_MASTER_KEY"], device), **extra}

    def manage(self, *args: str, input: str | None = None) -> str:
        out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, input=input,
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed: {out.stderr[-2000:]}")
        return out.stdout

    def spawn(self, name: str, *cmd: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("w")
        proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env if env is None else env, stdout=log,
                                stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("ensure_admin")
        self.manage("shell", "-c", "from django.contrib.auth.models import User; "
                    "User.objects.filter(username='viewer').exists() or "
                    "User.objects.create_user('viewer', password='viewer-pass-123')")
        bindir = Path(sys.executable).parent
        self.spawn("daphne", str(bindir / "daphne"), "-b", "127.0.0.1", "-p", str(self.port),
                   "thoxdash.asgi:application")
        if self.worker:
            self.spawn("worker", str(bindir / "celery"), "-A", "thoxdash", "worker", "-l", "info",
                       "--concurrency", "2", "--pool", "threads", "--hostname", f"test-{self.port}@%h")
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/accounts/login/", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("daphne did not start: " + (self.logs / "daphne.log").read_text()[-2000:])

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")
