"""What kind of machine this is.

Sources: /proc/device-tree/model (Jetson module name), /etc/nv_tegra_release (L4T release),
/sys/class/drm or /proc/driver/nvidia for a discrete GPU.
"""

from __future__ import annotations

import platform
import socket
from pathlib import Path
from typing import Any


def device_tree_model(root: Path) -> str | None:
    try:
        return (root / "proc/device-tree/model").read_bytes().rstrip(b"\0").decode("utf-8", "replace").strip() or None
    except OSError:
        return None


def l4t_release(root: Path) -> str | None:
    try:
        first = (root / "etc/nv_tegra_release").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    # "# R36 (release), REVISION: 4.3, GCID: ..." -> "36.4.3"
    try:
        major = first.split("R", 1)[1].split()[0]
        revision = first.split("REVISION:", 1)[1].split(",")[0].strip()
        return f"{major}.{revision}"
    except IndexError:
        return None


def is_jetson(root: Path) -> bool:
    model = device_tree_model(root) or ""
    return "jetson" in model.lower() or "orin" in model.lower() or "thor" in model.lower() or \
        (root / "etc/nv_tegra_release").exists()


def describe(root: Path) -> dict[str, Any]:
    model = device_tree_model(root)
    if is_jetson(root):
        return {"kind": "jetson", "model": model or "Jetson", "l4t": l4t_release(root),
                "hostname": socket.gethostname()}
    return {"kind": "host", "model": f"{platform.machine()} host", "hostname": socket.gethostname(),
            "discrete_gpu": (root / "proc/driver/nvidia/gpus").exists()}
