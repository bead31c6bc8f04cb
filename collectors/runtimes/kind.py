"""What a runtime kind is: one `RuntimeKind` description per `collectors/runtimes/<kind>.py`.

Everything ThoxDash knows about a kind lives in its description, and every list elsewhere
(admin clients, the agent's default runtimes, default ceilings, the settings form, the canary,
the latency scrape, the proxy's inference paths, busy replies and response parsing) is derived
from the registry in `collectors/runtimes/__init__.py`. Adding a runtime = one module + its tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collectors.runtimes.base import RuntimeClient
    from collectors.runtimes.scrape import Scrape


@dataclass
class Times:
    """When a response's parts arrived (perf_counter seconds), for a shape's `fields`."""

    t_forward: float
    first_byte_t: float | None
    first_output_t: float | None
    last_output_t: float | None
    streaming: bool
    output_chunks: int


@dataclass(frozen=True)
class ResponseShape:
    """How one family of runtimes writes a response object, streamed (NDJSON/SSE) or not.

    `observe(obj, seen)` looks at one JSON object, keeps what it needs in `seen` (a dict private to
    one response; `seen["done_reason"]` is shared) and returns True when the object carries output
    (a token). `fields(seen, out, times)` adds the request-record fields it can vouch for to `out`
    (shapes run in registry order; later shapes only fill what earlier ones left)."""

    name: str
    observe: Callable[[dict[str, Any], dict[str, Any]], bool]
    fields: Callable[[dict[str, Any], dict[str, Any], Times], None]


@dataclass(frozen=True)
class Endpoint:
    """An inference path (regex on the URL path, without query) and how it streams."""

    pattern: str
    stream: str  # "sse" | "ndjson" | "json" (no streaming)


@dataclass(frozen=True)
class AdminCalls:
    """The runtime's own admin calls, as documentation and for the conformance table."""

    health: str = ""
    list: str = ""
    load: str = ""
    unload: str = ""


@dataclass(frozen=True)
class RuntimeKind:
    name: str
    title: str
    client: type[RuntimeClient] | None = None
    aliases: tuple[str, ...] = ()
    default_port: int | None = None
    process_names: tuple[str, ...] = ()
    process_cmdline: tuple[str, ...] = ()  # regexes on the joined argv
    port_of: Callable[[list[str]], int | None] | None = None  # the port a process listens on, from argv
    default_ceiling_bytes: float | None = None
    default_priority: str = "background"
    default_runtime: bool = True  # in the agent's default runtime list
    inference: tuple[Endpoint, ...] = ()
    shape: ResponseShape | None = None
    client_paths: tuple[str, ...] = ()  # path prefixes only this kind's clients use (busy/error style)
    plain_errors: bool = False  # its clients expect {"error": "text"}, not OpenAI's error object
    busy: Callable[[str, int], tuple[int, dict[str, Any]]] | None = None  # (message, retry_s) -> reply
    control: Callable[[str, dict[str, Any]], bool] | None = None  # (path, body) -> load/unload request?
    scrape: Callable[[Scrape, dict[str, float | None]], None] | None = None
    canary: Callable[[str, str, int], tuple[str, dict[str, Any]]] | None = None  # (model, prompt, n)
    admin: AdminCalls = field(default_factory=AdminCalls)
    # series this kind's client writes whose names end in _total but are gauges (exported without it)
    total_gauges: tuple[str, ...] = ()
    notes: str = ""

    @property
    def default_url(self) -> str | None:
        return f"http://127.0.0.1:{self.default_port}" if self.default_port else None

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


def flag_port(flags: tuple[str, ...], default: int | None) -> Callable[[list[str]], int | None]:
    """A `port_of` reading `--port N` / `--port=N` (any of `flags`) from argv, else `default`."""

    def port_of(argv: list[str]) -> int | None:
        for i, arg in enumerate(argv):
            for flag in flags:
                value = None
                if arg == flag and i + 1 < len(argv):
                    value = argv[i + 1]
                elif arg.startswith(flag + "="):
                    value = arg[len(flag) + 1:]
                if value is not None and re.fullmatch(r"\d{1,5}", value):
                    return int(value)
        return default

    return port_of


def openai_error(message: str, type_: str, code: int) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code}}
