"""Every Redis key ThoxDash uses, named in one place (prefix `thox:` by default, configurable so
tests isolate themselves). Nothing else builds a key string.

Global keys:
  {p}devices                 hash   the device registry, server-owned (collectors/registry.py):
                                    device id -> JSON {board, notes, enrolled, ...}; device Redis
                                    users have no access to it (deploy/redis ACL)
  {p}lock:{name}             string a short-lived lock (SET NX EX), e.g. `lock:notify-sweep`
Per device (`{p}dev:{id}:...`):
  telemetry                  stream values + state records (field `j`: the record as JSON)
  requests                   stream finished inference requests
  events                     stream events (model_loaded, oom_kill, action_applied, ...)
  latest                     hash   series key -> latest value, plus `__ts`; also
                                    `ingest_rejected_total` (records refused at ingest)
  state                      hash   tuning/state key -> JSON value, plus `__ts`
  actions                    stream action requests the agent consumes (consumer group ACTION_GROUP)
  action_results             stream what the agent did with each action
  action_log                 hash   request id -> the agent's record of it (result, saved old values
                                    for undo); also what makes requests idempotent
  rulememo                   string JSON memo of the rules' per-device state (TTL RULE_MEMO_TTL_S)
  rollup:{step}              stream per-step means for long ranges (written by Celery)
  admission                  hash   "runtime" or "runtime/model" -> JSON admission limits the
                                    latency proxy enforces (max_concurrency, max_queue, ...)
  info                       string JSON {board}: what the device reports about itself (its own key)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
LOCK_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
ACTION_GROUP = "agent"  # the consumer group of every device's `actions` stream
REJECTED_FIELD = "ingest_rejected_total"  # in the `latest` hash: a counter series like any other
RULE_MEMO_TTL_S = 7 * 86_400


def check_device_id(device: str) -> str:
    if not isinstance(device, str) or not DEVICE_ID.match(device):
        raise ValueError(f"invalid device id {device!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return device


@dataclass(frozen=True)
class GlobalKeys:
    prefix: str

    @property
    def devices(self) -> str:
        return f"{self.prefix}devices"

    def lock(self, name: str) -> str:
        if not LOCK_NAME.match(name):
            raise ValueError(f"invalid lock name {name!r}")
        return f"{self.prefix}lock:{name}"


@dataclass(frozen=True)
class Keys:
    prefix: str
    device: str

    def __post_init__(self) -> None:
        check_device_id(self.device)

    def stream(self, name: str) -> str:
        return f"{self.prefix}dev:{self.device}:{name}"

    @property
    def telemetry(self) -> str:
        return self.stream("telemetry")

    @property
    def requests(self) -> str:
        return self.stream("requests")

    @property
    def events(self) -> str:
        return self.stream("events")

    @property
    def latest(self) -> str:
        return self.stream("latest")

    @property
    def state(self) -> str:
        return self.stream("state")

    @property
    def actions(self) -> str:
        return self.stream("actions")

    @property
    def action_results(self) -> str:
        return self.stream("action_results")

    @property
    def action_log(self) -> str:
        return self.stream("action_log")

    @property
    def rulememo(self) -> str:
        return self.stream("rulememo")

    @property
    def admission(self) -> str:
        return self.stream("admission")

    @property
    def info(self) -> str:
        return self.stream("info")

    def rollup(self, step_s: int) -> str:
        return self.stream(f"rollup:{step_s}")
