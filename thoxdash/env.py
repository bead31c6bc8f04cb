"""Typed environment helpers: a bad value raises ImproperlyConfigured naming the variable."""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false (1/0, yes/no, on/off), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum or maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_url(name: str, default: str, schemes: tuple[str, ...]) -> str:
    raw = os.environ.get(name, default)
    if "://" not in raw or raw.split("://", 1)[0] not in schemes:
        starts = ", ".join(s + "://" for s in schemes)
        raise ImproperlyConfigured(f"{name} must be a URL starting with one of {starts}, got {raw!r}")
    return raw


PLACEHOLDERS = ("change-me", "changeme", "REDIS_PASSWORD", "DEVICE_REDIS_PASSWORD", "<sha256")
MIN_SECRET_CHARS = 16


def placeholder_in(value: str) -> str | None:
    """The placeholder text an unedited example file left in `value`, or None."""
    lowered = value.lower()
    return next((p for p in PLACEHOLDERS if p.lower() in lowered), None)


def env_secret(name: str, default: str = "", *, min_chars: int = MIN_SECRET_CHARS) -> str:
    """A secret from NAME or from the file named by NAME_FILE (systemd credentials, Docker secrets),
    never from a command line. Placeholders from the example env files and short values are
    refused at start; empty means unset (the default)."""
    path = os.environ.get(f"{name}_FILE", "")
    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                value = fh.read().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path} cannot be read: {exc.strerror or exc}") from None
    else:
        value = os.environ.get(name, default).strip()
    if not value:
        return value
    found = placeholder_in(value)
    if found:
        raise ImproperlyConfigured(f"{name} still holds the placeholder {found!r}: set a real secret")
    if len(value) < min_chars:
        raise ImproperlyConfigured(f"{name} is shorter than {min_chars} characters: use a random secret")
    return value
