"""The live path's incremental window cache sees exactly what a fresh read of Redis sees."""

from __future__ import annotations

import time

from advisors.alerting import load_window
from advisors.livewindow import LiveWindows


def test_incremental_live_window_equals_a_fresh_read(store):
    now = time.time()
    key = 'runtime_memory_bytes{runtime="ollama"}'
    cache = LiveWindows()

    def publish(t: float) -> None:
        store.publish("inc", [{"ts": t, "source": "jtop", "values": {key: t, "gpu_load_ratio": 0.5}},
                              {"ts": t, "source": "request", "request": {"runtime": "ollama", "total_s": 1.0}},
                              {"ts": t, "source": "tuning", "state": {"thp": "never"}}])

    for k in range(20):
        publish(now - 40 + k)
    for k in range(20, 40):
        publish(now - 40 + k)
        with cache.lease(store, "inc", now - 40 + k + 0.5, 10.0) as live:
            fresh = load_window(store, "inc", now - 40 + k + 0.5, 10.0)
            assert live.series == fresh.series and live.requests == fresh.requests
            assert live.state == fresh.state == {"thp": "never"}


def test_a_record_stamped_just_after_now_is_not_lost(store):
    now = time.time()
    cache = LiveWindows()
    store.publish("late", [{"ts": now + 0.2, "source": "jtop", "values": {"gpu_load_ratio": 0.9}}])
    with cache.lease(store, "late", now, 10.0) as w:
        assert w.series == {"gpu_load_ratio": [(now + 0.2, 0.9)]}
    store.publish("late", [{"ts": now + 0.4, "source": "jtop", "values": {"gpu_load_ratio": 0.1}}])
    with cache.lease(store, "late", now + 0.3, 10.0) as w:
        assert w.last("gpu_load_ratio") == 0.1
