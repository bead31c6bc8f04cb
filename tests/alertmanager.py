"""A real Alertmanager (Debian's prometheus-alertmanager) on a loopback port, for tests.

Single instance (clustering off), a route to a receiver with no integrations, its own storage
folder. `alerts()` reads GET /api/v2/alerts (active alerts only: resolved ones drop out)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.stack import free_port

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager") or "/usr/bin/prometheus-alertmanager"
CONFIG = """route:
  receiver: blackhole
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: blackhole
"""


class Alertmanager:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Alertmanager:
        (self.tmp / "alertmanager.yml").write_text(CONFIG)
        log = (self.tmp / "alertmanager.log").open("w")
        self.proc = subprocess.Popen(
            [BINARY, f"--config.file={self.tmp / 'alertmanager.yml'}", f"--storage.path={self.tmp / 'am-data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("alertmanager did not start: " + self.log()[-2000:])

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def log(self) -> str:
        return (self.tmp / "alertmanager.log").read_text(errors="replace")

    def alerts(self, **labels: str) -> list[dict]:
        """Active alerts whose labels include these."""
        with urllib.request.urlopen(self.url + "/api/v2/alerts", timeout=5) as response:
            items = json.loads(response.read())
        return [a for a in items if all(a["labels"].get(k) == v for k, v in labels.items())]

    def wait(self, predicate, timeout_s: float = 30.0, **labels: str) -> list[dict]:
        deadline = time.time() + timeout_s
        while True:
            got = self.alerts(**labels)
            if predicate(got):
                return got
            if time.time() > deadline:
                raise TimeoutError(f"alertmanager never showed the expected alerts; last: {got}")
            time.sleep(0.25)
