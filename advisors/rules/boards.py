"""Default software-throttling trip points per board, for when neither the device config nor the
agent (the board's own sysfs trip points) gives one.

Sources (NVIDIA), where these points are documented:
- Jetson Orin Nano / Orin NX / AGX Orin: "NVIDIA Jetson Linux Developer Guide", Platform Power and
  Performance, "Jetson Orin Nano Series, Jetson Orin NX Series and Jetson AGX Orin Series",
  Thermal Management (docs.nvidia.com/jetson/archives/r36.3/DeveloperGuide/SD/
  PlatformPowerAndPerformance/JetsonOrinNanoSeriesJetsonOrinNxSeriesAndJetsonAgxOrinSeries.html)
  and the Jetson Orin thermal design guides: software throttling of CPU/GPU/SoC near 99 °C,
  Tj max 105 °C.
- Jetson AGX Thor: the Jetson Thor thermal design guide (Tj max 105 °C); the Orin point is used.
- Jetson Xavier NX / AGX Xavier: the Developer Guide's "Jetson Xavier NX Series and Jetson AGX
  Xavier Series" Thermal Management section: software throttling near 96 °C.
These are defaults of last resort (not re-read from the documents in this code's tests; the rule's
clock-falling-under-load evidence fires without them).
A board's own trip points (the agent publishes `throttle_celsius` read from
/sys/class/thermal/thermal_zone*/trip_point_*) take precedence over these, and a device config over
both: the real AGX Orin 64 GB recording in tests/fixtures/real reports 112 °C, for instance.
"""

from __future__ import annotations

import re
from typing import Any

_ORIN = {"cpu": 99.0, "gpu": 99.0, "soc": 99.0, "cv": 99.0, "tj": 99.0}
_XAVIER = {"cpu": 96.0, "gpu": 96.0, "aux": 96.0, "tj": 96.0}

# (substring of the board model, lower case) -> zone -> °C; first match wins
BOARD_THROTTLE_CELSIUS: list[tuple[str, dict[str, float]]] = [
    ("thor", _ORIN),
    ("orin", _ORIN),          # Orin Nano, Orin NX, AGX Orin
    ("xavier", _XAVIER),      # Xavier NX, AGX Xavier
]


def zone_key(name: str) -> str:
    """`gpu-thermal`, `GPU`, `soc0` -> `gpu`, `gpu`, `soc`: the names sources and configs use."""
    key = re.sub(r"[-_ ]?thermal$", "", str(name).strip().lower())
    return re.sub(r"\d+$", "", key) or key


def board_points(board: Any) -> dict[str, float]:
    """The default trip points of a board (its registration or recording header `board`)."""
    model = ""
    if isinstance(board, dict):
        model = " ".join(str(board.get(k) or "") for k in ("model", "name", "module", "soc")).lower()
    elif isinstance(board, str):
        model = board.lower()
    for needle, points in BOARD_THROTTLE_CELSIUS:
        if needle in model:
            return dict(points)
    return {}


def lookup(points: dict[str, Any], zone: str) -> float | None:
    """A zone's point from a {zone: °C} map whose keys may be spelt either way."""
    if zone in points and points[zone] is not None:
        return float(points[zone])
    want = zone_key(zone)
    for key, value in points.items():
        if value is not None and zone_key(key) == want:
            return float(value)
    return None
