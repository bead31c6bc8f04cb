from __future__ import annotations

import pytest

from collectors.text import is_uint


@pytest.mark.parametrize("value", ["0", "42", b"17", 3, 0])
def test_plain_non_negative_integers(value: object) -> None:
    assert is_uint(value)


@pytest.mark.parametrize("value", ["", "-1", "1.5", " 1", "¹", "٣", "1²", b"", b"-2", -1, True, None, 1.0])
def test_everything_else(value: object) -> None:
    assert not is_uint(value)
