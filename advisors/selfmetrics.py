"""ThoxDash's own health, recorded where it happens and exported by /metrics (thoxdash.metrics).

One Redis hash `{p}self` with:
  rules_last_cycle_ts          end of the newest evaluation batch (epoch s); lag = now - this
  rules_last_cycle_seconds     how long that batch took
  rules_cycles_total           batches evaluated (counter)
  rules_cycle_seconds_total    their summed duration (counter: rate(sum)/rate(count) = mean)
  rules_devices_total          device evaluations (counter)
  rules_failures_total         device evaluations that raised (counter)
Deliveries by result and queue depth are read at scrape time (DB rows, broker list length).
Plain functions over a TelemetryStore; recording never raises into the caller.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def key(prefix: str) -> str:
    return f"{prefix}self"


def record_cycle(store: Any, started: float, finished: float, devices: int, failed: int = 0) -> None:
    """Note one evaluation batch (one pipelined round trip)."""
    try:
        pipe = store.r.pipeline(transaction=False)
        k = key(store.prefix)
        pipe.hset(k, mapping={"rules_last_cycle_ts": repr(finished),
                              "rules_last_cycle_seconds": repr(max(0.0, finished - started))})
        pipe.hincrby(k, "rules_cycles_total", 1)
        pipe.hincrbyfloat(k, "rules_cycle_seconds_total", max(0.0, finished - started))
        pipe.hincrby(k, "rules_devices_total", devices)
        pipe.hincrby(k, "rules_failures_total", failed)
        pipe.execute()
    except Exception:  # a metric must never break the evaluation
        log.warning("could not record the rules cycle metrics", exc_info=True)


def read(store: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, text in (store.r.hgetall(key(store.prefix)) or {}).items():
        try:
            out[name] = float(text)
        except ValueError:
            continue
    return out
