"""Reading small kernel files (procfs, sysfs, debugfs): the one implementation every reader uses.

Raw `os.open`/`os.read` without Python's buffered layer: sources read hundreds of these files a
second on a small board. Every function returns None for a file that is missing, unreadable or not
what it should hold; none raises.
"""

from __future__ import annotations

import os
from pathlib import Path

INT_LIMIT = 64  # bytes: enough for any integer a kernel file holds, and one read(2)


def read(path: Path | str | None, limit: int | None = None) -> str | None:
    """A whole small file as text (undecodable bytes replaced), or None.

    With `limit`, at most that many bytes in a single read(2) (enough for one-value files)."""
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if limit is not None:
            data = os.read(fd, limit)
        else:
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            data = b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data.decode("utf-8", errors="replace")


def read_int(path: Path | str | None) -> int | None:
    """The first whitespace-separated integer of a small file (`123`, `-5`, `42 kB`), or None."""
    if path is None:
        return None
    try:  # read() inlined: this runs for most of the files a source reads every second
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.read(fd, INT_LIMIT)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        return int(data.split()[0])
    except (ValueError, IndexError):
        return None
