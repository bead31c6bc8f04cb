"""What the agent leaves out of memory: the modules redis-py imports that a device does not use.

The agent shares an 8 GB board with the models, so its resident size is a feature (target <= 30 MiB
peak RSS at default intervals; bench/agent_cost.py measures it beside node_exporter). `import redis`
alone takes a bare Python 3.11 from 8.4 to 28 MiB, and two parts of that serve nothing on a device
whose URLs are all plain `redis://` and `http://` (measured with ru_maxrss, one import each into a
bare interpreter on this machine):

- `ssl` (+6.3 MiB alone: OpenSSL's libssl plus the module's tables). redis-py, asyncio and
  http.client all import it inside `try: ... except ImportError`, so a process that never speaks
  TLS can leave it out: `sys.modules["ssl"] = None` makes `import ssl` raise ImportError, which
  each of them already handles (redis-py sets SSL_AVAILABLE False, http.client leaves out
  HTTPSConnection). Left out only when no URL the agent is configured with at start uses TLS:
  the Redis URL and every runtime URL in the runtime and allow-list config files.
- `importlib.metadata` (+6.5 MiB alone: email, zipfile, csv): redis-py imports it at start for the
  one call that finds its own version for CLIENT SETINFO. `collectors.store.connect` passes that
  version, so the module is bound lazily (loaded on first attribute use, which then never comes).
- `redis.asyncio`: `import redis` imports the asyncio client, which the synchronous agent never
  uses (and whose class definitions read `ssl` attributes): bound lazily as well.

- `prometheus_client`'s package `__init__` (+2.0 MiB in the agent, and it imports ssl
  unconditionally for its HTTPS exposition): a runtime's /metrics needs only its text parser, so
  `prometheus_text_parser()` loads `prometheus_client.parser` without running the package's
  `__init__` in an agent that left ssl out (+0.1 MiB); any other process imports it as usual.

`prepare_agent(argv, environ)` must run before anything imports redis, http.client or asyncio
(collectors/__main__.py calls it first for `agent`). If the installed redis-py does not import
with these left out, the agent undoes them and imports everything, with one warning; tests/
test_agent_slim.py checks that the pinned release does.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import logging
import os
import sys
import threading
import types
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TLS_SCHEMES = ("https://", "rediss://")
LAZY = ("importlib.metadata",)
LAZY_REDIS = ("redis.asyncio",)


def mentions_tls(texts: Iterable[str]) -> bool:
    """Whether any text (a URL or a config file's content) names a TLS URL; case-insensitive, so a
    config that merely mentions one keeps TLS loaded (the safe side)."""
    return any(scheme in text.lower() for text in texts for scheme in TLS_SCHEMES)


def agent_config_texts(argv: list[str], environ: Mapping[str, str]) -> list[str]:
    """The agent's Redis URL and the text of every config file that can name a runtime URL (the
    runtime specs, the action allow-list), as `python -m collectors agent ARGV` will read them."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--redis", default=environ.get("REDIS_URL", ""))
    parser.add_argument("--root", default="/")
    known, _ = parser.parse_known_args(argv)
    paths = [environ.get("THOXDASH_AGENT_RUNTIMES"), environ.get("THOXDASH_AGENT_CONFIG"),
             str(Path(known.root) / "etc/thoxdash/agent.json")]
    texts = [known.redis]
    for path in paths:
        if not path:
            continue
        try:
            texts.append(Path(path).read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue  # a missing or unreadable file is reported by the code that reads it
    return texts


def _bind_lazily(name: str, search: list[str] | None = None) -> bool:
    """Put a not-yet-executed module `name` in sys.modules (executed on first attribute use)."""
    if name in sys.modules:
        return False
    # a submodule of a package not yet executed is found on the package's path, without executing it
    spec = (importlib.util.find_spec(name) if search is None
            else importlib.machinery.PathFinder.find_spec(name, search))
    if spec is None or spec.loader is None:
        return False
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent in sys.modules:  # so `from parent import child` finds it without an import (which
        setattr(sys.modules[parent], child, module)  # would read __spec__ and so load it)
    return True


def leave_out(tls: bool) -> list[str]:
    """Leave out what the agent does not use (see the module docstring); returns what was left out.
    `tls`: whether a configured URL needs TLS (then ssl stays)."""
    if "redis" in sys.modules:
        return []  # too late: redis-py is loaded with all it imports
    done: list[str] = []
    if not tls and "ssl" not in sys.modules:
        sys.modules["ssl"] = None  # type: ignore[assignment]  # `import ssl` raises ImportError
        done.append("ssl")
    done += [name for name in LAZY if _bind_lazily(name)]
    redis_spec = importlib.util.find_spec("redis")
    if redis_spec is not None and redis_spec.submodule_search_locations is not None:
        search = list(redis_spec.submodule_search_locations)
        done += [name for name in LAZY_REDIS if _bind_lazily(name, search)]
    try:
        import redis  # noqa: F401  # the pinned redis-py imports without what was left out
    except Exception as exc:  # a redis-py that needs them at import: undo, load everything
        undo(done)
        log.warning("agent: redis-py does not import without %s (%s: %s); loading everything",
                    ", ".join(done), exc.__class__.__name__, exc)
        return []
    return done


def undo(done: list[str]) -> None:
    """Take back what `leave_out` did, forgetting any half-imported redis modules."""
    for name in [n for n in sys.modules if n == "redis" or n.startswith("redis.")]:
        del sys.modules[name]
    for name in done:
        module = sys.modules.pop(name, None)
        parent, _, child = name.rpartition(".")
        if module is not None and parent in sys.modules and getattr(sys.modules[parent], child, None) is module:
            delattr(sys.modules[parent], child)  # the lazy stand-in goes too: the next import is real


def prepare_agent(argv: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """For `python -m collectors agent ARGV`: leave out ssl when no configured URL uses TLS, and
    bind importlib.metadata and redis.asyncio lazily. THOXDASH_AGENT_SLIM=0 turns this off."""
    environ = os.environ if environ is None else environ
    if environ.get("THOXDASH_AGENT_SLIM", "1").strip().lower() in ("0", "false", "no", "off"):
        return []
    return leave_out(tls=mentions_tls(agent_config_texts(argv, environ)))


_parser_lock = threading.Lock()
_parser: Callable[[str], Iterable[Any]] | None = None


def prometheus_text_parser() -> Callable[[str], Iterable[Any]]:
    """prometheus_client's `text_string_to_metric_families`. Where ssl was left out (the agent) and
    prometheus_client is not loaded, its `parser` module is loaded under a bare package module
    standing in for `prometheus_client` (whose `__init__` is never run), removed again afterwards
    so that a later `import prometheus_client` runs the real one."""
    global _parser
    with _parser_lock:
        if _parser is not None:
            return _parser
        if sys.modules.get("ssl", "") is not None or "prometheus_client" in sys.modules:
            from prometheus_client.parser import text_string_to_metric_families
        else:
            spec = importlib.util.find_spec("prometheus_client")
            if spec is None or not spec.submodule_search_locations:
                raise ImportError("prometheus_client is not installed")
            package = types.ModuleType("prometheus_client", "stands in while the parser loads: collectors/slim.py")
            package.__path__ = list(spec.submodule_search_locations)
            package.__package__ = "prometheus_client"
            sys.modules["prometheus_client"] = package
            try:
                text_string_to_metric_families = importlib.import_module(
                    "prometheus_client.parser").text_string_to_metric_families
            finally:
                if sys.modules.get("prometheus_client") is package:
                    del sys.modules["prometheus_client"]
        _parser = text_string_to_metric_families
        return _parser


def redis_driver_info() -> dict[str, Any]:
    """Keyword arguments giving redis-py its own version for CLIENT SETINFO, so that it need not
    look it up with importlib.metadata (left unloaded in the agent)."""
    import redis

    version = getattr(redis, "__version__", None)
    if not isinstance(version, str):
        return {}
    try:
        from redis.driver_info import DriverInfo
    except ImportError:  # redis-py before 7: the plain keyword
        return {"lib_version": version}
    return {"driver_info": DriverInfo(lib_version=version)}
