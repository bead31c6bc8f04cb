"""The metric catalog: every series name ThoxDash writes, with its unit, type, help, labels, the
sources that write it and the device-page chart that draws it. One place: /metrics HELP and TYPE
(thoxdash/metrics.py), the series the dashboard sends to the browser and which chart draws which
name (thoxdash/live.py, static/thoxdash/device.js through the page config), the proxy's series
names (collectors/proxy/series.py) and docs/METRICS.md (scripts/metrics_doc.py) all come from here.

Adding a series: add one `Metric` row below (tests check that every name a source writes is listed,
and that docs/METRICS.md is regenerated). Runtimes' own metrics (e.g. `<runtime>:...` prefixed names, and
the few a runtime client derives under its kind's prefix, e.g. `ollama_loaded_models`), which the
runtimes source passes through, are not listed: collectors/runtimes/ owns those.

Sources named here: host, jtop, tegra_sysfs, tegrastats, nvml, cgroup, irq, runtimes,
latency_scrape, proxy, agent; `canary` is the server's periodic test request (advisors/canary.py);
`dashboard` marks series the server derives from the requests stream (never stored by a device).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

MetricType = Literal["gauge", "counter"]


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str  # base unit: ratio (0..1), bytes, hertz, celsius, watts, seconds, joules, rpm, 1 (count/flag)
    help: str
    sources: tuple[str, ...]
    labels: tuple[str, ...] = ()
    type: MetricType = "gauge"
    chart: str | None = None  # device-page chart id that draws it
    live: bool = False  # sent to the browser (and kept in rollups) though no chart draws it


@dataclass(frozen=True)
class Chart:
    id: str
    title: str


# Device-page charts, in page order (templates/device.html lays them out; device.js draws them).
CHARTS = (
    Chart("chart-gpu", "GPU load and frequency"),
    Chart("chart-memory", "Memory by runtime, against its own ceiling"),
    Chart("chart-host", "Host memory"),
    Chart("chart-power", "Power by rail"),
    Chart("chart-temp", "Temperatures and throttle points"),
    Chart("chart-cpu", "CPU load per core"),
    Chart("chart-irq", "Interrupts per second, IRQ × CPU"),
    Chart("chart-latency", "Request latency p50 / p99"),
    Chart("chart-ttft", "Time to first token and decode speed"),
    Chart("chart-slo", "SLO compliance"),
)

SOC = ("jtop", "tegra_sysfs", "tegrastats")
JETSON_HOST = ("host", "jtop", "tegrastats")
GPU = ("jtop", "tegra_sysfs", "tegrastats", "nvml")
LATENCY = ("proxy", "latency_scrape")
RM = ("model", "runtime")

METRICS = (
    # -- GPU and memory controller ----------------------------------------------------------------
    Metric("gpu_load_ratio", "ratio", "GPU utilisation, 0..1.", GPU, chart="chart-gpu"),
    Metric("gpu_freq_hz", "hertz", "Current GPU clock.", GPU, chart="chart-gpu"),
    Metric("gpu_freq_max_hz", "hertz", "Maximum GPU clock allowed now.", ("jtop", "tegra_sysfs", "nvml"), live=True),
    Metric("gpu_freq_min_hz", "hertz", "Minimum GPU clock allowed now.", ("jtop", "tegra_sysfs")),
    Metric("gpu_memory_used_bytes", "bytes", "GPU memory in use (dGPU, Thor).", ("jtop", "nvml")),
    Metric("gpu_memory_total_bytes", "bytes", "GPU memory (dGPU, Thor).", ("jtop", "nvml")),
    Metric("gpu_memory_free_bytes", "bytes", "GPU memory free (dGPU).", ("nvml",)),
    Metric("gpu_memory_busy_ratio", "ratio", "Share of time the GPU memory was read or written, 0..1.", ("nvml",)),
    Metric("gpu_memory_freq_hz", "hertz", "GPU memory clock (dGPU).", ("nvml",)),
    Metric("gpu_power_limit_watts", "watts", "GPU power limit (dGPU).", ("nvml",)),
    Metric("gpu_energy_joules_total", "joules", "GPU energy since the driver loaded (dGPU).", ("nvml",),
           type="counter"),
    Metric("gpu_throttle_active", "1", "1 while the GPU is throttled for power or heat (dGPU).", ("nvml",)),
    Metric("gpu_process_memory_bytes", "bytes", "GPU memory of one process.", ("jtop", "tegra_sysfs", "nvml"),
           labels=("gpu", "pid", "process")),
    Metric("gpu_shared_memory_bytes", "bytes", "RAM used by the integrated GPU (nvmap).", ("jtop", "tegra_sysfs"),
           live=True),
    Metric("emc_load_ratio", "ratio", "Memory controller (EMC) utilisation, 0..1.", SOC, chart="chart-gpu"),
    Metric("emc_freq_hz", "hertz", "Memory controller clock.", SOC),
    Metric("emc_freq_max_hz", "hertz", "Maximum memory controller clock.", ("jtop", "tegra_sysfs")),
    Metric("engine_active", "1", "1 while an accelerator engine (NVENC, DLA, ...) is on.", ("jtop", "tegrastats"),
           labels=("engine",)),
    Metric("engine_load_ratio", "ratio", "Accelerator engine utilisation, 0..1.", ("tegrastats",), labels=("engine",)),
    Metric("engine_freq_hz", "hertz", "Accelerator engine clock.", ("jtop", "tegrastats"), labels=("engine",)),
    Metric("jetson_clocks_active", "1", "1 while jetson_clocks pins the clocks.", ("jtop", "tegra_sysfs")),
    # -- memory -----------------------------------------------------------------------------------
    Metric("ram_total_bytes", "bytes", "Total RAM.", JETSON_HOST, chart="chart-host"),
    Metric("ram_used_bytes", "bytes", "RAM in use.", JETSON_HOST, chart="chart-host"),
    Metric("ram_available_bytes", "bytes", "RAM available to new work.", ("host", "jtop"), live=True),
    Metric("ram_largest_free_block_bytes", "bytes", "Largest free block of RAM (tegrastats lfb).", ("tegrastats",),
           live=True),
    Metric("ram_largest_free_block_count", "1", "How many of the largest free blocks there are (tegrastats lfb).",
           ("tegrastats",), live=True),
    Metric("swap_total_bytes", "bytes", "Total swap.", JETSON_HOST, live=True),
    Metric("swap_used_bytes", "bytes", "Swap in use.", JETSON_HOST, chart="chart-host"),
    Metric("swap_cached_bytes", "bytes", "Swap cached in RAM.", ("jtop", "tegrastats"), live=True),
    Metric("memory_pressure_some_ratio", "ratio", "PSI memory some avg10 / 100.", ("cgroup",)),
    Metric("memory_pressure_full_ratio", "ratio", "PSI memory full avg10 / 100.", ("cgroup",)),
    Metric("host_oom_kills_total", "1", "OOM kills on the host since boot.", ("cgroup",), type="counter"),
    # -- CPU and host -----------------------------------------------------------------------------
    Metric("cpu_load_ratio", "ratio", "Per-core CPU utilisation, 0..1.", JETSON_HOST, labels=("cpu",),
           chart="chart-cpu"),
    Metric("cpu_total_load_ratio", "ratio", "Mean CPU utilisation over the online cores, 0..1.", JETSON_HOST,
           live=True),
    Metric("cpu_freq_hz", "hertz", "Per-core CPU clock.", JETSON_HOST, labels=("cpu",)),
    Metric("cpu_online", "1", "1 while the core is online.", ("jtop", "tegrastats"), labels=("cpu",)),
    Metric("load_average_1m", "1", "Load average over 1 minute.", ("host",)),
    Metric("load_average_5m", "1", "Load average over 5 minutes.", ("host",)),
    Metric("load_average_15m", "1", "Load average over 15 minutes.", ("host",)),
    Metric("host_processes_running", "1", "Runnable processes.", ("host",)),
    Metric("host_processes", "1", "Processes and threads.", ("host",)),
    Metric("host_logical_cpus", "1", "Logical CPUs.", ("host",)),
    Metric("uptime_seconds", "seconds", "Time since boot.", ("jtop",)),
    Metric("irq_interrupts_total", "1", "Interrupts per IRQ and CPU.", ("irq",), labels=("cpu", "irq"),
           type="counter", chart="chart-irq"),
    Metric("irq_isolated_cpus", "1", "CPUs isolated from the scheduler.", ("irq",)),
    # -- thermal, power, fans ---------------------------------------------------------------------
    Metric("temperature_celsius", "celsius", "Thermal zone temperature.", ("host", *SOC, "nvml"), labels=("zone",),
           chart="chart-temp"),
    Metric("power_watts", "watts", "Power rail draw.", (*SOC, "nvml"), labels=("rail",), chart="chart-power"),
    Metric("power_avg_watts", "watts", "Power rail draw, mean since the sampler started.", ("jtop", "tegrastats"),
           labels=("rail",)),
    Metric("fan_speed_ratio", "ratio", "Fan speed, 0..1.", ("jtop", "tegra_sysfs", "nvml"), labels=("fan",),
           live=True),
    Metric("fan_rpm", "rpm", "Fan speed.", ("jtop", "tegra_sysfs"), labels=("fan",)),
    # -- cgroups ----------------------------------------------------------------------------------
    Metric("cgroup_memory_bytes", "bytes", "Memory charged to the cgroup.", ("cgroup",), labels=("cgroup",)),
    Metric("cgroup_memory_max_bytes", "bytes", "Memory limit of the cgroup.", ("cgroup",), labels=("cgroup",)),
    Metric("cgroup_memory_high_bytes", "bytes", "Memory throttling point of the cgroup (v2 memory.high).",
           ("cgroup",), labels=("cgroup",)),
    Metric("cgroup_memory_anon_bytes", "bytes", "Anonymous memory of the cgroup.", ("cgroup",), labels=("cgroup",)),
    Metric("cgroup_memory_file_bytes", "bytes", "Page cache charged to the cgroup.", ("cgroup",), labels=("cgroup",)),
    Metric("cgroup_memory_pressure_some_ratio", "ratio", "PSI memory some avg10 / 100 of the cgroup (v2).",
           ("cgroup",), labels=("cgroup",)),
    Metric("cgroup_oom_kills_total", "1", "OOM kills inside the cgroup.", ("cgroup",), labels=("cgroup",),
           type="counter"),
    Metric("cgroup_memory_limit_hits_total", "1", "Times the cgroup reached its memory limit.", ("cgroup",),
           labels=("cgroup",), type="counter"),
    # -- inference runtimes -----------------------------------------------------------------------
    Metric("runtime_up", "1", "1 while the inference runtime's processes run.", ("runtimes",), labels=("runtime",)),
    Metric("runtime_api_up", "1", "1 while the inference runtime's API answers.", ("runtimes",), labels=("runtime",)),
    Metric("runtime_processes", "1", "Processes of the runtime.", ("runtimes",), labels=("runtime",)),
    Metric("runtime_memory_bytes", "bytes", "RSS plus GPU memory of the runtime's processes.", ("runtimes",),
           labels=("runtime",), chart="chart-memory"),
    Metric("runtime_rss_bytes", "bytes", "Resident memory of the runtime's processes.", ("runtimes",),
           labels=("runtime",)),
    Metric("runtime_gpu_memory_bytes", "bytes", "GPU memory of the runtime's processes.", ("runtimes",),
           labels=("runtime",)),
    Metric("runtime_ceiling_bytes", "bytes", "Configured memory ceiling of the runtime.", ("runtimes",),
           labels=("runtime",), chart="chart-memory"),
    Metric("runtime_model_bytes", "bytes", "Memory of one loaded model.", ("runtimes",), labels=RM),
    Metric("runtime_model_vram_bytes", "bytes", "GPU memory of one loaded model.", ("runtimes",), labels=RM),
    Metric("runtime_iteration_seconds", "seconds", "Mean engine iteration time (TensorRT-LLM).",
           ("latency_scrape",), labels=("runtime",)),
    # -- request latency (proxy or the runtimes' own counters) -----------------------------------
    Metric("request_queue_seconds", "seconds", "Mean time requests waited before running.", LATENCY, labels=RM,
           live=True),
    Metric("request_ttft_seconds", "seconds", "Mean time to the first token.", LATENCY, labels=RM, live=True),
    Metric("request_total_seconds", "seconds", "Mean request duration.", LATENCY, labels=RM, live=True),
    Metric("request_compute_seconds", "seconds", "Mean time requests spent computing.", ("latency_scrape",),
           labels=RM, live=True),
    Metric("request_decode_tokens_per_second", "1/s", "Decode speed (tokens per second of generation).", LATENCY,
           labels=RM, live=True),
    Metric("request_prompt_tokens_per_second", "1/s", "Prompt processing speed (tokens per second).", LATENCY,
           labels=RM, live=True),
    Metric("requests_running", "1", "Requests running now.", LATENCY, labels=("runtime",)),
    Metric("requests_waiting", "1", "Requests waiting now.", LATENCY, labels=("runtime",)),
    Metric("requests_rejected_total", "1", "Requests the proxy rejected (admission).", ("proxy",),
           labels=("runtime",), type="counter"),
    Metric("requests_total", "1", "Requests the runtime finished.", ("latency_scrape",), labels=RM, type="counter"),
    Metric("latency_scrape_up", "1", "1 while the runtime's metrics endpoint answers.", ("latency_scrape",),
           labels=("runtime",)),
    Metric("canary_up", "1", "1 while the canary request to the runtime succeeded.", ("canary",), labels=RM),
    Metric("canary_decode_tokens_per_second", "1/s", "Decode speed of the canary request.", ("canary",), labels=RM),
    Metric("canary_ttft_seconds", "seconds", "Time to first token of the canary request.", ("canary",), labels=RM),
    # -- derived on the server from the requests stream ------------------------------------------
    Metric("request_latency_p50_seconds", "seconds", "Median request duration per time bucket.", ("dashboard",),
           labels=RM, chart="chart-latency"),
    Metric("request_latency_p99_seconds", "seconds", "99th percentile request duration per time bucket.",
           ("dashboard",), labels=RM, chart="chart-latency"),
    Metric("request_ttft_p50_seconds", "seconds", "Median time to first token per time bucket.", ("dashboard",),
           labels=RM, chart="chart-ttft"),
    Metric("request_tokens_per_second", "1/s", "Median decode speed per time bucket.", ("dashboard",), labels=RM,
           chart="chart-ttft"),
    Metric("request_slo_compliance_ratio", "ratio", "Share of requests within the SLO deadline.", ("dashboard",),
           labels=RM, chart="chart-slo"),
    Metric("request_count", "1", "Requests finished per time bucket.", ("dashboard",), labels=RM, live=True),
    # -- the agent itself -------------------------------------------------------------------------
    Metric("agent_source_up", "1", "1 while the agent's source last collected without error.", ("agent",),
           labels=("source",)),
    Metric("agent_source_rejected_total", "1", "Fields of a source's records the agent dropped as over the bounds "
           "of what a device may claim (collectors/bounds.py).", ("agent",), labels=("source",), type="counter"),
    Metric("agent_buffered_records", "1", "Records waiting in the agent's outbox.", ("agent",)),
    Metric("agent_dropped_records_total", "1", "Records the agent's outbox dropped when full.", ("agent",),
           type="counter"),
    Metric("jtop_up", "1", "1 while the jtop service answers.", ("jtop",)),
    Metric("tegrastats_lines_total", "1", "Lines the tegrastats process printed.", ("tegrastats",), type="counter"),
    Metric("tegrastats_unparsed_lines_total", "1", "tegrastats lines that could not be parsed.", ("tegrastats",),
           type="counter"),
    Metric("jtop_interval_seconds", "seconds", "Sampling interval of the jtop service.", ("jtop",)),
)

BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}
CHART_IDS = tuple(c.id for c in CHARTS)
# Series the dashboard sends to the browser and keeps in rollups (the IRQ heatmap has its own path).
LIVE_NAMES = frozenset(m.name for m in METRICS if (m.chart is not None and m.chart != "chart-irq") or m.live)


def metric(name: str) -> Metric:
    """The catalog entry of `name`; KeyError names the missing metric."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"metric {name!r} is not in collectors/catalog.py") from None


def known(name: str) -> str:
    """`name`, after checking it is catalogued (for modules that keep a name in a constant)."""
    return metric(name).name


def help_text(name: str) -> str:
    entry = BY_NAME.get(name)
    return entry.help if entry is not None else f"ThoxDash series {name} (latest value reported by the device)."


def metric_type(name: str) -> MetricType:
    entry = BY_NAME.get(name)
    if entry is not None:
        return entry.type
    return "counter" if name.endswith("_total") else "gauge"


@lru_cache(maxsize=64)
def written_by(source: str) -> frozenset[str]:
    """Every metric name the source named `source` writes."""
    return frozenset(m.name for m in METRICS if source in m.sources)


def chart_series() -> dict[str, list[str]]:
    """{chart id: [metric names it draws]}, every chart listed (the page config carries it)."""
    out: dict[str, list[str]] = {c.id: [] for c in CHARTS}
    for m in METRICS:
        if m.chart is not None:
            out[m.chart].append(m.name)
    return out
