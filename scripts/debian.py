"""apt-get install for the ensure_* scripts: waits for a dpkg lock held by another apt run (instead of
failing at once), retries once after `apt-get update`, and returns apt's last error lines so the
caller can say what went wrong."""

from __future__ import annotations

import os
import shutil
import subprocess

LOCK_TIMEOUT_S = 300


def can_install() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def install(packages: list[str], *, recommends: bool = True) -> tuple[bool, str]:
    """Install Debian packages; (ok, last lines of apt's stderr)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", f"DPkg::Lock::Timeout={LOCK_TIMEOUT_S}"]
    cmd = ["apt-get", *lock, "install", "-y", "-q", *([] if recommends else ["--no-install-recommends"]), *packages]
    result = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        subprocess.run(["apt-get", *lock, "update", "-q"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        result = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                check=False)
    tail = " | ".join(line for line in (result.stderr or "").strip().splitlines()[-3:])
    return result.returncode == 0, tail
