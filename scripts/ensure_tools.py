"""Make sure the Debian tools the tests drive are installed (`make test` calls this).

prometheus + promtool (tests/test_metrics.py), prometheus-alertmanager (tests/test_alertmanager_push.py),
nginx (tests/test_deploy.py), openssl (TLS test
certificates), systemd-analyze (unit verification), redis-server (fault tests run their own).
Installs the missing packages with apt-get when root; otherwise says what to install and fails.
Standard library only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

try:
    from scripts import debian
except ImportError:  # run as `python scripts/<name>.py`
    import debian  # type: ignore[no-redef]

# executable -> (Debian package, fallback paths)
TOOLS: dict[str, tuple[str, tuple[str, ...]]] = {
    "promtool": ("prometheus", ("/usr/bin/promtool",)),
    "prometheus": ("prometheus", ("/usr/bin/prometheus",)),
    "prometheus-alertmanager": ("prometheus-alertmanager", ("/usr/bin/prometheus-alertmanager",)),
    "nginx": ("nginx-light", ("/usr/sbin/nginx",)),
    "openssl": ("openssl", ("/usr/bin/openssl",)),
    "systemd-analyze": ("systemd", ("/usr/bin/systemd-analyze",)),
    "redis-server": ("redis-server", ("/usr/bin/redis-server",)),
}


def missing() -> list[str]:
    out = []
    for exe, (package, paths) in TOOLS.items():
        if not (shutil.which(exe) or any(os.access(p, os.X_OK) for p in paths)) and package not in out:
            out.append(package)
    return out


def main() -> int:
    packages = missing()
    if not packages:
        return 0
    if not debian.can_install():
        print(f"tests need these Debian packages: sudo apt-get install {' '.join(packages)}", file=sys.stderr)
        return 1
    print(f"installing {' '.join(packages)} ...", file=sys.stderr)
    _, why = debian.install(packages, recommends=False)
    # The Debian packages start services on install; the tests run their own instances.
    for service in ("nginx", "prometheus", "prometheus-alertmanager"):
        subprocess.run(["systemctl", "stop", service], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)
    left = missing()
    if left:
        print(f"could not install: {' '.join(left)}" + (f" (apt-get said: {why})" if why else ""), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
