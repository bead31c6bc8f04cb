"""The Redis server version ThoxDash needs, checked once at start (agent, proxy, web, worker).

ThoxDash writes stream entries with `<ms>-*` IDs (Redis >= 7.0), and uses XAUTOCLAIM and XTRIM MINID
(>= 6.2). Ubuntu 22.04 (JetPack 6) ships Redis 6.0 in apt: rather than half-working there, every
process refuses such a server at start with one line naming the version found and the one needed
(deploy/install.sh brings a supported Redis). Plain functions, no Django.
"""

from __future__ import annotations

from typing import Any

MIN_VERSION = (7, 0, 0)
WHY = "stream IDs <ms>-*, XAUTOCLAIM and XTRIM MINID"


class RedisTooOld(RuntimeError):
    """The server answers but is older than MIN_VERSION."""


def parse_version(text: str) -> tuple[int, ...]:
    """`7.0.15` -> (7, 0, 15); raises ValueError naming the text when it is not a version."""
    parts = str(text).strip().split(".")
    try:
        numbers = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"not a Redis version: {text!r}") from None
    if not numbers or len(numbers) > 4 or any(n < 0 for n in numbers):
        raise ValueError(f"not a Redis version: {text!r}")
    return numbers


def _fmt(version: tuple[int, ...]) -> str:
    return ".".join(str(n) for n in version)


def problem(version_text: str, where: str = "") -> str | None:
    """One line saying why this server cannot be used, or None when it can."""
    at = f" at {where}" if where else ""
    try:
        found = parse_version(version_text)
    except ValueError as exc:
        return f"Redis{at} reports no usable version ({exc}); ThoxDash needs Redis >= {_fmt(MIN_VERSION)}"
    if found < MIN_VERSION:
        return (f"Redis {_fmt(found)}{at} is too old: ThoxDash needs Redis >= {_fmt(MIN_VERSION)} "
                f"({WHY})")
    return None


def server_version(client: Any) -> str | None:
    """The server's version: HELLO (in @connection, so a device's ACL user may run it; Redis >= 6),
    else INFO server; None when neither is allowed (the check is then skipped). Connection errors
    pass through."""
    import redis

    try:
        reply = client.execute_command("HELLO")
        if isinstance(reply, dict):
            return str(reply.get("version", ""))
        if isinstance(reply, (list, tuple)):
            fields = dict(zip(reply[0::2], reply[1::2], strict=False))
            return str(fields.get("version", ""))
    except redis.ResponseError:
        pass  # Redis < 6 (no HELLO) or HELLO not allowed
    try:
        return str(client.info("server").get("redis_version", ""))
    except redis.ResponseError:  # NOPERM: a restricted user; nothing to check with
        return None


def check(client: Any, where: str = "") -> None:
    """Raise RedisTooOld with one clear line when the server is too old; connection errors pass
    through to the caller (an agent keeps buffering while Redis is down and checks on reconnect)."""
    version = server_version(client)
    if version is None:
        import logging

        logging.getLogger(__name__).warning("cannot read the Redis version (HELLO and INFO not allowed); "
                                            "ThoxDash needs Redis >= %s", _fmt(MIN_VERSION))
        return
    line = problem(version, where)
    if line is not None:
        raise RedisTooOld(line)


def check_at_start(client: Any, where: str = "") -> bool:
    """`check`, except that an unreachable server is not an error here (False: not checked yet).
    True when the server was checked and is recent enough; RedisTooOld when it is not."""
    import redis

    try:
        check(client, where)
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    return True


def require_at_start(client: Any, where: str = "") -> None:
    """For process entry points: print the one line and exit 2 when the server is too old."""
    import sys

    try:
        check_at_start(client, where)
    except RedisTooOld as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
