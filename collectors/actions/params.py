"""Typed parameter validation: every value an action uses passes through one of these.

Nothing here ever accepts a path or a command: CPUs are numbers, modes come from fixed sets, names
must match a strict pattern and then be found in the device's own allow-list.
"""

from __future__ import annotations

import re
from typing import Any

MAX_CPUS = 1024
MAX_IRQ = 65535
GOVERNORS = ("performance", "schedutil", "ondemand", "powersave", "conservative", "userspace")
THP_MODES = ("always", "madvise", "never")
RUNTIME_PM = ("on", "auto")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")
MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/+-]{0,199}$")


class ParamError(ValueError):
    """A parameter is missing, of the wrong type or out of range; the message says which."""


def require(params: dict[str, Any], name: str) -> Any:
    if name not in params:
        raise ParamError(f"missing parameter '{name}'")
    return params[name]


def no_extra(params: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(params) - allowed)
    if extra:
        raise ParamError(f"unknown parameter(s): {', '.join(extra)}")


def integer(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,19}", value.strip()):
            value = int(value)
        else:
            raise ParamError(f"'{name}' must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ParamError(f"'{name}' must be between {lo} and {hi}, got {value}")
    return int(value)


def choice(value: Any, name: str, options: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in options:
        raise ParamError(f"'{name}' must be one of {', '.join(options)}, got {value!r}")
    return value


def cpu_list(value: Any, name: str = "cpus") -> list[int]:
    """`"4-7"`, `"0,2-3"` or `[4, 5]` -> sorted unique CPU numbers."""
    cpus: set[int] = set()
    if isinstance(value, list):
        for item in value:
            cpus.add(integer(item, name, 0, MAX_CPUS - 1))
    elif isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[0-9]{1,4}(-[0-9]{1,4})?(,[0-9]{1,4}(-[0-9]{1,4})?)*", text):
            raise ParamError(f"'{name}' must be a CPU list like '4-7' or '0,2-3', got {value!r}")
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            first, last = int(lo), int(hi or lo)
            if first > last or last >= MAX_CPUS:
                raise ParamError(f"'{name}': bad range {part!r}")
            cpus.update(range(first, last + 1))
    else:
        raise ParamError(f"'{name}' must be a CPU list, got {value!r}")
    if not cpus:
        raise ParamError(f"'{name}' is empty")
    return sorted(cpus)


def format_cpus(cpus: list[int]) -> str:
    """[0,1,2,3,6] -> '0-3,6' (the kernel's list format)."""
    parts: list[str] = []
    start: int | None = None
    prev = -2
    for cpu in sorted(set(cpus)):
        if start is None:
            start = prev = cpu
        elif cpu == prev + 1:
            prev = cpu
        else:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = cpu
    if start is not None:
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ",".join(parts)


def name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise ParamError(f"'{what}' must be a plain name (letters, digits, _ . @ -), got {value!r}")
    return value


def model_name(value: Any) -> str:
    if not isinstance(value, str) or not MODEL.match(value) or ".." in value:
        raise ParamError(f"'model' must be a model name like 'llama3.2:3b', got {value!r}")
    return value
