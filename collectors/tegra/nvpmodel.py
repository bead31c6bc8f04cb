"""nvpmodel power modes: the current mode from /var/lib/nvpmodel/status (`pmode:0002 fmode:quiet`)
and mode names from /etc/nvpmodel.conf (`< POWER_MODEL ID=2 NAME=MAXN_SUPER >`)."""

from __future__ import annotations

import re
from pathlib import Path

from collectors.files import read

POWER_MODEL = re.compile(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=([^\s>]+)\s*>")
STATUS = re.compile(r"pmode:\s*(\d{1,4})")
NAME_LIMIT = 64
CONF = "etc/nvpmodel.conf"
STATUS_FILE = "var/lib/nvpmodel/status"


def parse_power_models(conf: str | None) -> dict[int, str]:
    """{mode id: name} from nvpmodel.conf text (names cut to 64 characters)."""
    return {int(i): name[:NAME_LIMIT] for i, name in POWER_MODEL.findall(conf or "")}


def parse_status(text: str | None) -> int | None:
    """The mode id in nvpmodel's status file, or None."""
    match = STATUS.search(text or "")
    return int(match.group(1)) if match else None


def power_models(root: Path) -> dict[int, str]:
    return parse_power_models(read(root / CONF))


def nvpmodel(root: Path) -> tuple[int, str | None] | None:
    """(mode id, mode name or None) of the tree at `root`, or None when the status is unreadable."""
    mode = parse_status(read(root / STATUS_FILE, 4096))
    if mode is None:
        return None
    return mode, power_models(root).get(mode)
