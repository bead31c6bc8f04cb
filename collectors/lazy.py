"""Lazy imports for the agent: a module that is loaded on its first attribute access.

The agent must stay small on an 8 GB Orin Nano; optional libraries that only some devices use
(pynvml on dGPU boxes, ...) are bound at import time but executed only when used.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType | None:
    """`name`, to be loaded on first use; None when it is not installed."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return None
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
