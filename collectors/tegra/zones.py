"""Thermal zone labels as every Jetson source writes them: lower case, without the `-thermal` /
`_thermal` suffix of the sysfs zone type, as jtop names them (`cpu`, `gpu`, `tj`, `soc0`)."""

from __future__ import annotations

LABEL_LIMIT = 64


def zone_label(name: str) -> str:
    name = name.lower()
    for suffix in ("-thermal", "_thermal"):
        name = name.removesuffix(suffix)
    return name[:LABEL_LIMIT]
