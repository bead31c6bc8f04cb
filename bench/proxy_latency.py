"""Added latency of the ThoxDash latency proxy vs nginx, in front of the same upstream.

    .venv/bin/python -m bench.proxy_latency [--requests 500] [--rounds 3] [--runs 1] [--gap-ms 5]
        [--chunks 3|10,160] [--fresh] [--compare ENV=VALUE] [--baseline DIR] [--redis URL]

Long streams like real LLM answers, a fresh connection per request, before/after in one run:
    git archive <old commit> | tar -x -C /tmp/old
    .venv/bin/python -m bench.proxy_latency --concurrency 1 --chunks 10,160 --gap-ms 2 --fresh \
        --requests 30 --runs 3 --baseline /tmp/old

Starts, on free loopback ports:
  - a minimal streaming upstream (Ollama-style NDJSON over chunked HTTP/1.1: a first chunk with
    output at once, then `--chunks` more `--gap-ms` apart, then the final timing chunk; the
    request's `?chunks=N` picks N, so one upstream serves every chunk count),
  - nginx (Debian's nginx-light) as a streaming reverse proxy (proxy_buffering off, upstream
    keepalive) with a private config in a temp dir,
  - `python -m collectors proxy` (publishing its records to Redis as in production),
and drives all three with the same keep-alive HTTP/1.1 load at concurrency 1 and 32, interleaving
the targets round by round so machine noise hits them alike. For every request it measures the
time to the first body chunk (TTFT) and to the end of the body; it prints p50/p99 of each and the
latency each proxy adds over calling the upstream directly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# -- the upstream: a tiny HTTP/1.1 server, run in its own process --------------------------


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def upstream_main(port: int, chunks: int, gap_s: float) -> None:
    piece = (
        json.dumps(
            {
                "model": "bench",
                "created_at": "2026-11-23T12:00:00Z",
                "response": "tok",
                "done": False,
            }
        ).encode()
        + b"\n"
    )
    final = (
        json.dumps(
            {
                "model": "bench",
                "response": "",
                "done": True,
                "done_reason": "stop",
                "total_duration": 1_000_000,
                "load_duration": 10_000,
                "prompt_eval_count": 4,
                "prompt_eval_duration": 100_000,
                "eval_count": chunks + 1,
                "eval_duration": 800_000,
            }
        ).encode()
        + b"\n"
    )
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readuntil(b"\r\n\r\n")
                length, n = 0, chunks
                target = header.split(b" ", 2)[1]
                if b"?chunks=" in target:
                    n = int(target.rsplit(b"=", 1)[1])
                for line in header.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                writer.write(head + _chunk(piece))
                for _ in range(n):
                    if gap_s:
                        await asyncio.sleep(gap_s)
                    writer.write(_chunk(piece))
                writer.write(_chunk(final) + b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


# -- the load generator ---------------------------------------------------------------------

BODY = json.dumps({"model": "bench", "prompt": "Say hello", "stream": True}).encode()


async def one_connection(
    port: int, n: int, out: list[tuple[float, float]], chunks: int, fresh: bool
) -> None:
    """`n` requests one after the other: on one kept-alive connection, or (`fresh`) each on a new
    connection (connect time included, as a client that does not keep connections alive sees)."""
    request = (
        b"POST /api/generate?chunks=%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (chunks, port, len(BODY), BODY)
    )
    reader = writer = None
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            if writer is None or fresh:
                if writer is not None:
                    writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert reader is not None
            writer.write(request)
            header = await reader.readuntil(b"\r\n\r\n")
            if b" 200 " not in header.split(b"\r\n", 1)[0]:
                raise RuntimeError(f"bad status: {header[:80]!r}")
            first = None
            while True:  # chunked body
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                await reader.readexactly(size + 2)
                if first is None:
                    first = time.perf_counter()
            end = time.perf_counter()
            out.append((first - t0, end - t0))
    finally:
        if writer is not None:
            writer.close()


async def load(
    port: int, concurrency: int, total: int, chunks: int, fresh: bool = False
) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    per = max(1, total // concurrency)
    await asyncio.gather(
        *(one_connection(port, per, out, chunks, fresh) for _ in range(concurrency))
    )
    return out


# -- orchestration ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on {port}")


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  upstream runtime {{ server 127.0.0.1:{up}; keepalive 128; keepalive_requests 1000000; }}
  server {{
    listen 127.0.0.1:{port} backlog=1024;
    location / {{
      proxy_pass http://runtime;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
    }}
  }}
}}
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (nginx's worker), from /proc."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            children = (task / "children").read_text().split()
            pids += [int(c) for c in children]
    for p in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def thread_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process's main thread (the proxy's event loop)."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=500, help="requests per target per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--runs", type=int, default=1, help="repeat the whole measurement; print medians over runs"
    )
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument(
        "--chunks",
        default="3",
        help="chunks after the first, or a list (10,160: each measured; the added time per chunk "
        "is printed from the first and last)",
    )
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=5.0,
        help="gap between upstream chunks (5 ms = 200 tok/s per stream, faster than any "
        "Jetson decodes; 0 = a saturation test of the proxy itself)",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="a new client connection for every request"
    )
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    parser.add_argument(
        "--compare",
        default=None,
        metavar="ENV=VALUE[,ENV=VALUE]",
        help="also run a second ThoxDash proxy ('thoxdash-b') with these environment variables, "
        "interleaved with the others (an A/B of a setting in the same run)",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="DIR",
        help="also run the ThoxDash proxy of another source tree ('thoxdash-old', e.g. an "
        "unpacked `git archive` of the commit before a change): a before/after in one run",
    )
    parser.add_argument("--upstream-only", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    chunk_counts = [int(c) for c in str(args.chunks).split(",")]
    if args.upstream_only:
        _run(upstream_main(args.upstream_only, chunk_counts[0], args.gap_ms / 1000))
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="thox-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        up, ng, px = free_port(), free_port(), free_port()
        upstream_cmd = [sys.executable, __file__, "--upstream-only", str(up)]
        upstream_cmd += ["--chunks", str(chunk_counts[0]), "--gap-ms", str(args.gap_ms)]
        procs.append(subprocess.Popen(upstream_cmd))
        wait_port(up, procs[-1], "upstream")
        for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (tmp / d).mkdir()
        (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, up=up, port=ng))
        procs.append(subprocess.Popen([args.nginx, "-c", str(tmp / "nginx.conf"), "-p", str(tmp)]))
        wait_port(ng, procs[-1], "nginx")
        env = {
            **os.environ,
            "THOXDASH_PROXY_SPILL": str(tmp / "spill"),
            "THOXDASH_LOG_LEVEL": "WARNING",
            "THOXDASH_REDIS_PREFIX": os.environ.get("THOXDASH_REDIS_PREFIX", "thoxbench:"),
        }

        def thoxdash(port: int, extra: dict[str, str], src: Path = ROOT) -> subprocess.Popen:
            cmd = [sys.executable, "-m", "collectors", "proxy", "--listen", f"127.0.0.1:{port}"]
            cmd += ["--upstream", f"http://127.0.0.1:{up}", "--runtime", "ollama"]
            cmd += ["--device", "bench", "--redis", args.redis]
            proc = subprocess.Popen(cmd, cwd=str(src), env={**env, **extra})
            wait_port(port, proc, "thoxdash proxy")
            return proc

        procs.append(thoxdash(px, {}))
        targets = {"direct": up, "nginx": ng, "thoxdash": px}
        pids = {"direct": procs[0].pid, "nginx": procs[1].pid, "thoxdash": procs[2].pid}
        extras: list[tuple[str, dict[str, str], Path]] = []
        if args.compare:
            extras.append(("thoxdash-b", dict(kv.split("=", 1) for kv in args.compare.split(",")), ROOT))
        if args.baseline:
            extras.append(("thoxdash-old", {}, Path(args.baseline).resolve()))
        for name, extra, src in extras:
            port = free_port()
            procs.append(thoxdash(port, extra, src))
            targets[name], pids[name] = port, procs[-1].pid
            print(f"{name}: {extra or ''} {src}")
        nginx_version = subprocess.run(
            [args.nginx, "-v"], capture_output=True, text=True
        ).stderr.strip()
        print(
            f"upstream: {'/'.join(str(c + 2) for c in chunk_counts)} NDJSON chunks, {args.gap_ms} ms"
            f" apart; {'a fresh connection per request' if args.fresh else 'kept-alive connections'}"
            f"; {args.rounds} rounds x {args.requests} requests per target; cpus={os.cpu_count()}; "
            f"python {sys.version.split()[0]}; {nginx_version}"
        )
        figures: dict[tuple[int, int], list[dict[str, float]]] = {}
        for run in range(args.runs):
            if args.runs > 1:
                print(f"\n=== run {run + 1} of {args.runs}")
            for conc in (int(c) for c in args.concurrency.split(",")):
                for chunks in chunk_counts:
                    samples: dict[str, list[tuple[float, float]]] = {t: [] for t in targets}
                    for port in targets.values():  # warm-up: connections, caches
                        _run(load(port, conc, max(conc * 4, 50), chunks, args.fresh))
                    cpu = dict.fromkeys(targets, 0.0)
                    loop_cpu = dict.fromkeys(targets, 0.0)
                    for _ in range(args.rounds):
                        for name, port in targets.items():
                            before = cpu_seconds(pids[name])
                            loop_before = thread_cpu_seconds(pids[name])
                            samples[name] += _run(load(port, conc, args.requests, chunks, args.fresh))
                            cpu[name] += cpu_seconds(pids[name]) - before
                            loop_cpu[name] += thread_cpu_seconds(pids[name]) - loop_before
                    print(f"\n{chunks + 2} chunks per response", end="")
                    figures.setdefault((conc, chunks), []).append(report(conc, samples, cpu, loop_cpu))
        summary(figures, [t for t in targets if t not in ("direct", "nginx")])
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


FIGURES = ("added p50", "added p99", "+ttft p50", "+ttft p99", "cpu us", "loop cpu us")


def summary(figures: dict[tuple[int, int], list[dict[str, float]]], ours: list[str]) -> None:
    """Medians over the runs of each figure with its ratio to nginx; with several chunk counts,
    the added time per chunk (from the first and the last count)."""
    print(f"\nmedians over {len(next(iter(figures.values())))} runs (ms; CPU in us per request)")
    print(f"{'conc':>4} {'chunks':>6} {'figure':<11} {'nginx':>8}" + "".join(f" {n:>12} {'ratio':>6}" for n in ours))
    med: dict[tuple[int, int, str], float] = {}
    for (conc, chunks), runs in figures.items():
        for fig in FIGURES:
            ng = med[conc, chunks, f"nginx {fig}"] = statistics.median(r[f"nginx {fig}"] for r in runs)
            row = f"{conc:>4} {chunks + 2:>6} {fig:<11} {ng:8.3f}"
            for name in ours:
                tx = med[conc, chunks, f"{name} {fig}"] = statistics.median(r[f"{name} {fig}"] for r in runs)
                row += f" {tx:12.3f} " + (f"{tx / ng:6.2f}" if ng > 0 else "     -")
            print(row)
    counts = sorted({chunks for _, chunks in figures})
    if len(counts) > 1:
        lo, hi = counts[0], counts[-1]
        print(f"\nadded time per chunk, median added p50 at {hi + 2} minus at {lo + 2} chunks (us)")
        for conc in sorted({c for c, _ in figures}):
            row = f"{conc:>4} " + "".join(
                f" {n} {(med[conc, hi, f'{n} added p50'] - med[conc, lo, f'{n} added p50']) * 1000 / (hi - lo):6.1f}"
                for n in ["nginx", *ours]
            )
            print(row)


def report(
    conc: int,
    samples: dict[str, list[tuple[float, float]]],
    cpu: dict[str, float],
    loop_cpu: dict[str, float],
) -> dict[str, float]:
    """Print one measurement; return its figures per proxy (for `summary`)."""
    out: dict[str, float] = {}
    ms = 1000.0
    base = samples["direct"]
    b_ttft = [s[0] for s in base]
    b_total = [s[1] for s in base]
    print(f"\nconcurrency {conc}  ({len(base)} requests per target)")
    print(
        f"{'target':<10} {'ttft p50':>9} {'ttft p99':>9} {'total p50':>10} {'total p99':>10}"
        f" | {'added p50':>9} {'added p99':>9} {'+ttft p50':>9} {'+ttft p99':>9}  (ms)"
    )
    for name, vals in samples.items():
        ttft = [s[0] for s in vals]
        total = [s[1] for s in vals]
        row = (
            f"{name:<10} {pct(ttft, 0.5) * ms:9.3f} {pct(ttft, 0.99) * ms:9.3f} "
            f"{pct(total, 0.5) * ms:10.3f} {pct(total, 0.99) * ms:10.3f}"
        )
        if name != "direct":
            out[f"{name} added p50"] = (pct(total, 0.5) - pct(b_total, 0.5)) * ms
            out[f"{name} added p99"] = (pct(total, 0.99) - pct(b_total, 0.99)) * ms
            out[f"{name} +ttft p50"] = (pct(ttft, 0.5) - pct(b_ttft, 0.5)) * ms
            out[f"{name} +ttft p99"] = (pct(ttft, 0.99) - pct(b_ttft, 0.99)) * ms
            out[f"{name} cpu us"] = cpu[name] / len(vals) * 1e6
            out[f"{name} loop cpu us"] = loop_cpu[name] / len(vals) * 1e6
            row += (
                f" | {(pct(total, 0.5) - pct(b_total, 0.5)) * ms:9.3f}"
                f" {(pct(total, 0.99) - pct(b_total, 0.99)) * ms:9.3f}"
                f" {(pct(ttft, 0.5) - pct(b_ttft, 0.5)) * ms:9.3f} {(pct(ttft, 0.99) - pct(b_ttft, 0.99)) * ms:9.3f}"
            )
        print(row)
    print(
        "(mean total: "
        + ", ".join(f"{n} {statistics.fmean(s[1] for s in v) * ms:.3f}" for n, v in samples.items())
        + " ms)"
    )
    print(
        "(CPU per request, user+system: "
        + ", ".join(f"{n} {cpu[n] / len(v) * 1e6:.0f} us" for n, v in samples.items())
        + "; direct = the upstream itself)"
    )
    print(
        "(CPU per request of the main thread (the event loop): "
        + ", ".join(f"{n} {loop_cpu[n] / len(v) * 1e6:.0f} us" for n, v in samples.items())
        + ")"
    )
    return out


def _run(coro):
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


if __name__ == "__main__":
    sys.exit(main())
