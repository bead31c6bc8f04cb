"""collectors/bounds.py and collectors/text.cpus_in: what a device may claim, checked before use."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from advisors.config import parse_cpulist
from advisors.recommend.checks import parse_cpus
from advisors.rules.window import Window
from collectors import bounds
from collectors.text import MAX_CPUS, cpus_in


def test_cpulists_are_bounded():
    assert cpus_in("4-7,9") == {4, 5, 6, 7, 9}
    assert cpus_in("0-99999999999") == set() and cpus_in("0-4096") == set() and cpus_in("4095") == {4095}
    assert cpus_in("7-3,x,2") == {2}
    assert cpus_in("1," * 20_000) == set()  # over-long text is not read
    assert parse_cpulist("0-99999999999,3") == {"3"} and parse_cpus("0-99999999999,3") == {3}


@given(st.text(alphabet="0123456789-, ", max_size=60))
def test_cpus_in_never_exceeds_the_bound(text):
    cpus = cpus_in(text)
    assert all(0 <= c < MAX_CPUS for c in cpus)
    assert len(cpus) <= MAX_CPUS


def test_state_fields_over_the_bounds_are_dropped_and_named():
    clean, rejected = bounds.clean_state({
        "isolated_cpus": "0-99999999999", "nohz_full": "2-3", "thp": "x" * 5000, "ok": {"a": [1, 2]},
        "nested": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}, "list": list(range(5000)), "nan": math.nan,
        "bad name!": 1, "governor": {str(i): "performance" for i in range(8)}})
    assert set(clean) == {"nohz_full", "ok", "governor"}
    assert len(rejected) == 6 and any("isolated_cpus" in r for r in rejected)
    assert bounds.clean_state([1, 2]) == ({}, ["state is list, not an object"])


def test_values_bounded_reserved_names_and_non_finite_dropped():
    values = {"gpu_load_ratio": 0.5, "device_up": 1.0, "thoxdash_x": 1.0, '__name__{a="b"}': 1.0,
              "nan": math.nan, "inf": math.inf, "text": "1.5", "junk": "x", "b" * 600: 1.0}
    clean, rejected = bounds.clean_values(values)
    assert clean == {"gpu_load_ratio": 0.5, "text": 1.5} and len(rejected) == 7
    many = {f"s{i}": float(i) for i in range(10_000)}
    clean, rejected = bounds.clean_values(many)
    assert len(clean) == bounds.MAX_SERIES_PER_DEVICE and rejected


def test_rule_window_keeps_only_what_a_device_may_claim():
    window = Window(now=10.0)
    window.add({"ts": 1.0, "values": {"gpu_load_ratio": 0.5, "device_up": 1.0, "x": math.nan, "y": "s"}})
    window.add({"ts": 2.0, "values": {f"s{i}": 1.0 for i in range(10_000)}})
    window.add({"ts": 3.0, "state": {"isolated_cpus": "0-99999999999", "thp": "madvise"}})
    assert "device_up" not in window.series and "x" not in window.series and "y" not in window.series
    assert len(window.series) == bounds.MAX_SERIES_PER_DEVICE
    assert window.state == {"thp": "madvise"}


def test_latest_hash_bounds_count_series_not_the_timestamp():
    raw = {"__ts": "1.0", **{f"s{i}": "1" for i in range(3000)}, "device_up": "1"}
    kept, dropped = bounds.clean_latest(raw, 2000)
    assert len(kept) == 2001 and "__ts" in kept and "device_up" not in kept and dropped == 1001
