"""The metric catalog (collectors/catalog.py) is the one list of series names: every name the
sources write is in it under that source, /metrics HELP/TYPE, the dashboard's chart lists, the
proxy's names and docs/METRICS.md come from it; and each series has one owner (host defers)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from collectors import catalog
from collectors.agent import Agent
from collectors.series import parse_series_key
from collectors.sources.base import Source
from collectors.sources.host import HostSource
from collectors.sources.irq import IrqSource
from collectors.sources.jtop import JtopSource, raw_values
from collectors.sources.nvml import GpuSample, sample_values
from collectors.sources.registry import agent_sources
from collectors.sources.tegra_sysfs import TegraSysfsSource, sysfs_values
from collectors.sources.tegrastats import parse_line
from scripts import metrics_doc
from tests.jetson_tree import ORIN_NANO_LOG, JetsonTree

ROOT = Path(__file__).resolve().parent.parent
JTOP_FIXTURE = Path(__file__).parent / "fixtures/jtop/orin_nano_sim_jtop_7.2.2.json"
UNITS = {"ratio", "bytes", "hertz", "celsius", "watts", "seconds", "joules", "rpm", "1", "1/s"}


def names(values: dict[str, float]) -> set[str]:
    return {parse_series_key(k)[0] for k in values}


def assert_catalogued(source: str, written: set[str]) -> None:
    missing = sorted(n for n in written if n not in catalog.BY_NAME)
    assert not missing, f"{source} writes names missing from collectors/catalog.py: {missing}"
    wrong = sorted(n for n in written if source not in catalog.BY_NAME[n].sources)
    assert not wrong, f"collectors/catalog.py does not list {source} as a writer of {wrong}"


def test_catalog_is_well_formed():
    assert len(catalog.BY_NAME) == len(catalog.METRICS)  # no name twice
    for m in catalog.METRICS:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", m.name), m.name
        assert m.unit in UNITS, (m.name, m.unit)
        assert (m.type == "counter") == m.name.endswith("_total"), m.name
        assert m.help.endswith(".") and m.sources, m.name
        assert m.chart is None or m.chart in catalog.CHART_IDS, m.name
    assert all(catalog.chart_series()[c] for c in catalog.CHART_IDS)  # every chart draws something
    with pytest.raises(KeyError, match="not in collectors/catalog.py"):
        catalog.known("no_such_metric")


def test_jetson_sources_write_only_catalogued_names(tmp_path):
    raw = json.loads(JTOP_FIXTURE.read_text())["raw"]
    assert_catalogued("jtop", names(raw_values(raw)[0]))
    stats: set[str] = set()
    for line in ORIN_NANO_LOG.read_text(encoding="utf-8").splitlines()[:200]:
        sample = parse_line(line.split("|", 1)[-1])
        if sample is not None:
            stats |= names(sample.values)
    assert "ram_used_bytes" in stats
    assert_catalogued("tegrastats", stats)
    for board in ("orin-nano-jp6", "agx-orin-jp5", "thor-jp7"):
        tree = JetsonTree(tmp_path / board, board).build()
        tree.set_processes({42: ("python3", 1000)})
        assert_catalogued("tegra_sysfs", names(sysfs_values(tree.root)))


def test_host_irq_nvml_agent_and_latency_names_are_catalogued():
    host = HostSource(root=Path("/"))
    host.collect(time.time())
    assert_catalogued("host", names(host.collect(time.time() + 1)[0]["values"]))
    irq = IrqSource(root=Path("/"))
    assert_catalogued("irq", {n for r in irq.collect(time.time()) if "values" in r for n in names(r["values"])})
    sample = GpuSample(index=0, util_gpu=50, util_mem=10, mem_total=8e9, mem_used=1e9, mem_free=7e9,
                       clock_graphics=1000, clock_graphics_max=2000, clock_mem=5000, power_mw=50_000,
                       power_limit_mw=300_000, energy_mj=10_000, temperature=60, fan_percent=30, throttle_mask=0,
                       processes={7: 1e8}, process_names={7: "python"})
    assert_catalogued("nvml", names(sample_values([sample])))
    agent = Agent("t", [], store=None)
    try:
        assert_catalogued("agent", {n for r in agent.collect_due(time.time()) for n in names(r.get("values", {}))})
    finally:
        agent.close()
    from collectors.proxy.series import latency_values
    from thoxdash.latency import bucket_stats

    reqs = [{"ts": 10.0, "runtime": "ollama", "model": "m", "queue_s": 0.1, "ttft_s": 0.2, "total_s": 1.0,
             "completion_tokens": 10, "completion_s": 0.5, "prompt_tokens": 5, "prompt_s": 0.1}]
    assert_catalogued("proxy", names(latency_values("ollama", reqs)))
    derived = names(bucket_stats(reqs, 10.0, [{"runtime": "ollama", "model": "m", "deadline_s": 2}]))
    assert_catalogued("dashboard", derived)


def test_metrics_help_and_type_come_from_the_catalog():
    from thoxdash.metrics import render

    latest = {"d1": {"__ts": "100", 'gpu_load_ratio': "0.5", 'irq_interrupts_total{cpu="0",irq="5"}': "9",
                     "made_up_series": "1"}}
    body = render(latest, now=100.0, stale_after_s=30.0).decode()
    assert f"# HELP thoxdash_gpu_load_ratio {catalog.metric('gpu_load_ratio').help}" in body
    assert f"# HELP thoxdash_irq_interrupts_total {catalog.metric('irq_interrupts_total').help}" in body
    assert "# TYPE thoxdash_irq_interrupts_total counter" in body
    assert "# TYPE thoxdash_made_up_series gauge" in body  # unlisted: still exported, generic help


def test_dashboard_charts_follow_the_catalog():
    from thoxdash.live import to_columns, wanted

    assert wanted('temperature_celsius{zone="cpu"}') and wanted("request_count{model=\"m\",runtime=\"r\"}")
    assert not wanted("load_average_1m") and not wanted('irq_interrupts_total{cpu="0",irq="1"}')
    cols = to_columns([{"ts": 1.0, "values": {"ram_used_bytes": 1.0, "host_processes": 3.0}}])
    assert set(cols["series"]) == {"ram_used_bytes"}
    template = (ROOT / "templates/device.html").read_text()
    assert re.findall(r'id="(chart-[a-z]+)" class="plot', template) == list(catalog.CHART_IDS)
    js = (ROOT / "static/thoxdash/device.js").read_text()
    assert "cfg.charts" in js and "want: function" not in js  # the JS keeps no list of names


def test_docs_metrics_md_is_generated_and_up_to_date():
    assert (ROOT / "docs/METRICS.md").read_text(encoding="utf-8") == metrics_doc.render(), \
        "docs/METRICS.md is out of date: run python scripts/metrics_doc.py"


# -- one owner per series -----------------------------------------------------------------------

class _Named(Source):
    def collect(self, now: float) -> list[dict]:
        return []


def _host_names(host: HostSource) -> set[str]:
    host.collect(time.time())
    return names(host.collect(time.time() + 1)[0]["values"])


def test_host_leaves_jetson_series_to_tegrastats():
    alone = _host_names(HostSource(root=Path("/")))
    assert {"ram_used_bytes", "cpu_load_ratio", "load_average_1m"} <= alone
    host = HostSource(root=Path("/"), defer_to=[_Named(name="tegrastats")])
    shared = alone & catalog.written_by("tegrastats")
    got = _host_names(host)
    assert shared and not got & shared
    assert {"load_average_1m", "ram_available_bytes"} <= got  # tegrastats does not write these


def test_host_yields_to_jtop_only_while_jtop_delivers(tmp_path):
    tree = JetsonTree(tmp_path / "nano", "orin-nano-jp6").build()
    jtop = JtopSource(root=tree.root, fallback=TegraSysfsSource(root=tree.root))
    host = HostSource(root=tree.root, defer_to=[jtop])
    assert host.owned_elsewhere() == {"temperature_celsius"}  # not connected: the sysfs fallback's
    jtop._client = object()  # connected
    assert {"ram_used_bytes", "cpu_load_ratio", "temperature_celsius", "swap_used_bytes"} <= host.owned_elsewhere()
    assert "load_average_1m" not in host.owned_elsewhere()


def test_host_keeps_its_thermal_zones_beside_nvml():
    """NVML adds temperature_celsius{zone="gpu"}: its own label value, not the board's zones."""
    from collectors.sources.nvml import NvmlSource
    from collectors.sources.registry import host_owners
    from collectors.sources.tegrastats import TegrastatsSource

    nvml, stats = NvmlSource(root=Path("/")), TegrastatsSource(root=Path("/"))
    assert host_owners([nvml, stats, IrqSource(root=Path("/"))]) == [stats]
    assert HostSource(root=Path("/"), defer_to=host_owners([nvml])).owned_elsewhere() == frozenset()


def test_agent_sources_on_a_jetson_tree_have_one_writer_per_name(tmp_path):
    tree = JetsonTree(tmp_path / "nano", "orin-nano-jp6").build()
    sources = agent_sources(tree.root)
    by_name = {s.name: s for s in sources}
    assert "tegra_sysfs" in by_name and by_name["host"].defer_to  # type: ignore[attr-defined]
    written: dict[str, set[str]] = {}
    for source in sources:
        for record in source.collect(time.time()):
            for key in record.get("values", {}):
                written.setdefault(key, set()).add(source.name)
    shared = {k: v for k, v in written.items() if len(v) > 1}
    assert not shared, f"series written by two sources: {shared}"
    assert written['temperature_celsius{zone="cpu"}'] == {"tegra_sysfs"}


def test_every_literal_series_name_in_the_code_is_catalogued():
    """Static check over collectors/, advisors/ and thoxdash/: the first argument of series_key/key1/known and
    the string keys stored into a `values`/`out` dict that look like metric names."""
    import ast

    suffixes = ("_bytes", "_ratio", "_hz", "_celsius", "_watts", "_seconds", "_total", "_up", "_rpm")
    found: dict[str, str] = {}
    for package in ("collectors", "advisors", "thoxdash"):
        for path in (ROOT / package).rglob("*.py"):
            if "runtimes" in path.relative_to(ROOT).parts[:2]:
                continue  # collectors/runtimes/: each runtime's own metrics, under its own names
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                name = None
                if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                    func = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                    if func in ("series_key", "key1", "known", "_key", "put"):
                        name = node.args[0].value
                elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
                        and isinstance(node.ctx, ast.Store) and isinstance(node.value, ast.Name) \
                        and node.value.id in ("values", "out"):
                    name = node.slice.value
                if isinstance(name, str) and re.fullmatch(r"[a-z][a-z0-9_]*", name) and name.endswith(suffixes):
                    found.setdefault(name, str(path.relative_to(ROOT)))
    record_fields = {"response_bytes", "ceiling_bytes"}  # request-record and config fields, not series
    missing = {n: p for n, p in found.items() if n not in catalog.BY_NAME and n not in record_fields}
    assert len(found) > 40 and not missing, f"series names missing from collectors/catalog.py: {missing}"
