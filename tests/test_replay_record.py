from __future__ import annotations

import subprocess
import sys

from collectors.recording import load
from collectors.replay import replay


def test_record_then_replay_round_trips(tmp_path, store):
    out = tmp_path / "rec.jsonl"
    proc = subprocess.run([sys.executable, "-m", "collectors", "record", "--out", str(out), "--seconds", "2.2",
                           "--interval", "0.5"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    recording = load(out)
    assert recording.header["thoxdash_recording"] == 1
    assert isinstance(recording.header["config"], dict)  # the device's own config, for evaluate
    assert len([r for r in recording.records if r["source"] == "host"]) >= 3

    sent = replay(recording, store, "replayed", speed=0)
    assert sent == len(recording.records)
    back = store.read("replayed") + store.read("replayed", "requests") + store.read("replayed", "events")
    # replay adds one record: the recording's config, published into the device's state
    published = [r for r in back if r["source"] == "replay"]
    assert [list(r["state"]) for r in published] == [["config"]]
    back = [r for r in back if r["source"] != "replay"]
    back.sort(key=lambda r: r["ts"])
    offset = back[-1]["ts"] - recording.records[-1]["ts"]
    # Lossless: same records, same order, every timestamp shifted by one offset.
    assert [{**r, "ts": round(r["ts"] - offset, 3)} for r in back] == \
        [{**r, "ts": round(r["ts"], 3)} for r in recording.records]


def test_replay_paces_and_shifts_to_now(tmp_path, store):
    import time

    rec = tmp_path / "r.jsonl"
    rec.write_text("\n".join(f'{{"ts": {1000 + i}, "source": "s", "values": {{"x": {i}}}}}' for i in range(4)) + "\n")
    started = time.time()
    replay(load(rec), store, "paced", speed=4.0)
    elapsed = time.time() - started
    assert 0.6 < elapsed < 3
    got = [r for r in store.read("paced") if r["source"] != "replay"]
    assert abs(got[0]["ts"] - started) < 1.0
    assert [r["values"]["x"] for r in got] == [0, 1, 2, 3]
