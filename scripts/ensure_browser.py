"""Make sure the browser tests can run: Debian's chromium (installed with apt-get when root) and the
Playwright Python package (installed by `make setup`). Prints one line saying what is missing."""

from __future__ import annotations

import os
import sys

try:
    from scripts import debian
except ImportError:  # run as `python scripts/<name>.py`
    import debian  # type: ignore[no-redef]

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def chromium() -> str | None:
    env = os.environ.get("THOXDASH_CHROMIUM")
    if env and os.path.exists(env):
        return env
    return next((path for path in CANDIDATES if os.path.exists(path)), None)


def main() -> int:
    if chromium():
        return 0
    why = ""
    if debian.can_install():
        print("installing Debian's chromium for the browser tests ...", file=sys.stderr)
        _, why = debian.install(["chromium"])
        if chromium():
            return 0
    print("The browser tests need Chromium: sudo apt-get install chromium (or set THOXDASH_CHROMIUM)."
          + (f" apt-get said: {why}" if why else ""), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
