"""Admission control for the latency proxy: the throttle the advisor drives.

Limits live in the store's admission hash (`runtime` or `runtime/model` -> JSON) and are re-read at
run time; `Admission.update()` swaps them in without a restart. The most specific scope applies:
`runtime/model` when set, else `runtime`, else no limit (requests are still counted).

Limits (every field optional):
  max_concurrency   requests forwarded at once (default: unlimited)
  max_queue         requests allowed to wait for a slot (default: unlimited)
  retry_after_s     the Retry-After a rejected client is told (default 1)
  queue_timeout_s   a waiting request gives up after this long and is rejected (default 60)
  default_priority  high | normal | low, when the request names none (default normal)

Priority comes from the request header (X-Thoxdash-Priority) or `default_priority`. Waiters are
served high before normal before low, first come first served within a priority. When the queue is
full a normal or low request is rejected at once; a high request always waits (it is never refused
for queue depth, only for its queue timeout).

Everything here runs on the proxy's event loop; only `update` is called from elsewhere, through
`loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any

PRIORITIES = {"high": 0, "normal": 1, "low": 2}
DEFAULT_PRIORITY = "normal"


@dataclass(frozen=True)
class Limits:
    max_concurrency: float = math.inf
    max_queue: float = math.inf
    retry_after_s: float = 1.0
    queue_timeout_s: float = 60.0
    default_priority: str = DEFAULT_PRIORITY

    @classmethod
    def parse(cls, raw: Any) -> Limits:
        """Lenient: a bad field is ignored (the default applies), never an exception."""
        if not isinstance(raw, dict):
            return cls()
        kwargs: dict[str, Any] = {}
        for name, minimum in (
            ("max_concurrency", 0),
            ("max_queue", 0),
            ("retry_after_s", 0),
            ("queue_timeout_s", 0),
        ):
            value = raw.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= minimum:
                kwargs[name] = float(value)
        prio = raw.get("default_priority", raw.get("priority"))
        if prio in PRIORITIES:
            kwargs["default_priority"] = prio
        return cls(**kwargs)


UNLIMITED = Limits()


@dataclass
class Gate:
    """One scope's slots and waiters."""

    scope: str
    active: int = 0
    waiters: list[tuple[int, int, asyncio.Future[bool]]] = field(default_factory=list)

    def waiting(self, rejectable_only: bool = False) -> int:
        return sum(
            1
            for rank, _, fut in self.waiters
            if not fut.done() and (not rejectable_only or rank > 0)
        )


@dataclass
class Ticket:
    gate: Gate | None
    admission: Admission | None
    wait_s: float = 0.0
    priority: str = DEFAULT_PRIORITY
    scope: str | None = None
    rejected: bool = False
    retry_after_s: float = 0.0
    reason: str = ""
    _released: bool = False

    def release(self) -> None:
        if self._released or self.gate is None or self.admission is None:
            return
        self._released = True
        self.gate.active -= 1
        self.admission.pump(self.gate)


class Admission:
    def __init__(self, runtime: str):
        self.runtime = runtime
        self.limits: dict[str, Limits] = {}
        self.gates: dict[str, Gate] = {}
        self._seq = itertools.count()
        self.rejected_total = 0

    # -- configuration ---------------------------------------------------------------------
    def update(self, raw: dict[str, Any]) -> None:
        """Replace every limit (the whole admission hash, as read from the store)."""
        prefix = f"{self.runtime}/"
        self.limits = {
            scope: Limits.parse(value)
            for scope, value in (raw or {}).items()
            if scope == self.runtime or scope.startswith(prefix)
        }
        for gate in self.gates.values():
            self.pump(gate)

    def scope_for(self, model: str | None) -> str:
        if model:
            scoped = f"{self.runtime}/{model}"
            if scoped in self.limits:
                return scoped
        return self.runtime

    def _limits(self, scope: str) -> Limits:
        return self.limits.get(scope, UNLIMITED)

    def _gate(self, scope: str) -> Gate:
        gate = self.gates.get(scope)
        if gate is None:
            gate = self.gates[scope] = Gate(scope)
        return gate

    # -- gauges ------------------------------------------------------------------------------
    def running(self) -> int:
        return sum(g.active for g in self.gates.values())

    def waiting(self) -> int:
        return sum(g.waiting() for g in self.gates.values())

    # -- the gate --------------------------------------------------------------------------
    def try_acquire(self, model: str | None, priority: str | None) -> Ticket | None:
        """A slot at once when one is free and nobody waits (no side effect otherwise): the
        proxy's synchronous fast path. None: call `acquire` (which waits or rejects)."""
        scope = self.scope_for(model)
        limits = self._limits(scope)
        gate = self._gate(scope)
        if gate.active < limits.max_concurrency and (
            not gate.waiters or not any(not f.done() for _, _, f in gate.waiters)
        ):
            gate.active += 1
            return Ticket(
                gate,
                self,
                0.0,
                priority if priority in PRIORITIES else limits.default_priority,
                scope,
            )
        return None

    async def acquire(self, model: str | None, priority: str | None) -> Ticket:
        ticket = self.try_acquire(model, priority)
        if ticket is not None:
            return ticket
        scope = self.scope_for(model)
        limits = self._limits(scope)
        prio = priority if priority in PRIORITIES else limits.default_priority
        rank = PRIORITIES[prio]
        gate = self._gate(scope)
        if rank > 0 and gate.waiting(rejectable_only=True) >= limits.max_queue:
            return self._reject(prio, scope, limits, 0.0, "queue full")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        heapq.heappush(gate.waiters, (rank, next(self._seq), fut))
        started = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout=limits.queue_timeout_s)
        except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
            granted = fut.done() and not fut.cancelled()
            if granted:  # the slot came just as we gave up: hand it back
                gate.active -= 1
                self.pump(gate)
            else:
                fut.cancel()
            self._drop_done(gate)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return self._reject(
                prio, scope, self._limits(scope), time.perf_counter() - started, "queue timeout"
            )
        return Ticket(gate, self, time.perf_counter() - started, prio, scope)

    def _reject(self, prio: str, scope: str, limits: Limits, waited: float, reason: str) -> Ticket:
        self.rejected_total += 1
        return Ticket(
            None,
            None,
            waited,
            prio,
            scope,
            rejected=True,
            retry_after_s=limits.retry_after_s,
            reason=reason,
        )

    def pump(self, gate: Gate) -> None:
        """Grant free slots of `gate` to its waiters, best priority first (a ticket released)."""
        limits = self._limits(gate.scope)
        while gate.waiters and gate.active < limits.max_concurrency:
            _, _, fut = heapq.heappop(gate.waiters)
            if fut.done():
                continue
            gate.active += 1
            fut.set_result(True)
        self._drop_done(gate)

    @staticmethod
    def _drop_done(gate: Gate) -> None:
        if any(f.done() for _, _, f in gate.waiters):
            gate.waiters = [w for w in gate.waiters if not w[2].done()]
            heapq.heapify(gate.waiters)
