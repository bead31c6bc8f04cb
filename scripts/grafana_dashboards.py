"""Write deploy/grafana/dashboards/*.json (fleet and device) from one description.

    python scripts/grafana_dashboards.py          # rewrite the dashboards
    python scripts/grafana_dashboards.py --check  # exit 1 when a file is out of date

Names come from ThoxDash's /metrics (thoxdash/metrics.py, thoxdash/histograms.py,
thoxdash/selfmetrics.py); tests/test_prometheus_histograms.py runs every panel query against a real
Prometheus scraping a running stack. Panels use the `datasource` variable; the device dashboard the
`device` variable; fleet panels link to the device dashboard. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "deploy" / "grafana" / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
RI = "$__rate_interval"
TTFT = "thoxdash_request_time_to_first_token_seconds"
DURATION = "thoxdash_request_duration_seconds"
QUEUE = "thoxdash_request_queue_time_seconds"
DECODE = "thoxdash_request_decode_speed_tokens_per_second"
DEVICE_LINK = [{"title": "Open ${__field.labels.device} (ThoxDash / Device)",
                "url": "/d/thoxdash-device?var-device=${__field.labels.device}&${__url_time_range}"}]

Target = str | tuple[str, str]


def panel(pid: int, title: str, exprs: list[Target], pos: tuple[int, int, int, int], kind: str = "timeseries",
          unit: str | None = None, legend: str = "", desc: str = "", link: bool = False) -> dict[str, Any]:
    x, y, w, h = pos
    targets = []
    for i, e in enumerate(exprs):
        expr, leg = e if isinstance(e, tuple) else (e, legend)
        targets.append({"datasource": DS, "expr": expr, "legendFormat": leg, "refId": chr(65 + i), "range": True})
    defaults: dict[str, Any] = {}
    if unit:
        defaults["unit"] = unit
    if link:
        defaults["links"] = DEVICE_LINK
    out: dict[str, Any] = {"id": pid, "type": kind, "title": title, "datasource": DS,
                           "gridPos": {"x": x, "y": y, "w": w, "h": h}, "targets": targets,
                           "fieldConfig": {"defaults": defaults, "overrides": []}, "options": {}}
    if desc:
        out["description"] = desc
    return out


def quantile(metric: str, q: float, by: str, sel: str = "") -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{sel}[{RI}])))"


def dashboard(uid: str, title: str, panels: list[dict[str, Any]], device_variable: bool) -> dict[str, Any]:
    variables: list[dict[str, Any]] = [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                        "label": "Prometheus", "current": {}, "hide": 0, "refresh": 1}]
    if device_variable:
        variables.append({"name": "device", "type": "query", "label": "Device", "datasource": DS,
                          "query": {"query": "label_values(thoxdash_device_up, device)", "refId": "device"},
                          "definition": "label_values(thoxdash_device_up, device)", "refresh": 2, "current": {},
                          "includeAll": False, "multi": False, "sort": 1, "hide": 0})
    return {"uid": uid, "title": title, "tags": ["thoxdash"], "timezone": "browser", "schemaVersion": 39,
            "version": 1, "editable": True, "refresh": "30s", "time": {"from": "now-1h", "to": "now"},
            "templating": {"list": variables}, "annotations": {"list": []},
            "links": [{"title": "ThoxDash dashboards", "type": "dashboards", "tags": ["thoxdash"],
                       "asDropdown": False}],
            "panels": panels}


def fleet() -> dict[str, Any]:
    return dashboard("thoxdash-fleet", "ThoxDash / Fleet", [
        panel(1, "Devices up", ["sum(thoxdash_device_up)"], (0, 0, 6, 4), "stat"),
        panel(2, "Devices down", ["count(thoxdash_device_up == 0) or vector(0)"], (6, 0, 6, 4), "stat"),
        panel(3, "Alerts firing", ["thoxdash_alerts_firing"], (12, 0, 12, 4), "stat", legend="{{severity}}"),
        panel(4, "GPU load", ["thoxdash_gpu_load_ratio"], (0, 4, 12, 8), unit="percentunit", legend="{{device}}",
              link=True),
        panel(5, "RAM in use", ["thoxdash_ram_used_bytes / thoxdash_ram_total_bytes"], (12, 4, 12, 8),
              unit="percentunit", legend="{{device}}", link=True),
        panel(6, "Hottest thermal zone", ["max by (device) (thoxdash_temperature_celsius)"], (0, 12, 12, 8),
              unit="celsius", legend="{{device}}", link=True),
        panel(7, "Power", ["sum by (device) (thoxdash_power_watts)"], (12, 12, 12, 8), unit="watt",
              legend="{{device}}", link=True),
        panel(8, "Time to first token, p99", [quantile(TTFT, 0.99, "device")], (0, 20, 12, 8), unit="s",
              legend="{{device}}", link=True),
        panel(9, "Requests by status", [f"sum by (device, status) (rate(thoxdash_recorded_requests_total[{RI}]))"],
              (12, 20, 12, 8), unit="reqps", legend="{{device}} {{status}}", link=True),
        panel(10, "Rule evaluation lag", ["thoxdash_rules_evaluation_lag_seconds"], (0, 28, 8, 8), unit="s",
              desc="Seconds since the newest rule evaluation batch ended (ThoxDash itself)."),
        panel(11, "Rule batch time (mean)",
              [f"rate(thoxdash_rules_cycle_seconds_total[{RI}]) / rate(thoxdash_rules_cycles_total[{RI}])"],
              (8, 28, 8, 8), unit="s"),
        panel(12, "Webhook outbox and Celery queue",
              [("thoxdash_webhook_deliveries", "deliveries {{status}}"),
               ("thoxdash_celery_queue_length", "queue {{queue}}")], (16, 28, 8, 8)),
    ], device_variable=False)


def device() -> dict[str, Any]:
    sel = '{device="$device"}'
    by = "runtime, model"
    return dashboard("thoxdash-device", "ThoxDash / Device", [
        panel(1, "Up", [f"thoxdash_device_up{sel}"], (0, 0, 4, 4), "stat"),
        panel(2, "GPU load", [(f"thoxdash_gpu_load_ratio{sel}", "load")], (4, 0, 10, 8), unit="percentunit"),
        panel(3, "GPU clock", [(f"thoxdash_gpu_freq_hertz{sel}", "GPU")], (14, 0, 10, 8), unit="hertz"),
        panel(4, "CPU load per core", [f"thoxdash_cpu_load_ratio{sel}"], (0, 8, 12, 8), unit="percentunit",
              legend="cpu {{cpu}}"),
        panel(5, "Memory", [(f"thoxdash_ram_used_bytes{sel}", "RAM used"),
                            (f"thoxdash_ram_total_bytes{sel}", "RAM total"),
                            (f"thoxdash_swap_used_bytes{sel}", "swap used")], (12, 8, 12, 8), unit="bytes"),
        panel(6, "Temperatures", [f"thoxdash_temperature_celsius{sel}"], (0, 16, 12, 8), unit="celsius",
              legend="{{zone}}"),
        panel(7, "Power", [f"thoxdash_power_watts{sel}"], (12, 16, 12, 8), unit="watt", legend="{{rail}}"),
        panel(8, "Runtime memory vs ceiling", [(f"thoxdash_runtime_memory_bytes{sel}", "{{runtime}}"),
                                               (f"thoxdash_runtime_ceiling_bytes{sel}", "{{runtime}} ceiling")],
              (0, 24, 12, 8), unit="bytes"),
        panel(9, "Memory pressure (PSI some avg10)", [f"thoxdash_memory_pressure_some_ratio{sel}"], (12, 24, 12, 8),
              unit="percentunit"),
        panel(10, "Time to first token", [(quantile(TTFT, 0.5, by, sel), "p50 {{runtime}} {{model}}"),
                                          (quantile(TTFT, 0.99, by, sel), "p99 {{runtime}} {{model}}")],
              (0, 32, 12, 8), unit="s"),
        panel(11, "Request duration", [(quantile(DURATION, 0.5, by, sel), "p50 {{runtime}} {{model}}"),
                                       (quantile(DURATION, 0.99, by, sel), "p99 {{runtime}} {{model}}")],
              (12, 32, 12, 8), unit="s"),
        panel(12, "Queue time, p99", [(quantile(QUEUE, 0.99, by, sel), "{{runtime}} {{model}}")], (0, 40, 12, 8),
              unit="s"),
        panel(13, "Decode speed, median", [(quantile(DECODE, 0.5, by, sel), "{{runtime}} {{model}}")],
              (12, 40, 12, 8), desc="Completion tokens per second of finished requests (tok/s)."),
        panel(14, "Requests by status",
              [(f"sum by (runtime, model, status) (rate(thoxdash_recorded_requests_total{sel}[{RI}]))",
                "{{runtime}} {{model}} {{status}}")], (0, 48, 24, 8), unit="reqps"),
    ], device_variable=True)


def render() -> dict[str, str]:
    return {f"{d['uid']}.json": json.dumps(d, indent=2) + "\n" for d in (fleet(), device())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a dashboard file is out of date")
    args = parser.parse_args()
    for name, text in render().items():
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                print(f"{path.relative_to(ROOT)} is out of date: run python scripts/grafana_dashboards.py",
                      file=sys.stderr)
                return 1
            continue
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
