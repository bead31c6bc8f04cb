"""Find a Redis for ThoxDash and print its URL (stdout); one clear line on stderr if impossible.

Order: REDIS_URL if it answers; else a local redis-server started with its data under .run/redis;
else, when root, install Debian's redis-server and start that; else say what to install.
Standard library only: it runs before the virtualenv has anything in it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

try:
    from scripts import debian
except ImportError:  # run as `python scripts/<name>.py`
    import debian  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
RUN = Path(os.environ.get("THOXDASH_RUN_DIR", ROOT / ".run"))
LOCAL_PORT = int(os.environ.get("THOXDASH_LOCAL_REDIS_PORT", "6390"))


def answers(url: str, timeout: float = 1.0) -> bool:
    parsed = urlparse(url)
    try:
        if parsed.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(timeout)
            sock.connect(parsed.path)
        else:
            sock = socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout)
        with sock:
            if parsed.password:
                user = parsed.username or "default"
                sock.sendall(f"AUTH {user} {parsed.password}\r\n".encode())
                sock.recv(64)
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_local() -> str | None:
    server = shutil.which("redis-server")
    if not server:
        return None
    url = f"redis://127.0.0.1:{LOCAL_PORT}/0"
    if answers(url):
        return url
    data = RUN / "redis"
    data.mkdir(parents=True, exist_ok=True)
    subprocess.run([server, "--port", str(LOCAL_PORT), "--bind", "127.0.0.1", "--daemonize", "yes",
                    "--dir", str(data), "--appendonly", "yes", "--save", "",
                    "--pidfile", str(data / "redis.pid"), "--logfile", str(data / "redis.log")],
                   check=False, stdout=subprocess.DEVNULL)
    for _ in range(50):
        if answers(url):
            return url
        time.sleep(0.1)
    return None


def install_debian() -> bool:
    if not debian.can_install():
        return False
    print("installing Debian's redis-server ...", file=sys.stderr)
    ok, why = debian.install(["redis-server"])
    if not ok:
        print(f"apt-get could not install redis-server: {why}", file=sys.stderr)
    return ok


def main() -> int:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    if answers(url):
        print(url)
        return 0
    local = start_local() or (install_debian() and start_local())
    if local:
        print(f"Redis at {url} did not answer; using a local redis-server at {local}", file=sys.stderr)
        print(local)
        return 0
    print(f"ThoxDash needs Redis: nothing answers at {url} and no redis-server is installed "
          "(install it: sudo apt-get install redis-server, or set REDIS_URL).", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
