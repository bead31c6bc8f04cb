"""Thermal zones from sysfs.

Source: /sys/class/thermal/thermal_zone*/type and temp (millidegrees C).
Units: degrees Celsius. Zones reading below -100 C (Jetson reports -256 C for powered-off CV
clusters) are left out.
"""

from __future__ import annotations

from pathlib import Path


def thermal_zones(root: Path) -> dict[str, float] | None:
    base = root / "sys/class/thermal"
    out: dict[str, float] = {}
    try:
        zones = sorted(base.glob("thermal_zone*"))
    except OSError:
        return None
    for zone in zones:
        try:
            name = (zone / "type").read_text().strip() or zone.name
            milli = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        celsius = milli / 1000.0
        if -100.0 < celsius < 200.0:
            out[name] = celsius
    return out or None
