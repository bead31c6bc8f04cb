"""The agent's suite on Python 3.10 (JetPack 6 / Ubuntu 22.04), from a plain `pip install .`.

`make test` calls this. It finds a Python 3.10 (THOXDASH_PY310, else pyenv's versions/3.10.*, else
`python3.10` on PATH), keeps a venv in .run/py310 with `pip install .` (the agent's dependencies
only: the script checks Django is NOT there) plus the test runner, and runs AGENT_TESTS with it.
The venv is rebuilt when pyproject.toml changes; the package itself is reinstalled every run.
Without any Python 3.10 on the machine it says so and exits 0 (nothing to run the suite with).
Standard library only.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".run" / "py310"
STAMP = VENV / ".thoxdash-installed"
# What the test runner needs beside the package (no Django, no pytest-django).
TEST_DEPS = ["pytest>=8,<10", "pytest-asyncio>=0.24,<2", "pytest-timeout>=2.3,<3", "hypothesis>=6.100,<7",
             "aiohttp>=3.10,<4", "psutil>=6.0,<8"]
# The agent's side: agent, sources, store, recording, proxy, runtimes clients, action executor.
AGENT_TESTS = [
    "tests/test_agent.py", "tests/test_agent_resilience.py", "tests/test_sources_host.py",
    "tests/test_sources_jetson.py", "tests/test_sources_runtimes.py", "tests/test_cgroup.py",
    "tests/test_tegrastats.py", "tests/test_tegra.py", "tests/test_text.py", "tests/test_store.py",
    "tests/test_irq_tuning.py",
    "tests/test_runtimes_clients.py", "tests/test_actions_runtime.py", "tests/test_proxy.py",
    "tests/test_proxy_admission.py", "tests/test_proxy_fastpath.py", "tests/test_proxy_framing.py",
    "tests/test_proxy_outage.py", "tests/test_redis_version.py", "tests/test_agent_slim.py",
]


def find_python310() -> str | None:
    explicit = os.environ.get("THOXDASH_PY310")
    if explicit:
        return explicit
    roots = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        roots.append(subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=10,
                                    check=True).stdout.strip())
    roots.append(os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv")))
    for root in roots:
        found = sorted(glob.glob(f"{root}/versions/3.10.*/bin/python3.10"))
        if found:
            return found[-1]
    return shutil.which("python3.10")


def run(*cmd: str) -> None:
    """Run an install step quietly; on failure show its output and stop."""
    done = subprocess.run(list(cmd), cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stdout[-3000:] + done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"failed: {' '.join(cmd)}")


def ensure_venv(python: str) -> Path:
    py = VENV / "bin" / "python"
    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + python.encode()
                         + repr(TEST_DEPS).encode()).hexdigest()
    if not py.exists() or not STAMP.exists() or STAMP.read_text() != key:
        shutil.rmtree(VENV, ignore_errors=True)
        run(python, "-m", "venv", str(VENV))
        run(str(py), "-m", "pip", "install", "-q", "--upgrade", "pip")
        run(str(py), "-m", "pip", "install", "-q", ".")  # a device's install: the agent and its deps
        run(str(py), "-m", "pip", "install", "-q", *TEST_DEPS)
        STAMP.write_text(key)
    else:  # code changed since: the same plain install, dependencies already there
        run(str(py), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", ".")
    return py


def main() -> int:
    python = find_python310()
    if python is None:
        print("SKIPPED the agent's suite on Python 3.10: no Python 3.10 on this machine "
              "(set THOXDASH_PY310=/path/to/python3.10, or install one: pyenv install 3.10)", file=sys.stderr)
        return 0
    version = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    if version != "3.10":
        print(f"{python} is Python {version}, not 3.10", file=sys.stderr)
        return 2
    py = ensure_venv(python)
    leaked = subprocess.run([str(py), "-c", "import importlib.util as u; print([m for m in "
                             "('django', 'celery', 'channels', 'plotly') if u.find_spec(m)])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    if leaked != "[]":
        print(f"`pip install .` put server packages on the device: {leaked}", file=sys.stderr)
        return 1
    print(f"agent suite on {python} (venv {VENV.relative_to(ROOT)}, `pip install .`)", file=sys.stderr)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-W", "ignore::pytest.PytestConfigWarning",
                           *sys.argv[1:], *AGENT_TESTS], cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
