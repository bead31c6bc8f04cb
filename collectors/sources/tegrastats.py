"""Parse NVIDIA `tegrastats` lines, and run `tegrastats --interval MS` as a fallback source.

Formats understood (one line each; fields may be missing or reordered, e.g. without sudo):
  JetPack 4/5/6 (Xavier, Orin):
    [MM-DD-YYYY HH:MM:SS] RAM 6982/7620MB (lfb 5x1MB) SWAP 2640/16384MB (cached 202MB)
    CPU [97%@1984,off,...] EMC_FREQ 18%@3199 GR3D_FREQ 84%@[713]  (or 0%@[305,305], 84%@713, 0%)
    NVENC 1%@115 NVJPG off VIC_FREQ 729 APE 174  cpu@65.562C tj@65.5C CV0@-256C
    VDD_IN 17946mW/15710mW VDD_CPU_GPU_CV 8896mW/7585mW   (old boards: POM_5V_IN 3211/3211)
  JetPack 7 (Thor, and Orin on JP7): two values per temperature `gpu@62.9C/62.9C`, three per
    rail `VDD_GPU 12000mW/9000mW/15000mW`, and `GR3D_FREQ @[1000,1000,1000]` with no load (Thor).
  Very old (TX1): `cpu [17%,13%]@408 EMC 1%@408 GR3D 3%@76`.
A harness prefix `<epoch seconds>|` is accepted and returned as the sample's timestamp.

Units in the line: memory MB (MiB), frequencies MHz, loads %, temperatures C (-256 = no sensor),
rail power mW. Output series (base units): ram_used_bytes, ram_total_bytes, swap_used_bytes,
swap_total_bytes, swap_cached_bytes, ram_largest_free_block_bytes, cpu_load_ratio{cpu},
cpu_freq_hz{cpu}, cpu_online{cpu}, cpu_total_load_ratio (mean of online cores), emc_load_ratio,
emc_freq_hz, gpu_load_ratio, gpu_freq_hz (highest GPC), engine_active{engine},
engine_load_ratio{engine}, engine_freq_hz{engine}, temperature_celsius{zone} (zone lower-cased,
as jtop names it), power_watts{rail} (instant), power_avg_watts{rail}.
`parse_line` never raises: text it does not recognise yields None or fewer series.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from collectors.sources.base import Source
from collectors.sources.keys import key1
from collectors.tegra import zone_label

MIB = 1024 * 1024
_MAX_LINE = 8192

_PREFIX = re.compile(r"^\s*(?:(\d{9,11}(?:\.\d+)?)\|)?\s*(?:\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2}\s+)?")
# Each field is a keyword token followed by a value token: the line is split once and each token
# matched (anchored) on its own, which costs a fraction of scanning the whole line per field.
_USED_TOTAL = re.compile(r"(\d+)/(\d+)MB")
_LFB = re.compile(r"(\d+)x(\d+)MB\)")
_CACHED = re.compile(r"(\d+)MB\)")
_CPU_LIST = re.compile(r"\[([^\]]{0,4000})\](?:@(\d+))?")
_CORE = re.compile(r"(\d+)%(?:@(\d+))?")
_GPU_VALUE = re.compile(r"(?:(\d+)%)?(?:@\[([\d,]{1,200})\]|@(\d+))?")
_EMC_VALUE = re.compile(r"(\d+)%(?:@\[?(\d+)\]?)?")
_ENGINES = frozenset({"NVENC", "NVENC1", "NVDEC", "NVDEC1", "NVJPG", "NVJPG1", "VIC", "OFA", "APE", "SE",
                      "VIC_FREQ", "MSENC", "NVCSI", "PVA", "PVA0", "PVA1", "NVDLA0", "NVDLA1",
                      "NVENC0", "NVDEC0", "NVJPG0"})
_ENGINE_VALUE = re.compile(r"off|(\d+)%@\[?(\d+)\]?|(\d+)")
_TEMP = re.compile(r"([A-Za-z][\w.-]{0,31})@(-?\d+(?:\.\d+)?)C(?:/(-?\d+(?:\.\d+)?)C)?")
_RAIL_NAME = re.compile(r"[A-Z][A-Z0-9_]{1,39}")
_RAIL_VALUE = re.compile(r"(\d+)(?:mW)?/(\d+)(?:mW)?(?:/(\d+)(?:mW)?)?")
_NOT_RAILS = {"RAM", "SWAP", "IRAM", "CPU", "EMC", "GR3D", "EMC_FREQ", "GR3D_FREQ"}


@dataclass
class TegrastatsSample:
    values: dict[str, float] = field(default_factory=dict)
    ts: float | None = None  # from an `<epoch>|` prefix, when present


def _num(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _ratio(percent: str | None) -> float | None:
    value = _num(percent)
    return None if value is None or value > 100 else value / 100.0


def _mhz(text: str | None) -> float | None:
    value = _num(text)
    return None if value is None or value > 100_000 else value * 1e6


def _mib(text: str | None) -> float | None:
    value = _num(text)
    return None if value is None or value > 2**30 else value * MIB  # > 1 PiB is garbage


def _memory(kind: str, tokens: list[str], i: int, out: dict[str, float]) -> bool:
    m = _USED_TOTAL.fullmatch(tokens[i + 1])
    if not m:
        return False
    prefix = "ram" if kind == "RAM" else "swap"
    found: dict[str, float | None] = {f"{prefix}_used_bytes": _mib(m.group(1)),
                                      f"{prefix}_total_bytes": _mib(m.group(2))}
    note = tokens[i + 2] if i + 3 < len(tokens) else ""
    if kind == "RAM" and note == "(lfb" and (lfb := _LFB.fullmatch(tokens[i + 3])):
        found["ram_largest_free_block_bytes"] = _mib(lfb.group(2))
        found["ram_largest_free_block_count"] = _num(lfb.group(1))
    if kind == "SWAP" and note == "(cached" and (cached := _CACHED.fullmatch(tokens[i + 3])):
        found["swap_cached_bytes"] = _mib(cached.group(1))
    for key, value in found.items():
        if value is not None and value < 2**50:
            out.setdefault(key, value)
    return True


def _cpus(value: str, out: dict[str, float]) -> bool:
    m = _CPU_LIST.fullmatch(value)
    if not m:
        return False
    shared_freq = _mhz(m.group(2))  # very old boards: `cpu [17%,13%]@408`
    loads = []
    for index, field_text in enumerate(m.group(1).split(",")[:1024]):
        token = field_text.strip()
        if token.lower() == "off":
            out[key1("cpu_online", "cpu", index)] = 0.0
            continue
        core = _CORE.fullmatch(token)
        if not core:
            continue
        load = _ratio(core.group(1))
        freq = _mhz(core.group(2)) if core.group(2) else shared_freq
        out[key1("cpu_online", "cpu", index)] = 1.0
        if load is not None:
            out[key1("cpu_load_ratio", "cpu", index)] = load
            loads.append(load)
        if freq is not None:
            out[key1("cpu_freq_hz", "cpu", index)] = freq
    if loads:
        out["cpu_total_load_ratio"] = sum(loads) / len(loads)
    return True


def _gpu(value: str, out: dict[str, float]) -> bool:
    m = _GPU_VALUE.fullmatch(value)
    if not m or not any(m.groups()):
        return False
    load = _ratio(m.group(1))
    if load is not None:
        out["gpu_load_ratio"] = load
    freqs = [f for f in (_mhz(x) for x in (m.group(2) or "").split(",") if x) if f is not None]
    if m.group(3):
        freqs.append(_mhz(m.group(3)) or 0.0)
    if freqs:
        out["gpu_freq_hz"] = max(freqs)
    return True


def _emc(value: str, out: dict[str, float]) -> bool:
    m = _EMC_VALUE.fullmatch(value)
    if not m:
        return False
    load = _ratio(m.group(1))
    if load is not None:
        out["emc_load_ratio"] = load
    freq = _mhz(m.group(2))
    if freq is not None:
        out["emc_freq_hz"] = freq
    return True


def _engine(token: str, value: str, out: dict[str, float]) -> None:
    m = _ENGINE_VALUE.fullmatch(value)
    if not m:
        return
    name = token.removesuffix("_FREQ").lower()
    if value == "off":
        out[key1("engine_active", "engine", name)] = 0.0
        return
    out[key1("engine_active", "engine", name)] = 1.0
    load = _ratio(m.group(1))
    if load is not None:
        out[key1("engine_load_ratio", "engine", name)] = load
    freq = _mhz(m.group(2) or m.group(3))
    if freq is not None:
        out[key1("engine_freq_hz", "engine", name)] = freq


def _temperature(token: str, out: dict[str, float]) -> None:
    m = _TEMP.fullmatch(token)
    if m:
        celsius = _num(m.group(2))
        if celsius is not None and -100.0 < celsius < 200.0:  # -256 = no sensor
            out[key1("temperature_celsius", "zone", zone_label(m.group(1)))] = celsius


def _rail(name: str, value: str, out: dict[str, float]) -> None:
    m = _RAIL_VALUE.fullmatch(value)
    if not m or name in _NOT_RAILS or not _RAIL_NAME.fullmatch(name):
        return
    now, avg = _num(m.group(1)), _num(m.group(2))
    if now is not None and now < 1e7:
        out[key1("power_watts", "rail", name)] = now / 1000.0
    if avg is not None and avg < 1e7:
        out[key1("power_avg_watts", "rail", name)] = avg / 1000.0


def parse_line(line: str) -> TegrastatsSample | None:
    """Parse one tegrastats line; None when nothing in it is tegrastats output."""
    if not isinstance(line, str):
        return None
    line = line[:_MAX_LINE].replace("\x00", " ").strip()
    prefix = _PREFIX.match(line)
    ts = _num(prefix.group(1)) if prefix else None
    tokens = line[prefix.end() if prefix else 0:].split()
    tokens.append("")  # every keyword has a "next" token
    out: dict[str, float] = {}
    seen: set[str] = set()  # RAM/SWAP/CPU/GPU/EMC: the first well-formed field wins
    for i in range(len(tokens) - 1):
        token, value = tokens[i], tokens[i + 1]
        if "@" in token and token.endswith("C"):
            _temperature(token, out)
        elif token in ("RAM", "SWAP"):
            if token not in seen and _memory(token, tokens, i, out):
                seen.add(token)
        elif token.upper() == "CPU":
            if "cpu" not in seen and _cpus(value, out):
                seen.add("cpu")
        elif token in ("GR3D_FREQ", "GR3D"):
            if "gpu" not in seen and _gpu(value, out):
                seen.add("gpu")
        elif token in ("EMC_FREQ", "EMC"):
            if "emc" not in seen and _emc(value, out):
                seen.add("emc")
        elif token in _ENGINES:
            _engine(token, value, out)
        elif "/" in value and token[:1].isupper():
            _rail(token, value, out)
    if not out:
        return None
    return TegrastatsSample(values=out, ts=ts)


def find_binary(root: Path) -> Path | None:
    """tegrastats under `root` (usr/bin, the L4T tools folder); on / also $PATH."""
    for rel in ("usr/bin/tegrastats", "usr/sbin/tegrastats"):
        candidate = root / rel
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    if root == Path("/"):
        found = shutil.which("tegrastats")
        return Path(found) if found else None
    return None


class TegrastatsUnavailable(RuntimeError):
    """tegrastats is not running; the message says why."""


@dataclass
class TegrastatsSource(Source):
    """Keeps one `tegrastats --interval MS` child running and reports its newest line."""

    name: str = "tegrastats"
    board_wide: ClassVar[bool] = True
    binary: Path | None = None
    restart_backoff_s: float = 2.0
    stall_after_s: float = 10.0
    max_backoff_s: float = 120.0

    def __post_init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._latest: TegrastatsSample | None = None
        self._latest_seq = 0
        self._returned_seq = 0
        self._lines = 0
        self._last_line = 0.0  # monotonic time of the newest line (or of the start)
        self._unparsed = 0
        self._lock = threading.Lock()
        self._next_start = 0.0
        self._failures = 0
        self._last_error = ""

    def available(self) -> bool:
        return (self.binary or find_binary(self.root)) is not None

    def _start(self) -> None:
        binary = self.binary or find_binary(self.root)
        if binary is None:
            raise TegrastatsUnavailable("tegrastats unavailable: binary not found")
        interval_ms = str(max(100, int(self.interval * 1000)))
        try:
            self._proc = subprocess.Popen([str(binary), "--interval", interval_ms], stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
                                          errors="replace", bufsize=1)
        except OSError as exc:
            raise TegrastatsUnavailable(f"tegrastats unavailable: cannot start {binary}: {exc.strerror}") from None
        self._last_line = time.monotonic()
        threading.Thread(target=self._read, args=(self._proc,), daemon=True, name="tegrastats").start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            sample = parse_line(raw)
            with self._lock:
                self._lines += 1
                self._last_line = time.monotonic()
                if sample is None:
                    self._unparsed += 1
                    continue
                self._latest = sample
                self._latest_seq += 1

    def _ensure_running(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        now = time.monotonic()
        if self._proc is not None:
            code = self._proc.returncode
            self._proc = None
            self._failures += 1
            self._last_error = f"tegrastats exited with status {code}"
            self._next_start = now + min(self.max_backoff_s, self.restart_backoff_s * 2 ** min(self._failures - 1, 8))
        if now < self._next_start:
            raise TegrastatsUnavailable(f"{self._last_error}; restarting in {self._next_start - now:.0f} s")
        self._start()

    def collect(self, now: float) -> list[dict[str, Any]]:
        self._ensure_running()
        with self._lock:
            sample, seq = self._latest, self._latest_seq
            lines, unparsed, last_line = self._lines, self._unparsed, self._last_line
        silent = time.monotonic() - last_line
        if silent > self.stall_after_s + 3 * self.interval:
            raise TegrastatsUnavailable(f"tegrastats is running but printed nothing for {silent:.0f} s")
        if sample is None or seq == self._returned_seq:
            return []
        self._returned_seq = seq
        if seq > 3:
            self._failures = 0
        values = dict(sample.values)
        values["tegrastats_lines_total"] = float(lines)
        values["tegrastats_unparsed_lines_total"] = float(unparsed)
        return [{"ts": now, "source": self.name, "values": values}]

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
