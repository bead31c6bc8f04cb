"""Run the real jetson-stats (jtop) service and client against a fake Jetson tree, inside a
private mount namespace (ns.sh), driven by driver.py.

jetson-stats is AGPL-3.0, so it is not a dependency of this project (not even the dev extra): the
tests install the pinned versions with pip into a cache folder outside the package
(`.run/jtop-sim/site-<version>`, git-ignored) and put it on PYTHONPATH only for the simulated
processes. 7.2.2 is the version under test; 4.3.2 (still common in the field) serves as the
"other version" service for the version-mismatch case.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("THOXDASH_JTOP_SIM_CACHE", PROJECT / ".run/jtop-sim"))


def jetson_stats_site(version: str) -> Path:
    """A folder holding jetson-stats==version and its dependencies (installed once, then cached)."""
    site = CACHE / f"site-{version}"
    if (site / "jtop/__init__.py").exists():
        return site
    CACHE.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"site-{version}-", dir=CACHE))
    try:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--no-compile", "--target", str(staging), f"jetson-stats=={version}"],
                       check=True, timeout=600)
        if not site.exists():
            staging.rename(site)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return site
