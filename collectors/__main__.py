"""`python -m collectors agent|record|replay|proxy` -- see docs/ARCHITECTURE.md for the contracts."""

from __future__ import annotations

import sys

from collectors import slim

if __name__ == "__main__" and sys.argv[1:2] == ["agent"]:
    slim.prepare_agent(sys.argv[2:])  # first: before anything imports redis, ssl or http.client

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from collectors import redis_version  # noqa: E402
from collectors.runtimes import kind_names  # noqa: E402
from collectors.store import (  # noqa: E402
    DEFAULT_URL,
    StoreUnavailable,
    TelemetryStore,
    check_device_id,
    connect,
    ping,
)


def _device(value: str) -> str:
    try:
        return check_device_id(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _host_device() -> str:
    """The host name as a device id (characters a device id cannot hold become '-')."""
    import re
    import socket

    name = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:64].strip("-.") or "localhost"
    try:
        return check_device_id(name)
    except ValueError:
        return "localhost"


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {value!r}")
    return number


def _stop_event() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _store(url: str) -> TelemetryStore:
    store = TelemetryStore(connect(url))
    ping(store.r)
    redis_version.check(store.r, redact_url(url))
    return store


def cmd_agent(args: argparse.Namespace) -> int:
    from collectors.agent import Agent, default_sources
    from collectors.board import describe
    from collectors.buffer import OutboxBuffer
    from collectors.device_config import agent_state

    root = Path(args.root)
    sources = default_sources(root, args.interval)
    if args.once:
        from collectors.agent import Agent as _Agent

        agent = _Agent(args.device, sources, store=None, board=describe(root))
        agent.collect_due(time.time())  # primes per-core CPU counters
        time.sleep(0.5)
        for source in agent.sources:
            agent._next_due[source.name] = 0.0
        records = agent.collect_due(time.time())
        for record in records:
            print(json.dumps(record, ensure_ascii=False))
        agent.close()
        return 0
    store = TelemetryStore(connect(args.redis))
    redis_version.check_at_start(store.r, redact_url(args.redis))  # down: buffer; too old: exit
    spill = Path(args.spill or os.environ.get("THOXDASH_AGENT_SPILL", ".run/agent-spill")) / f"{args.device}.jsonl"
    agent = Agent(args.device, sources, store, buffer=OutboxBuffer(spill_path=spill), board=describe(root))
    agent.device_state = agent_state(root, sources, agent.board)
    try:
        from collectors.actions.executor import attach_executor
    except ImportError:
        pass
    else:
        attach_executor(agent, root=root)
    stop = _stop_event()
    logging.info("agent %s: %d sources, publishing to %s", args.device, len(sources), redact_url(args.redis))
    agent.run(stop)
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from collectors.agent import Agent, default_sources
    from collectors.board import describe
    from collectors.device_config import agent_state
    from collectors.recording import dumps

    root = Path(args.root)
    agent = Agent(args.device, default_sources(root, args.interval), store=None, board=describe(root))
    stop = _stop_event()
    end = time.time() + args.seconds if args.seconds else None
    count = 0
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")  # noqa: SIM115
    with out:
        own = agent_state(root, agent.sources, agent.board)  # the device's config travels with it
        out.write(dumps({"thoxdash_recording": 1, "device": agent.device, "board": agent.board,
                         "config": own["config"], "notes": "recorded by python -m collectors record"}) + "\n")
        while not stop.is_set() and (end is None or time.time() < end):
            for record in agent.collect_due(time.time()):
                out.write(dumps(record) + "\n")
                count += 1
            out.flush()
            stop.wait(0.25)
    agent.close()
    print(f"recorded {count} records to {args.out}", file=sys.stderr)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from collectors.recording import load
    from collectors.replay import replay

    recording = load(args.file)
    store = _store(args.redis)
    stop = _stop_event()
    alive = ollama = None
    if args.root:
        from collectors.demo.runtimes import SimulatedOllama

        ollama = SimulatedOllama().start()
        alive = _demo_executor(recording, store, args.device, Path(args.root), stop, ollama)
    sent = replay(recording, store, args.device, speed=args.speed, loop=args.loop, stop=stop,
                  on_batch=ollama.see if ollama else None)
    stop.set()
    if alive is not None:
        alive.join(5)
    if ollama is not None:
        ollama.stop()
    print(f"replayed {sent} records as device {args.device}", file=sys.stderr)
    return 0


def _demo_executor(recording: Any, store: TelemetryStore, device: str, root: Path,
                   stop: threading.Event, ollama: Any) -> threading.Thread:
    """Make a replayed device act: build the throwaway tree under `root`, execute the device's
    signed actions there (the agent's own executor) and publish the tuning state read from the tree
    in place of the recording's, so an Apply shows up on the checklist and Undo takes it back.
    Runtime actions on ollama go to a simulated Ollama (collectors/demo/runtimes.py)."""
    from collectors.actions.context import load_config
    from collectors.actions.executor import Executor
    from collectors.demo.tree import build, write_allow_list
    from collectors.sources.tuning import TuningSource

    runtimes = recording.config.get("runtimes")
    first: dict[str, Any] = next(
        (r["values"] for r in recording.records if "swap_total_bytes" in (r.get("values") or {})), {}
    )
    build(root, runtimes, swap_total_bytes=first.get("swap_total_bytes") or 32_706_361_344,
          swap_used_bytes=first.get("swap_used_bytes") or 0.0)
    write_allow_list(root, runtimes, {"ollama": ollama.url})
    recording.records = [r for r in recording.records if r.get("source") != "tuning"]
    executor = Executor(store, device, root, config=load_config(root, str(root / "etc/thoxdash/agent.json")))
    tuning = TuningSource(root=root, interval=5.0)

    def loop() -> None:
        next_state = 0.0
        while not stop.is_set():
            now = time.time()
            try:
                handled = executor.poll()
                if handled or now >= next_state:
                    records = tuning.collect(time.time())
                    models = ollama.values()
                    if models:
                        records.append({"ts": time.time(), "source": "runtimes", "values": models})
                    store.publish(device, records)
                    next_state = now + tuning.interval
            except Exception as exc:  # a failure is logged and retried, never ends the replay
                logging.warning("demo executor for %s: %s", device, exc)
            stop.wait(0.5)

    thread = threading.Thread(target=loop, name="demo-executor", daemon=True)
    thread.start()
    logging.info("replay %s: actions execute under %s", device, root)
    return thread


def cmd_proxy(args: argparse.Namespace) -> int:
    from collectors.proxy.server import main as proxy_main

    redis_version.check_at_start(connect(args.redis), redact_url(args.redis))
    return proxy_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m collectors", description="ThoxDash device side")
    sub = parser.add_subparsers(dest="command", required=True)
    redis_default = os.environ.get("REDIS_URL", DEFAULT_URL)

    host = _host_device()
    agent = sub.add_parser("agent", help="collect telemetry and execute signed actions")
    agent.add_argument("--device", type=_device, default=host,
                       help=f"this device's id on the dashboard (default: the host name, {host})")
    agent.add_argument("--redis", default=redis_default,
                       help=f"Redis URL to publish to (default: $REDIS_URL, else {DEFAULT_URL})")
    agent.add_argument("--interval", type=_positive, default=None, help="override every source's interval (s)")
    agent.add_argument("--once", action="store_true", help="print one sample as JSON and exit")
    agent.add_argument("--root", default="/", help="read (and write) /proc and /sys under this tree")
    agent.add_argument("--spill", default=None, help="folder for the outage buffer's spill file")
    agent.set_defaults(func=cmd_agent)

    record = sub.add_parser("record", help="record this machine's telemetry as JSONL")
    record.add_argument("--out", required=True, help="file to write the recording to ('-' for stdout)")
    record.add_argument("--seconds", type=_positive, default=None, help="stop after this many seconds "
                        "(default: until Ctrl-C)")
    record.add_argument("--device", type=_device, default=host,
                        help=f"device id written in the recording's header (default: the host name, {host})")
    record.add_argument("--interval", type=_positive, default=None, help="override every source's interval (s)")
    record.add_argument("--root", default="/", help="read /proc and /sys under this tree")
    record.set_defaults(func=cmd_record)

    rep = sub.add_parser("replay", help="feed a recording into Redis as a live device")
    rep.add_argument("file", help="a recording (JSONL, as written by `record`)")
    rep.add_argument("--device", required=True, type=_device, help="the device id to publish as")
    rep.add_argument("--speed", type=float, default=1.0,
                     help="replay speed: 2 = twice as fast; 0 = everything at once (default 1)")
    rep.add_argument("--loop", action="store_true", help="start again at the end, until stopped")
    rep.add_argument("--redis", default=redis_default,
                     help=f"Redis URL to publish to (default: $REDIS_URL, else {DEFAULT_URL})")
    rep.add_argument("--root", default=None,
                     help="make the device act: build a throwaway sysfs tree here (once), execute its "
                          "actions there and read its tuning state from it (default: actions are off)")
    rep.set_defaults(func=cmd_replay)

    proxy = sub.add_parser("proxy", help="latency-recording reverse proxy")
    proxy.add_argument("--listen", required=True, help="HOST:PORT")
    proxy.add_argument("--upstream", required=True, help="URL of the runtime")
    proxy.add_argument("--runtime", required=True,
                       help="the runtime's name in series labels, e.g. its kind: " + "|".join(kind_names()))
    proxy.add_argument("--device", type=_device, default=host,
                       help=f"device id the requests are recorded under (default: the host name, {host})")
    proxy.add_argument("--redis", default=redis_default,
                       help=f"Redis URL to publish to (default: $REDIS_URL, else {DEFAULT_URL})")
    proxy.set_defaults(func=cmd_proxy)
    return parser


def redact_url(url: str) -> str:
    """A Redis URL fit for logs: the password replaced."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def _password_on_argv(argv: list[str]) -> bool:
    from urllib.parse import urlsplit

    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--redis=") else (
            argv[i + 1] if arg == "--redis" and i + 1 < len(argv) else None)
        if value is not None:
            try:
                if urlsplit(value).password:
                    return True
            except ValueError:
                continue
    return False


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("THOXDASH_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if _password_on_argv(sys.argv[1:] if argv is None else argv):
        print("error: --redis carries a password, which every local user can read on the command line: "
              "put the URL in REDIS_URL (the environment or an EnvironmentFile) instead", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    from collectors.recording import RecordingError
    from collectors.sources.registry import AgentConfigError

    try:
        return int(args.func(args))
    except (StoreUnavailable, redis_version.RedisTooOld) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RecordingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except AgentConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
