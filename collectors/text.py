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
