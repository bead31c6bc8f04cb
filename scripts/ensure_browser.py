"""Make sure the browser tests can run: Debian's chromium (installed with apt-get when root) and the
Playwright Python package (installed by `make setup`). Prints one line saying what is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def chromium() -> str | None:
    env = os.environ.get("THOXDASH_CHROMIUM")
    if env and os.path.exists(env):
        return env
    return next((path for path in CANDIDATES if os.path.exists(path)), None)


def main() -> int:
    if chromium():
        return 0
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing Debian's chromium for the browser tests ...", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "install", "-y", "-q", "chromium"], ["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "chromium"]):
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            if chromium():
                return 0
    print("The browser tests need Chromium: sudo apt-get install chromium (or set THOXDASH_CHROMIUM).", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
