"""The allow-list: the only actions the agent knows. Anything else is rejected by name."""

from __future__ import annotations

from collectors.actions.base import Action
from collectors.actions.knobs import CgroupMemory, GpuRuntimePM, IrqAffinity, SetGovernor, SetTHP
from collectors.actions.runtime import Evict, Throttle
from collectors.actions.tools import (
    JetsonClocks,
    NvpModel,
    RestartContainer,
    ServiceAction,
    SwapOff,
)

ACTIONS: dict[str, Action] = {a.name: a for a in (
    SetGovernor(), SetTHP(), IrqAffinity(), GpuRuntimePM(), CgroupMemory(), JetsonClocks(), NvpModel(),
    SwapOff(), ServiceAction(), RestartContainer(), Evict(), Throttle(),
)}
# Two meta-requests handled by the executor itself:
#   batch: {"steps": [{"action", "params"}, ...]} -- safe actions only ("apply recommended tuning")
#   undo:  {"request_id": "..."}                  -- restore what that request saved
META = ("batch", "undo")
MAX_BATCH = 32


def known(name: str) -> bool:
    return name in ACTIONS or name in META
