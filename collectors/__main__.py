"""`python -m collectors agent|record|replay|proxy` -- see DESIGN.md for the contracts."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from collectors.store import (
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
    logging.info("agent %s: %d sources, publishing to %s", args.device, len(sources), args.redis)
    agent.run(stop)
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from collectors.agent import Agent, default_sources
    from collectors.board import describe
    from collectors.recording import dumps

    root = Path(args.root)
    agent = Agent(args.device or "recorded", default_sources(root, args.interval), store=None, board=describe(root))
    stop = _stop_event()
    end = time.time() + args.seconds if args.seconds else None
    count = 0
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")  # noqa: SIM115
    with out:
        out.write(dumps({"thoxdash_recording": 1, "device": agent.device, "board": agent.board,
                         "notes": "recorded by python -m collectors record"}) + "\n")
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
    sent = replay(recording, store, args.device, speed=args.speed, loop=args.loop, stop=stop)
    print(f"replayed {sent} records as device {args.device}", file=sys.stderr)
    return 0


def cmd_proxy(args: argparse.Namespace) -> int:
    from collectors.proxy.server import main as proxy_main

    return proxy_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m collectors", description="ThoxDash device side")
    sub = parser.add_subparsers(dest="command", required=True)
    redis_default = os.environ.get("REDIS_URL", DEFAULT_URL)

    agent = sub.add_parser("agent", help="collect telemetry and execute signed actions")
    agent.add_argument("--device", required=True, type=_device)
    agent.add_argument("--redis", default=redis_default)
    agent.add_argument("--interval", type=_positive, default=None, help="override every source's interval (s)")
    agent.add_argument("--once", action="store_true", help="print one sample as JSON and exit")
    agent.add_argument("--root", default="/", help="read (and write) /proc and /sys under this tree")
    agent.add_argument("--spill", default=None, help="folder for the outage buffer's spill file")
    agent.set_defaults(func=cmd_agent)

    record = sub.add_parser("record", help="record this machine's telemetry as JSONL")
    record.add_argument("--out", required=True)
    record.add_argument("--seconds", type=_positive, default=None)
    record.add_argument("--device", type=_device, default=None)
    record.add_argument("--interval", type=_positive, default=None)
    record.add_argument("--root", default="/")
    record.set_defaults(func=cmd_record)

    rep = sub.add_parser("replay", help="feed a recording into Redis as a live device")
    rep.add_argument("file")
    rep.add_argument("--device", required=True, type=_device)
    rep.add_argument("--speed", type=float, default=1.0)
    rep.add_argument("--loop", action="store_true")
    rep.add_argument("--redis", default=redis_default)
    rep.set_defaults(func=cmd_replay)

    proxy = sub.add_parser("proxy", help="latency-recording reverse proxy")
    proxy.add_argument("--listen", required=True, help="HOST:PORT")
    proxy.add_argument("--upstream", required=True, help="URL of the runtime")
    proxy.add_argument("--runtime", required=True, help="ollama|openai|llamacpp|vllm|tensorrt_llm|triton")
    proxy.add_argument("--device", required=True, type=_device)
    proxy.add_argument("--redis", default=redis_default)
    proxy.set_defaults(func=cmd_proxy)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("THOXDASH_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    from collectors.recording import RecordingError
    from collectors.sources.registry import AgentConfigError

    try:
        return args.func(args)
    except StoreUnavailable as exc:
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
