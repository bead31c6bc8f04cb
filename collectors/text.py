"""Small text predicates shared by the readers.

``str.isdigit`` accepts characters such as ``"¹"`` or ``"٣"`` that ``int()``
either rejects or reads as something no kernel file ever writes; every reader
that checks "is this a plain non-negative integer" uses :func:`is_uint` instead.
"""

from __future__ import annotations


def is_uint(text: object) -> bool:
    """True for a non-empty str or bytes of ASCII digits 0-9 only (or a non-negative int)."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text >= 0
    return isinstance(text, (str, bytes)) and text.isascii() and text.isdigit()


MAX_CPUS = 4096            # CPU numbers are below this (the kernel's NR_CPUS ceiling on arm64/x86)
MAX_CPULIST_CHARS = 16_384  # a device-reported list longer than this is not read at all


def cpus_in(text: object, max_cpus: int = MAX_CPUS) -> set[int]:
    """A kernel cpulist (`"4-7,9"`) as CPU numbers, bounded: parts that are malformed, reversed or
    name a CPU at or above `max_cpus` are skipped, and an over-long text reads as empty, so a
    device reporting `"0-99999999999"` costs nothing (the expansion is at most `max_cpus`)."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    if not isinstance(text, str) or len(text) > MAX_CPULIST_CHARS:
        return set()
    out: set[int] = set()
    for part in text.replace(" ", "").split(","):
        lo, sep, hi = part.partition("-")
        if not is_uint(lo) or (sep and not is_uint(hi)) or len(lo) > 6 or len(hi) > 6:
            continue
        first, last = int(lo), int(hi) if sep else int(lo)
        if last < first or last >= max_cpus:
            continue
        out.update(range(first, last + 1))
    return out
