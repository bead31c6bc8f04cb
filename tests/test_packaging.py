"""Packaging: the base install is the agent's, the server is an extra, the lock covers both with
hashes, and the agent's jetson-stats follows the host jtop service (deploy/jetson-stats-spec.sh run
against a service unit and a jtop module laid out as jetson-stats installs them)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "deploy" / "jetson-stats-spec.sh"


def name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_base_install_is_the_agent_only():
    base = {name(r) for r in project()["dependencies"]}
    assert {"redis", "prometheus-client", "uvloop"} <= base
    assert not base & {"django", "celery", "channels", "channels-redis", "daphne", "plotly", "dj-database-url",
                       "psutil", "aiohttp", "honcho"}
    server = {name(r) for r in project()["optional-dependencies"]["server"]}
    assert {"django", "celery", "channels", "daphne", "plotly", "dj-database-url"} <= server
    dev = {name(r) for r in project()["optional-dependencies"]["dev"]}
    assert {"psutil", "aiohttp", "pytest"} <= dev


def locked(file: str) -> dict[str, tuple[str, list[str]]]:
    """{package: (pin line, [hash lines])} of a lock file."""
    out: dict[str, tuple[str, list[str]]] = {}
    current = None
    for line in (ROOT / file).read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            current = name(line)
            assert "==" in line, f"{file}: not pinned: {line}"
            out[current] = (line.split(" ")[0], [])
        elif current and line.strip().startswith("--hash=sha256:"):
            out[current][1].append(line)
    return out


def wanted(*extras: str) -> set[str]:
    reqs = [*project()["dependencies"]]
    for extra in extras:
        reqs += project()["optional-dependencies"][extra]
    return {name(r) for r in reqs} - {"psycopg"}  # psycopg[binary]: checked below


def test_locks_pin_every_requirement_with_hashes():
    prod, dev = locked("requirements.lock"), locked("requirements-dev.lock")
    for lock, extras, file in ((prod, ("server", "postgres"), "requirements.lock"),
                               (dev, ("server", "dev", "postgres"), "requirements-dev.lock")):
        missing = sorted(wanted(*extras) - set(lock))
        assert not missing, f"{file} lacks {missing}: run `make lock`"
        assert "psycopg" in lock
        assert all(hashes for _, hashes in lock.values()), [p for p, (_, h) in lock.items() if not h]
    assert not {"pytest", "playwright", "ruff", "mypy", "uv"} & set(prod)  # production: no dev tools
    shared = set(prod) & set(dev)
    assert shared == set(prod)
    assert [p for p in sorted(shared) if prod[p][0] != dev[p][0]] == []  # the same versions in both
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r $(DEV_LOCK)" in makefile and "'.[server,dev]'" in makefile
    assert "--generate-hashes" in makefile and "\nlock:" in makefile and "-c $(LOCK)" in makefile


def _spec(tmp_path: Path, version: str | None, **env: str) -> subprocess.CompletedProcess:
    """Lay out a jtop service as jetson-stats installs it: a unit whose ExecStart is a console
    script, whose #! names the Python that has the `jtop` package."""
    site = tmp_path / "site"
    (site / "jtop").mkdir(parents=True, exist_ok=True)
    if version is not None:
        (site / "jtop" / "__init__.py").write_text(f"__version__ = '{version}'\n")
    python = tmp_path / "python3"
    python.write_text(f"#!/bin/sh\nPYTHONPATH={site} exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    script = tmp_path / "jtop"
    script.write_text(f"#!{python}\nimport jtop\n")
    unit = tmp_path / "jtop.service"
    unit.write_text(f"[Service]\nType=simple\nEnvironment=\"JTOP_SERVICE=True\"\nExecStart={script} --force\n")
    return subprocess.run(["bash", str(SPEC)], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", "JTOP_SERVICE_FILE": str(unit),
                               "JTOP_FALLBACK_PYTHON": str(tmp_path / "none"), **env})


def test_jetson_stats_follows_the_jtop_service(tmp_path):
    got = _spec(tmp_path, "4.3.2")
    assert got.returncode == 0 and got.stdout.strip() == "jetson-stats==4.3.2", got.stderr


def test_jetson_stats_without_service_takes_the_range(tmp_path):
    got = _spec(tmp_path, None, JTOP_SERVICE_FILE=str(tmp_path / "absent.service"))
    assert got.returncode == 0 and got.stdout.strip() == "jetson-stats>=4.2,<8"
    assert "no jtop service found" in got.stderr


def test_jetson_stats_refuses_an_unsupported_service(tmp_path):
    got = _spec(tmp_path, "3.1.4")
    assert got.returncode == 1 and "jtop service 3.1.4 is outside" in got.stderr
