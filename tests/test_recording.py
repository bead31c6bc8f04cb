from __future__ import annotations

import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collectors.recording import RecordingError, load, write
from collectors.series import SeriesKeyError, parse_series_key, series_key


def test_series_key_sorts_and_escapes_labels():
    key = series_key("runtime_model_bytes", runtime="ollama", model='evil"\\\nname')
    assert key == 'runtime_model_bytes{model="evil\\"\\\\\\nname",runtime="ollama"}'
    assert parse_series_key(key) == ("runtime_model_bytes", {"model": 'evil"\\\nname', "runtime": "ollama"})


@given(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True), st.text(max_size=30), max_size=4))
def test_series_key_round_trips(labels):
    assert parse_series_key(series_key("some_metric_bytes", **labels)) == ("some_metric_bytes", labels)


@pytest.mark.parametrize("bad", ["1abc", 'x{a="1"', 'x{a=1}', 'x{="1"}', "x y"])
def test_bad_series_keys_are_rejected(bad):
    with pytest.raises(SeriesKeyError):
        parse_series_key(bad)


def _write(tmp_path, lines):
    path = tmp_path / "rec.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_load_normalizes_labels_and_keeps_every_kind(tmp_path):
    path = _write(tmp_path, [
        json.dumps({"thoxdash_recording": 1, "device": "d1", "config": {"isolated_cpus": "4-7"}}),
        json.dumps({"ts": 1.0, "source": "jtop", "values": {'x_bytes{b="2",a="1"}': 5}}),
        json.dumps({"ts": 2.0, "source": "tuning", "state": {"thp": "never"}}),
        json.dumps({"ts": 3.0, "source": "request", "request": {"runtime": "ollama", "total_s": 1.5}}),
        json.dumps({"ts": 4.0, "source": "event", "event": {"kind": "oom_kill"}}),
    ])
    rec = load(path)
    assert rec.device == "d1" and rec.config == {"isolated_cpus": "4-7"}
    assert rec.records[0]["values"] == {'x_bytes{a="1",b="2"}': 5}
    assert [next(k for k in ("values", "state", "request", "event") if k in r) for r in rec.records] == \
        ["values", "state", "request", "event"]


@pytest.mark.parametrize("line,message", [
    ("{not json", "invalid JSON"),
    ('{"ts": "soon", "source": "x", "values": {}}', "'ts' must be a finite number"),
    ('{"ts": 1, "source": "x", "values": {"a": "high"}}', "must be a finite number"),
    ('{"ts": 1, "source": "x", "values": {"a": NaN}}', "must be a finite number"),
    ('{"ts": 1, "source": "x"}', "none of values/state/request/event"),
    ('{"ts": 1, "source": "x", "event": {"no": "kind"}}', "string 'kind'"),
    ("[1, 2]", "expected a JSON object"),
])
def test_malformed_line_names_its_number(tmp_path, line, message):
    path = _write(tmp_path, ['{"ts": 1, "source": "a", "values": {"x": 1}}', line])
    with pytest.raises(RecordingError) as err:
        load(path)
    assert "line 2" in str(err.value) and message in str(err.value)
    assert err.value.line == 2


def test_non_utf8_and_out_of_order_lines(tmp_path):
    path = tmp_path / "bin.jsonl"
    path.write_bytes(b'{"ts": 1, "source": "a", "values": {}}\n\xff\xfe\n')
    with pytest.raises(RecordingError, match="line 2: not valid UTF-8"):
        load(path)
    path = _write(tmp_path, ['{"ts": 5, "source": "a", "values": {}}', '{"ts": 4, "source": "a", "values": {}}'])
    with pytest.raises(RecordingError, match="line 2: records must be in time order"):
        load(path)


def test_write_then_load_is_lossless(tmp_path):
    records = [{"ts": 10.5, "source": "host",
                "values": {"ram_used_bytes": 123456789.0, 'cpu_load_ratio{cpu="0"}': 0.25}},
               {"ts": 11.0, "source": "request", "request": {"runtime": "ollama", "model": "<b>x</b>", "total_s": 0.1}}]
    buf = io.StringIO()
    write(buf, {"device": "d"}, records)
    path = tmp_path / "out.jsonl"
    path.write_text(buf.getvalue())
    assert load(path).records == records
