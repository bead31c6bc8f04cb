"""The proxy's configuration, read once from the environment (typed, with clear errors in the log).

THOXDASH_PROXY_PUBLISH_S            how often records are published (0.5)
THOXDASH_PROXY_ADMISSION_S          how often admission limits are re-read (1.0)
THOXDASH_PROXY_LOAD_EVENT_S         a load_duration that counts as a model load (1.0)
THOXDASH_PROXY_SPILL                outage spill folder (.run/proxy-spill)
THOXDASH_PROXY_SWITCH_S             the interpreter's thread switch interval (0.0005: how long the
                                    publisher thread may hold the event loop off)
THOXDASH_PROXY_MAX_BODY             largest request body in bytes; above it 413 (64 MiB)
THOXDASH_PROXY_MAX_BUFFERED        request bytes all connections may hold while requests arrive;
                                    above it the connection that grows gets 503 (128 MiB)
THOXDASH_PROXY_MAX_CONNECTIONS      client connections at once; above it 503 and close (4096)
THOXDASH_PROXY_MAX_PER_CLIENT       client connections at once from one address (1024; 0: no limit)
THOXDASH_PROXY_IDLE_S               keep-alive idle timeout (75)
THOXDASH_PROXY_CLIENT_PRIORITY      the X-Thoxdash-Priority values a client may choose, comma
                                    separated ("normal,low": a client may lower its priority; "high"
                                    only where configured). Other values are ignored.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from collectors.proxy.admission import PRIORITIES

log = logging.getLogger(__name__)

MIB = 1 << 20


def env_float(name: str, default: float, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        log.warning("%s=%r is not a number; using %s", name, raw, default)
        return default
    if not value >= minimum:  # also NaN
        log.warning("%s=%r is below %s; using %s", name, raw, minimum, default)
        return default
    return value


def env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        log.warning("%s=%r is not an integer; using %s", name, raw, default)
        return default
    if value < minimum:
        log.warning("%s=%r is below %s; using %s", name, raw, minimum, default)
        return default
    return value


def env_priorities(name: str, default: frozenset[str]) -> frozenset[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    names = {p.strip().lower() for p in raw.split(",") if p.strip()}
    unknown = names - set(PRIORITIES)
    if unknown:
        log.warning("%s: unknown priorities %s ignored", name, sorted(unknown))
    return frozenset(names & set(PRIORITIES))


@dataclass(frozen=True)
class ProxySettings:
    max_body: int = 64 * MIB
    max_buffered: int = 128 * MIB
    max_connections: int = 4096
    max_per_client: int = 1024
    idle_timeout_s: float = 75.0
    connect_timeout_s: float = 10.0
    load_event_s: float = 1.0
    client_priorities: frozenset[str] = field(default_factory=lambda: frozenset({"normal", "low"}))

    @classmethod
    def from_env(cls) -> ProxySettings:
        d = cls()
        return cls(
            max_body=env_int("THOXDASH_PROXY_MAX_BODY", d.max_body),
            max_buffered=env_int("THOXDASH_PROXY_MAX_BUFFERED", d.max_buffered),
            max_connections=env_int("THOXDASH_PROXY_MAX_CONNECTIONS", d.max_connections, 1),
            max_per_client=env_int("THOXDASH_PROXY_MAX_PER_CLIENT", d.max_per_client),
            idle_timeout_s=env_float("THOXDASH_PROXY_IDLE_S", d.idle_timeout_s, 0.001),
            load_event_s=env_float("THOXDASH_PROXY_LOAD_EVENT_S", d.load_event_s),
            client_priorities=env_priorities("THOXDASH_PROXY_CLIENT_PRIORITY", d.client_priorities),
        )
