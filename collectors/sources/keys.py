"""Series keys with one label, memoised: sources build the same few hundred keys every sample, and
`series_key` (validation, escaping, sorting) would otherwise dominate a cheap reader's cost."""

from __future__ import annotations

from functools import lru_cache

from collectors.series import series_key


@lru_cache(maxsize=8192)
def key1(name: str, label: str, value: str | int) -> str:
    """`name{label="value"}`, built once per distinct (name, label, value)."""
    return series_key(name, **{label: value})
