"""A real llama.cpp `llama-server` for tests and benches: the binary `scripts/ensure_llama_server.py`
builds (make test runs it first), the tiny model made here from the sdist's vocab-only GGUF.

    with LlamaServer(model_path(tmp)) as srv:          # single model, 2 slots, --metrics
        srv.url, srv.pid, srv.port
    with LlamaServer(None, models_dir=d, extra=[...]):  # router mode
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from scripts.ensure_llama_server import binary, vocab_gguf
from tests.tiny_gguf import make_model

ALIAS = "tiny-random"


def server_binary() -> Path:
    path = binary()
    if not path.is_file():
        raise RuntimeError(f"no llama-server at {path}: run `python scripts/ensure_llama_server.py` "
                           "(make test does) to build it")
    return path


def model_path(directory: Path, name: str = ALIAS) -> Path:
    """The tiny model in `directory` (made on first use)."""
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"{name}.gguf"
    if not out.is_file():
        vocab = vocab_gguf()
        if not vocab.is_file():
            raise RuntimeError(f"no vocab GGUF at {vocab}: run `python scripts/ensure_llama_server.py`")
        make_model(vocab, out, name=name)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: Any = None, timeout: float = 60.0) -> tuple[int, Any]:
    """(status, JSON or text) without raising on HTTP errors."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw, status = resp.read(), resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


class LlamaServer:
    def __init__(self, model: Path | None, *, models_dir: Path | None = None, slots: int = 2,
                 ctx: int = 4096, extra: list[str] | None = None, log_dir: Path | None = None,
                 alias: str | None = ALIAS, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [str(server_binary()), "--host", "127.0.0.1", "--port", str(self.port), "--metrics",
                "--slots", "-np", str(slots), "-c", str(ctx), "-t", "2"]
        if model is not None:
            args += ["-m", str(model)] + (["--alias", alias] if alias else [])
        if models_dir is not None:
            args += ["--models-dir", str(models_dir)]
        self.args = args + list(extra or [])
        self.log_path = (log_dir or Path(os.environ.get("TMPDIR", "/tmp"))) / f"llama-server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> LlamaServer:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited {self.proc.returncode}: {self.log_tail()}")
            try:
                status, _ = http("GET", self.url + "/health", timeout=2)
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama-server not healthy in {timeout:g} s: {self.log_tail()}")

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: router children too
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- requests ----------------------------------------------------------------------------------
    def chat(self, content: str = "Say hello.", max_tokens: int = 16, **extra: Any) -> tuple[int, Any]:
        body = {"model": ALIAS, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens,
                "temperature": 0, "seed": 1, **extra}
        return http("POST", self.url + "/v1/chat/completions", body)

    def get(self, path: str) -> tuple[int, Any]:
        return http("GET", self.url + path)

    def rss_bytes(self) -> int:
        fields = Path(f"/proc/{self.pid}/statm").read_text().split()
        return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
