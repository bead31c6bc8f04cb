"""Runs INSIDE the private mount namespace made by ns.sh (so /sys and /proc are the fake tree).

  python -m tests.jtop_sim.driver serve          the real jtop service (version from PYTHONPATH)
  python -m tests.jtop_sim.driver hold SECONDS   a plain jtop client at a 2 s interval ("another client")
  python -m tests.jtop_sim.driver scenario       every case the test checks; one JSON object per line

One shim, for the x86 test machine only: platform.machine() answers 'aarch64', or jetson-stats
takes its non-Jetson path. Everything else is the unmodified jetson-stats code.
"""

from __future__ import annotations

import platform

platform.machine = lambda: "aarch64"

import contextlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

SOCKET = Path("/run/jtop.sock")


def emit(step: str, **data: Any) -> None:
    print(json.dumps({"step": step, **data}, default=str), flush=True)


def serve() -> None:
    from jtop.service import JtopServer

    server = JtopServer(force=True)
    server.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.is_set() and server.is_alive():
        stop.wait(0.2)
    server.close()


def hold(seconds: float) -> None:
    from jtop import jtop

    with jtop(interval=2.0) as jetson:
        print(f"connected {jetson.interval}", flush=True)
        time.sleep(seconds)


STARTED: list[subprocess.Popen] = []  # every child process group, killed when the scenario ends


class Service:
    """The jtop service in its own process group, like a systemd unit."""

    def __init__(self, site: str):
        env = {**os.environ, "PYTHONPATH": f"{site}:{os.getcwd()}"}
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.jtop_sim.driver", "serve"], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     start_new_session=True)
        STARTED.append(self.proc)
        line = _readline(self.proc, 60)
        if line.strip() != "ready":
            raise RuntimeError(f"jtop service did not start: {line!r}")

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        SOCKET.unlink(missing_ok=True)


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return out[0] if out else ""


LATEST_STATE: dict[int, dict] = {}


def poll(source: Any, predicate: Any, timeout: float = 40.0) -> tuple[list[dict], str]:
    """Collect until `predicate(records)`; returns the records and the last error seen."""
    deadline = time.monotonic() + timeout
    error = ""
    latest_state = LATEST_STATE.setdefault(id(source), {})  # like the store's state hash
    while time.monotonic() < deadline:
        try:
            records = source.collect(time.time())
            error = ""
            for record in records:
                latest_state.update(record.get("state", {}))
            records = records + [{"state": dict(latest_state)}]
            if predicate(records):
                return records, error
        except Exception as exc:  # noqa: BLE001 - reported to the test
            error = f"{exc.__class__.__name__}: {exc}"
        time.sleep(0.1)
    raise AssertionError(f"timed out; last error {error!r}, status {getattr(source, 'status', '')!r}")


def merged(records: list[dict]) -> tuple[dict, dict]:
    values: dict = {}
    state: dict = {}
    for r in records:
        values.update(r.get("values", {}))
        state.update(r.get("state", {}))
    return values, state


def as_nobody(interval: float) -> str:
    """The jtop source in a forked child running as nobody: what permission denied looks like."""
    from collectors.sources.jtop import JtopSource

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        message = "no error"
        try:
            os.setgid(65534)
            os.setuid(65534)
            JtopSource(root=Path("/"), interval=interval).collect(time.time())
        except BaseException as exc:  # noqa: BLE001
            message = str(exc)
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


def scenario() -> None:
    from collectors.sources.jtop import JtopSource
    from collectors.sources.tegra_sysfs import TegraSysfsSource
    from tests.jetson_tree import JetsonTree, orin_nano_frames

    site_new, site_old = os.environ["JTOP_SITE"], os.environ["JTOP_OLD_SITE"]
    tree = JetsonTree(Path(os.environ["SIM_DIR"]) / "root", "orin-nano-jp6").reload()
    stop = threading.Event()
    core_loads = {c: 0.1 * (c + 1) for c in range(len(tree.jiffies))}

    def tick_cpus() -> None:  # /proc/stat must move between the service's ticks
        while not stop.is_set():
            tree.set_cpu_loads(core_loads)
            stop.wait(0.05)

    threading.Thread(target=tick_cpus, daemon=True).start()
    tree.set_processes({4242: ("llama-server", 3_145_728), 1907: ("gnome-shell", 5_704)})
    frames = orin_nano_frames()
    chosen = [frames[0], frames[40], frames[80]]  # idle, busy, busy: distinct GPU loads and rails

    plain = JtopSource(root=Path("/"), interval=0.5, backoff_scale=0.05)
    main = JtopSource(root=Path("/"), interval=0.5, backoff_scale=0.05,
                      fallback=TegraSysfsSource(root=Path("/")))
    try:
        plain.collect(time.time())
        emit("no_service", error="no error")
    except Exception as exc:  # noqa: BLE001
        emit("no_service", error=str(exc), type=exc.__class__.__name__)
    values, state = merged(main.collect(time.time()))
    emit("no_service_fallback", values=values, state=state)

    service = Service(site_new)
    for index, frame in enumerate(chosen):
        tree.apply({k: v for k, v in frame.items() if not k.startswith("cpu_")})

        def matches(records: list[dict], frame: dict = frame) -> bool:
            v, _ = merged(records)
            return v.get("jtop_up") == 1.0 and abs(v.get("gpu_load_ratio", -1) - frame["gpu_load_ratio"]) < 1e-6 \
                and abs(v.get('power_watts{rail="VDD_IN"}', -1) - frame['power_watts{rail="VDD_IN"}']) < 0.01

        records, _ = poll(main, matches)
        values, state = merged(records)
        emit("sample", index=index, values=values, state=state, frame=frame)

    poll(plain, lambda r: merged(r)[0].get("jtop_up") == 1.0)
    emit("permission", error=as_nobody(0.5))

    service.kill()
    records, _ = poll(main, lambda r: "lost connection" in merged(r)[1].get("jtop_status", ""), 30)
    values, state = merged(records)
    emit("lost", values=values, state=state)
    deadline, error = time.monotonic() + 30, "no error"
    while time.monotonic() < deadline and "lost connection" not in error:
        try:
            plain.collect(time.time())
        except Exception as exc:  # noqa: BLE001
            error = str(exc)
        time.sleep(0.1)
    emit("lost_plain", error=error)

    service = Service(site_new)
    records, _ = poll(main, lambda r: merged(r)[0].get("jtop_up") == 1.0, 40)
    emit("reconnected", values=merged(records)[0], state=merged(records)[1])
    main.close()
    plain.close()
    service.kill()

    service = Service(site_new)
    other = subprocess.Popen([sys.executable, "-m", "tests.jtop_sim.driver", "hold", "30"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    STARTED.append(other)
    hello = _readline(other, 60)
    late = JtopSource(root=Path("/"), interval=0.5, backoff_scale=0.05)
    records, _ = poll(late, lambda r: merged(r)[0].get("jtop_up") == 1.0, 40)
    first = merged(records)
    time.sleep(2.0)  # > 3 x our interval: a blocking ok() loop would have ended here
    later = merged(late.collect(time.time()))
    emit("interval", other=hello.strip(), first_state=first[1], values=first[0], later_values=later[0],
         later_state=later[1])
    late.close()
    os.killpg(other.pid, signal.SIGKILL)
    other.wait(timeout=30)
    service.kill()

    service = Service(site_old)
    mismatch = JtopSource(root=Path("/"), interval=0.5)
    try:
        mismatch.collect(time.time())
        emit("mismatch", error="no error")
    except Exception as exc:  # noqa: BLE001
        emit("mismatch", error=str(exc))
    mismatch.close()
    service.kill()
    stop.set()
    emit("done")


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "serve":
        serve()
    elif command == "hold":
        hold(float(sys.argv[2]))
    else:
        try:
            scenario()
        finally:
            for child in STARTED:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
