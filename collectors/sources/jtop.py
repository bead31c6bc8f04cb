"""Jetson telemetry through the jetson-stats (jtop) Python client.

jetson-stats is AGPL-3.0 and optional (`pip install .[jetson]`): it is imported only when
installed, never vendored; without it `available()` is False and the Tegra sysfs / tegrastats
sources stand in. The client talks to the jtop.service over a socket; we read `jetson.json()`
(the raw dict the service sends) without blocking, so a slow or dead service never stalls the agent.

Input units (jetson-stats 7.x raw dict): memory kB, clocks kHz, loads %, power mW, temperatures C
(-256 = offline), fan speed %. Output series in base units: gpu_load_ratio, gpu_freq_hz,
gpu_freq_max_hz, gpu_freq_min_hz, gpu_memory_used_bytes / gpu_memory_total_bytes (Thor, via NVML),
emc_load_ratio, emc_freq_hz, emc_freq_max_hz, ram_total_bytes, ram_used_bytes, ram_available_bytes
(total - used, jtop's used excludes buffers and cache), gpu_shared_memory_bytes (nvmap), swap_total_bytes,
swap_used_bytes, swap_cached_bytes, cpu_load_ratio{cpu} (100 - idle, per core), cpu_freq_hz{cpu},
cpu_online{cpu}, cpu_total_load_ratio (mean of online cores: jtop's own `total` alternates between
per-interval and since-boot values), temperature_celsius{zone}, power_watts{rail},
power_avg_watts{rail}, fan_speed_ratio{fan}, fan_rpm{fan}, engine_active{engine},
engine_freq_hz{engine}, jetson_clocks_active, gpu_process_memory_bytes{pid,process},
uptime_seconds, jtop_up, jtop_interval_seconds. State: nvpmodel, nvpmodel_id, jetson_clocks,
jtop_status.

Failures (all JtopException in jetson-stats) become a status string and a reconnect with backoff:
service missing, permission denied, service/client version mismatch, Python mismatch, lost
connection, and a service interval set slower by another client (reported, not an error).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from collectors.series import series_key
from collectors.sources.base import Source
from collectors.sources.keys import key1
from collectors.tegra import zone_label

try:  # optional, AGPL-3.0: only where the user installed it
    from jtop import JtopException
    from jtop import jtop as jtop_client
except ImportError:  # pragma: no cover - depends on the install
    jtop_client = None

    class JtopException(Exception):  # type: ignore[no-redef]
        """Stand-in so `except JtopException` works without jetson-stats."""

KB = 1024
_VERSIONS = re.compile(r"service: \[([^\]]*)\] and client: \[([^\]]*)\]")


class JtopUnavailable(RuntimeError):
    """The jtop service cannot be read right now; the message says why."""


class _Waiting(JtopUnavailable):
    """Still inside the reconnect backoff after a failure."""


def jtop_importable() -> bool:
    return jtop_client is not None


def _num(value: Any, scale: float = 1.0, upper: float = math.inf, lower: float = 0.0) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value) * scale
    if not math.isfinite(number) or number < lower or number > upper:
        return None
    return number


def _obj(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """parent[key] when it is a dict, else {} (the service's dict is data: any shape may arrive)."""
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def _seq(parent: dict[str, Any], key: str) -> list[Any]:
    value = parent.get(key)
    return value if isinstance(value, list) else []


def _label(text: Any) -> str:
    return str(text)[:64]


def _gpu(raw: dict[str, Any], out: dict[str, float | None]) -> None:
    gpus = raw.get("gpu")
    if not isinstance(gpus, dict) or not gpus:
        return
    info = next(iter(gpus.values()))
    if not isinstance(info, dict):
        return
    status = _obj(info, "status")
    freq = _obj(info, "freq")
    out["gpu_load_ratio"] = _num(status.get("load"), 0.01, 1.0)
    out["gpu_freq_hz"] = _num(freq.get("cur"), 1e3, 1e11)
    out["gpu_freq_max_hz"] = _num(freq.get("max"), 1e3, 1e11)
    out["gpu_freq_min_hz"] = _num(freq.get("min"), 1e3, 1e11)
    out["gpu_memory_used_bytes"] = _num(info.get("memory_used"), 1.0, 2**50)
    out["gpu_memory_total_bytes"] = _num(info.get("memory_total"), 1.0, 2**50)


def _memory(raw: dict[str, Any], out: dict[str, float | None]) -> None:
    mem = _obj(raw, "mem")
    ram = _obj(mem, "RAM")
    total, used = _num(ram.get("tot"), KB, 2**50), _num(ram.get("used"), KB, 2**50)
    out["ram_total_bytes"], out["ram_used_bytes"] = total, used
    if total is not None and used is not None and used <= total:
        out["ram_available_bytes"] = total - used
    out["gpu_shared_memory_bytes"] = _num(ram.get("shared"), KB, 2**50)
    swap = _obj(mem, "SWAP")
    out["swap_total_bytes"] = _num(swap.get("tot"), KB, 2**50)
    out["swap_used_bytes"] = _num(swap.get("used"), KB, 2**50)
    out["swap_cached_bytes"] = _num(swap.get("cached"), KB, 2**50)
    emc = _obj(mem, "EMC")
    if emc and emc.get("online", True):
        out["emc_freq_hz"] = _num(emc.get("cur"), 1e3, 1e11)
        out["emc_freq_max_hz"] = _num(emc.get("max"), 1e3, 1e11)
        out["emc_load_ratio"] = _num(emc.get("val"), 0.01, 1.0)


def _cpus(raw: dict[str, Any], out: dict[str, float | None]) -> None:
    cpu = _obj(raw, "cpu")
    cores = _seq(cpu, "cpu")
    loads = []
    for index, core in enumerate(cores[:1024]):
        if not isinstance(core, dict):
            continue
        online = bool(core.get("online", False))
        out[key1("cpu_online", "cpu", index)] = 1.0 if online else 0.0
        if not online:
            continue
        idle = _num(core.get("idle"), 1.0, 100.0)
        if idle is not None:
            load = (100.0 - idle) / 100.0
            out[key1("cpu_load_ratio", "cpu", index)] = load
            loads.append(load)
        freq = _obj(core, "freq")
        out[key1("cpu_freq_hz", "cpu", index)] = _num(freq.get("cur"), 1e3, 1e11)
    if loads:
        out["cpu_total_load_ratio"] = sum(loads) / len(loads)


def _sensors(raw: dict[str, Any], out: dict[str, float | None]) -> None:
    temps = _obj(raw, "temperature")
    for zone, info in list(temps.items())[:128]:
        if isinstance(info, dict) and info.get("online", True):
            out[key1("temperature_celsius", "zone", zone_label(str(zone)))] = _num(info.get("temp"), 1.0, 200.0, -100.0)
    power = _obj(raw, "power")
    rails = dict(power.get("rail") or {}) if isinstance(power.get("rail"), dict) else {}
    total = power.get("tot")
    if isinstance(total, dict):
        rails[total.get("name") or "TOTAL"] = total
    for rail, info in list(rails.items())[:64]:
        if isinstance(info, dict) and info.get("online", True):
            out[key1("power_watts", "rail", _label(rail))] = _num(info.get("power"), 1e-3, 1e4)
            out[key1("power_avg_watts", "rail", _label(rail))] = _num(info.get("avg"), 1e-3, 1e4)
    fans = _obj(raw, "fan")
    for name, info in list(fans.items())[:16]:
        if not isinstance(info, dict):
            continue
        speeds = _seq(info, "speed")
        rpms = _seq(info, "rpm")
        for i, speed in enumerate(speeds[:8]):
            label = _label(name if len(speeds) == 1 else f"{name}{i}")
            out[key1("fan_speed_ratio", "fan", label)] = _num(speed, 0.01, 1.0)
        for i, rpm in enumerate(rpms[:8]):
            label = _label(name if len(rpms) == 1 else f"{name}{i}")
            out[key1("fan_rpm", "fan", label)] = _num(rpm, 1.0, 1e5)


def _engines_and_processes(raw: dict[str, Any], out: dict[str, float | None]) -> None:
    engines = _obj(raw, "engines")
    for group in list(engines.values())[:64]:
        if not isinstance(group, dict):
            continue
        for name, info in list(group.items())[:16]:
            if isinstance(info, dict):
                engine = _label(name).lower()
                out[key1("engine_active", "engine", engine)] = 1.0 if info.get("online") else 0.0
                if info.get("online"):
                    out[key1("engine_freq_hz", "engine", engine)] = _num(info.get("cur"), 1e3, 1e11)
    processes = _seq(raw, "processes")
    for row in processes[:4096]:
        if not isinstance(row, (list, tuple)) or len(row) < 10:
            continue
        pid, gpu_kb, name = row[0], row[8], row[9]
        size = _num(gpu_kb, KB, 2**50)
        if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 and size is not None:
            key = series_key("gpu_process_memory_bytes", pid=pid, process=_label(name))
            out[key] = (out.get(key) or 0.0) + size


def raw_values(raw: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """Map jtop's raw dict (jetson.json()) onto series in base units, plus state."""
    out: dict[str, float | None] = {}
    if not isinstance(raw, dict):
        return {}, {}
    for part in (_gpu, _memory, _cpus, _sensors, _engines_and_processes):
        part(raw, out)
    out["uptime_seconds"] = _num(raw.get("uptime"), 1.0, 1e10)
    state: dict[str, Any] = {}
    jc = raw.get("jc")
    if isinstance(jc, dict) and "enable" in jc:
        out["jetson_clocks_active"] = 1.0 if jc.get("enable") else 0.0
        state["jetson_clocks"] = bool(jc.get("enable"))
    nvp = raw.get("nvp")
    model = nvp.get("model") if isinstance(nvp, dict) else None
    if isinstance(model, dict):
        if isinstance(model.get("name"), str):
            state["nvpmodel"] = model["name"][:64]
        if isinstance(model.get("id"), int):
            state["nvpmodel_id"] = model["id"]
    return {k: v for k, v in out.items() if v is not None}, state


def describe_failure(exc: BaseException) -> tuple[str, float]:
    """A clear status for a jtop failure, and how long to wait before reconnecting (seconds)."""
    text = str(exc).strip()
    if isinstance(exc, JtopUnavailable):
        return text, 2.0 if "lost connection" in text else 10.0
    if "not active" in text:
        return "jtop unavailable: jtop.service is not running (install it: sudo jtop --install-service)", 5.0
    if "can't access" in text or isinstance(exc, PermissionError):
        return ("jtop unavailable: permission denied on jtop.service (add this user to the 'jtop' group, "
                "then log in again)"), 30.0
    if "Mismatch version" in text:
        m = _VERSIONS.search(text)
        versions = f"service {m.group(1)}, client {m.group(2)}" if m else text.splitlines()[0]
        return (f"jtop unavailable: version mismatch ({versions}); install the same jetson-stats "
                "major.minor for the service and the agent"), 300.0
    if "Mismatch of Python" in text:
        return "jtop unavailable: Python version mismatch between the jetson-stats service and client", 300.0
    if "Authentication" in text:
        return "jtop unavailable: authentication with the jtop service failed", 60.0
    if ("Lost connection" in text or "lost connection" in text or "Error connection" in text
            or isinstance(exc, (EOFError, ConnectionError, BrokenPipeError))):
        return "jtop unavailable: lost connection with the jtop service", 2.0
    first = text.splitlines()[0][:200] if text else ""
    return f"jtop unavailable: {exc.__class__.__name__}: {first}", 10.0


def _quiet_close(client: Any) -> None:
    with contextlib.suppress(Exception):
        client.close()


@dataclass
class JtopSource(Source):
    """Reads the jtop service; on failure reports why, reconnects with backoff, and (with a
    `fallback` source) keeps the data coming from sysfs meanwhile."""

    name: str = "jtop"
    board_wide: ClassVar[bool] = True
    fallback: Source | None = None
    max_backoff_s: float = 300.0
    backoff_scale: float = 1.0  # multiplies every reconnect wait (tests shorten it)
    connect_timeout_s: float = 20.0
    state_every_s: float = 30.0

    def __post_init__(self) -> None:
        self._client: Any = None
        self._next_try = 0.0
        self._failures = 0
        self.status = "jtop: not connected yet"
        self.service_interval: float | None = None
        self._last_state: dict[str, Any] = {}
        self._state_due = 0.0

    def available(self) -> bool:
        return jtop_importable()

    # -- connection ------------------------------------------------------------------------
    def _connect(self) -> None:
        if jtop_client is None:
            raise JtopUnavailable("jtop unavailable: jetson-stats is not installed (pip install .[jetson])")
        client = jtop_client(interval=max(0.5, self.interval))  # jtop is unstable below 0.5 s (#414)
        # start() in a fresh thread: multiprocessing caches one connection per thread and address,
        # and after the service restarts the old thread's connection is dead. It also bounds a hung start.
        outcome: list[BaseException | None] = []

        def start() -> None:
            try:
                client.start()
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                outcome.append(exc)

        thread = threading.Thread(target=start, daemon=True, name="jtop-connect")
        thread.start()
        thread.join(self.connect_timeout_s)
        if not outcome or outcome[0] is not None:
            self._drop(client)
            failure = outcome[0] if outcome else None
            if failure is not None:
                raise failure
            raise JtopUnavailable(f"jtop unavailable: the service did not answer in {self.connect_timeout_s:g} s")
        self._client = client
        self.service_interval = float(client.interval)
        self._failures = 0

    def _drop(self, client: Any) -> None:
        """close() waits for the client's library probing (subprocesses): never in the agent's way."""
        threading.Thread(target=_quiet_close, args=(client,), daemon=True, name="jtop-close").start()

    def _fail(self, exc: BaseException) -> str:
        message, base_wait = describe_failure(exc)
        if self._client is not None:
            self._drop(self._client)
            self._client = None
        self._failures += 1
        wait = min(self.max_backoff_s, base_wait * 2 ** min(self._failures - 1, 8)) * self.backoff_scale
        self._next_try = time.monotonic() + wait
        self.status = message
        return message

    def _interval_note(self) -> str:
        service = self.service_interval
        if service is not None and service > self.interval * 1.5:
            return (f"jtop ok; the service samples every {service:g} s, set by another client "
                    f"(asked for {self.interval:g} s)")
        return "jtop ok"

    # -- collect ---------------------------------------------------------------------------
    def _read(self) -> dict[str, Any]:
        if self._client is None:
            now = time.monotonic()
            if now < self._next_try:
                raise _Waiting(f"{self.status} (reconnect in {self._next_try - now:.0f} s)")
            self._connect()
        if not self._client.ok(spin=True):  # raises the reader thread's error, if any
            raise JtopUnavailable("jtop unavailable: lost connection with the jtop service (reader stopped)")
        raw = json.loads(self._client.json())
        if not isinstance(raw, dict) or not raw:
            raise JtopUnavailable("jtop unavailable: the service sent no data")
        return raw

    def collect(self, now: float) -> list[dict[str, Any]]:
        try:
            raw = self._read()
        except _Waiting as exc:
            return self._fallback(now, str(exc))
        except (JtopException, Exception) as exc:  # every client failure is data
            return self._fallback(now, self._fail(exc))
        values, state = raw_values(raw)
        self.status = self._interval_note()
        values["jtop_up"] = 1.0
        if self.service_interval is not None:
            values["jtop_interval_seconds"] = self.service_interval
        state["jtop_status"] = self.status
        records: list[dict[str, Any]] = [{"ts": now, "source": self.name, "values": values}]
        if state != self._last_state or now >= self._state_due:  # state on change, else every 30 s
            self._last_state, self._state_due = state, now + self.state_every_s
            records.append({"ts": now, "source": self.name, "state": state})
        return records

    def _fallback(self, now: float, message: str) -> list[dict[str, Any]]:
        if self.fallback is None:
            raise JtopUnavailable(message)
        self._last_state = {}
        try:
            records = self.fallback.collect(now)
        except Exception as exc:  # the fallback failing too is still one clear status
            raise JtopUnavailable(f"{message}; fallback {self.fallback.name} failed too: {exc}") from None
        note = f"{message}; reading {self.fallback.name} instead"
        return records + [{"ts": now, "source": self.name, "values": {"jtop_up": 0.0}},
                          {"ts": now, "source": self.name, "state": {"jtop_status": note}}]

    @property
    def gpu_memory_by_pid(self) -> dict[int, int] | None:
        """Per-process GPU memory (bytes) from the last jtop sample; None when not connected."""
        if self._client is None:
            return None
        try:
            raw = json.loads(self._client.json())
        except Exception:
            return None
        out: dict[int, int] = {}
        for row in raw.get("processes") or []:
            if isinstance(row, list) and len(row) >= 10 and isinstance(row[0], int):
                size = _num(row[8], KB, 2**50)
                if size is not None and row[0] > 0:
                    out[row[0]] = out.get(row[0], 0) + int(size)
        return out

    def writing(self) -> frozenset[str]:
        if self._client is not None:
            return super().writing()
        return self.fallback.writing() if self.fallback is not None else frozenset()

    def close(self) -> None:
        if self._client is not None:
            self._drop(self._client)
            self._client = None
        if self.fallback is not None:
            self.fallback.close()
