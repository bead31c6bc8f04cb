from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "collectors/demo/agx-orin-demo.jsonl"


def run(path, *args) -> list[dict]:
    import io

    out = io.StringIO()
    call_command("evaluate", str(path), "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def test_quiet_recording_prints_empty_list(tmp_path):
    rec = tmp_path / "quiet.jsonl"
    rec.write_text("\n".join(json.dumps({"ts": 1000 + i, "source": "jtop", "values": {
        'runtime_memory_bytes{runtime="ollama"}': 2.0e9}}) for i in range(30)) + "\n")
    assert run(rec) == []


def test_demo_recording_fires_ceiling_alerts_with_contract_fields():
    alerts = run(DEMO)
    rules = {a["rule"] for a in alerts}
    assert {"runtime_memory_near_ceiling", "runtime_memory_over_ceiling"} <= rules
    for alert in alerts:
        assert set(alert) == {"rule", "severity", "labels", "starts_at", "ends_at", "summary"}
        assert alert["severity"] in ("info", "warning", "critical")
    near = next(a for a in alerts if a["rule"] == "runtime_memory_near_ceiling")
    assert near["labels"] == {"runtime": "ollama"}
    assert "reaches its ceiling in ~" in near["summary"] or "ceiling" in near["summary"]


def test_config_file_overrides_recording_ceilings(tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"runtimes": [{"name": "ollama", "kind": "ollama", "ceiling_bytes": 50e9}]}))
    assert [a for a in run(DEMO, "--config", str(cfg)) if a["labels"].get("runtime") == "ollama"
            and a["rule"].startswith("runtime_memory")] == []


def test_malformed_recording_is_a_clear_error(tmp_path):
    rec = tmp_path / "bad.jsonl"
    rec.write_text('{"ts": 1, "source": "a", "values": {}}\n{"ts": 2, "source"\n')
    with pytest.raises(CommandError, match="line 2: invalid JSON"):
        run(rec)


def text(path, *args) -> str:
    import io

    out = io.StringIO()
    call_command("evaluate", str(path), *args, stdout=out)
    return out.getvalue()


def test_text_output_is_words_and_local_times(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        out = text(DEMO)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    line = next(line for line in out.splitlines() if "runtime_memory_near_ceiling" in line)
    assert "(runtime ollama)" in line and "{" not in out and "'" not in line
    assert " PST" in line or " PDT" in line          # local wall-clock time, zone named
    assert not any(tok.replace(".", "").isdigit() and len(tok) >= 10 for tok in out.split())  # no epoch floats


FIXTURES = ROOT / "tests/fixtures/real"


@pytest.mark.parametrize("name,kind", [
    ("bkubwimana__tegra_inference__tegrastats.csv", "power_gui_csv"),
    ("joshua41057__*tegrastats*.log", "tegrastats"),
    ("jbecirovski__*maxn-lcq4km-1__power.csv", "power_csv"),
])
def test_tegrastats_logs_and_power_csvs_are_imported(name, kind):
    path = next(FIXTURES.glob(name))
    out = text(path)
    first = out.splitlines()[0]
    assert first.startswith("imported ") and f"({kind})" in first
    assert int(first.split()[1]) > 10


def test_an_unknown_format_names_what_it_accepts(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello world\n")
    with pytest.raises(CommandError, match="tegrastats logs and Jetson power CSVs"):
        text(path)
