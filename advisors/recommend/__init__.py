"""Recommendations: plain functions of (tuning state, latest values, firing alerts, config).

Each recommendation is a dict: id, kind (tuning|runtime), title, status (warn|fail), evidence
{value, where}, recommended, why (one sentence), risk, needs_reboot, action ({action, params} the
agent's allow-list knows, or None for advice only), safe (may go into "apply recommended tuning"),
and for runtime advice auto_ok (what auto mode may do alone).
"""

from __future__ import annotations

from typing import Any

from advisors.recommend.checks import CHECK_IDS, run_checks
from advisors.recommend.runtime import runtime_recommendations
from advisors.recommend.tuning import tuning_recommendations


def recommend(state: dict[str, Any], values: dict[str, float], alerts: list[dict[str, Any]],
              config: dict[str, Any], last_used: dict[str, float] | None = None) -> list[dict[str, Any]]:
    last_used = last_used or {}
    return (runtime_recommendations(alerts, values, last_used, config)
            + tuning_recommendations(state, values, config))


def safe_set(recommendations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The steps of "apply recommended tuning": every safe tuning action, in checklist order."""
    return [dict(r["action"]) for r in recommendations if r.get("safe") and r.get("action")]


def last_used_from_requests(requests: list[dict[str, Any]]) -> dict[str, float]:
    """{"runtime/model": ts of its newest request} from recording-format request records."""
    out: dict[str, float] = {}
    for record in requests:
        req = record.get("request") or {}
        if req.get("runtime") and req.get("model"):
            key = f"{req['runtime']}/{req['model']}"
            out[key] = max(out.get(key, 0.0), float(record.get("ts") or 0.0))
    return out


__all__ = ["CHECK_IDS", "last_used_from_requests", "recommend", "run_checks", "safe_set"]
