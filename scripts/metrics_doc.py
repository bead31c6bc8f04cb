"""Write docs/METRICS.md from the metric catalog (collectors/catalog.py).

    python scripts/metrics_doc.py          # rewrite docs/METRICS.md
    python scripts/metrics_doc.py --check  # exit 1 when the file is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collectors.catalog import CHARTS, METRICS  # noqa: E402

OUT = ROOT / "docs/METRICS.md"


def render() -> str:
    titles = {c.id: c.title for c in CHARTS}
    lines = [
        "# Metrics",
        "",
        "Generated from `collectors/catalog.py` by `python scripts/metrics_doc.py`; do not edit by hand.",
        "In Prometheus (`GET /metrics`) every name gets the `thoxdash_` prefix and a `device` label; `_hz` is",
        "exported as `_hertz` (node_exporter's convention), a gauge whose name ends in `_total` without it, and",
        "`pid` labels are summed over. Request histograms and ThoxDash's own health: deploy/README.md \"Prometheus\".",
        "Sources: the agent's source that writes the series; `dashboard` = derived on the server from",
        "the requests stream (chart data only, never stored by a device).",
        "",
        "| name | type | unit | labels | help | written by | chart |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in METRICS:
        chart = titles.get(m.chart, "") if m.chart else ("(sent live)" if m.live else "")
        lines.append(f"| `{m.name}` | {m.type} | {m.unit} | {', '.join(m.labels)} | {m.help} | "
                     f"{', '.join(m.sources)} | {chart} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when docs/METRICS.md is out of date")
    args = parser.parse_args()
    text = render()
    if args.check:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print("docs/METRICS.md is out of date: run python scripts/metrics_doc.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
