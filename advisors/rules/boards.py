"""Default software-throttling trip points per board, for when neither the device config nor the
agent (the board's own sysfs trip points) gives one.

Sources: NVIDIA's L4T device trees (the passive "sw-throttle" trip of each thermal zone):
- Jetson AGX Orin / Orin NX / Orin Nano (T234): `tegra234-thermal-cooling.dtsi` (NVIDIA, 2021-2022,
  L4T R35 hardware sources; mirrored in alliedvision/linux_nvidia_jetson at b093ea4d48ba),
  `hardware/nvidia/platform/t23x/common/kernel-dts/t234-common-cvm/`: cpu, gpu, cv0-2 and soc0-2
  zones `*-sw-throttle` 99.0 °C passive, `*-sw-shutdown` 104.5 °C critical; the Orin NX / Nano module
  tree (`tegra234-cvm-p3767.dtsi`) maps its cooling devices onto those same trips. tj has only a
  critical trip (104.5 °C), so no throttle default for it. NVIDIA's upstream patch "arm64: tegra:
  Add thermal support for Tegra234" (linux-tegra, January 2023) carries the same 99.0 / 104.5.
- Jetson AGX Xavier (T194, p2888): `tegra194-thermal.dtsi` (NVIDIA, 2017-2022, R32 sources, same
  mirror at 4609206e6594): cpu 90.0, gpu 92.5, aux 89.0 °C sw-throttle.
- Jetson Xavier NX (p3668): `tegra194-thermal-p3668.dtsi` overrides: cpu 90.5, gpu 91.5, aux 90.0.
- Jetson AGX Thor (T264): its trip points live in a BPMP device tree NVIDIA ships compiled, and no
  public source gives them: the Orin points stand in until the board reports its own.
These are defaults of last resort (the rule's clock-falling-under-load evidence fires without
them).
A board's own trip points (the agent publishes `throttle_celsius` read from
/sys/class/thermal/thermal_zone*/trip_point_*) take precedence over these, and a device config over
both: the real AGX Orin 64 GB recording in tests/fixtures/real reports 112 °C, for instance.
"""

from __future__ import annotations

import re
from typing import Any

_ORIN = {"cpu": 99.0, "gpu": 99.0, "soc": 99.0, "cv": 99.0}
_AGX_XAVIER = {"cpu": 90.0, "gpu": 92.5, "aux": 89.0}
_XAVIER_NX = {"cpu": 90.5, "gpu": 91.5, "aux": 90.0}

# (substring of the board model, lower case) -> zone -> °C; first match wins
BOARD_THROTTLE_CELSIUS: list[tuple[str, dict[str, float]]] = [
    ("thor", _ORIN),
    ("orin", _ORIN),          # Orin Nano, Orin NX, AGX Orin
    ("xavier nx", _XAVIER_NX),
    ("xavier", _AGX_XAVIER),  # AGX Xavier (and Xavier modules not named NX)
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
