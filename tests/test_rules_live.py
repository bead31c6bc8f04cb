"""LIVE = OFFLINE, on a real stack (real Redis, a Celery worker and beat, daphne).

The rule fixtures are replayed live, all at once at their recorded pace, one device each, with
`collectors replay`'s own function (which publishes each recording's header `config` into the
device's state as the agent does). The alerts the stack fires must be the ones `manage.py
evaluate` prints for the same files: same rule and labels, starting (and ending) within a few
seconds of the recording's clock shifted to the replay's. Then a device that falls silent reaches
a real loopback webhook receiver as device_down within 60 s of its last sample.
"""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.management import call_command

from collectors.recording import load
from collectors.replay import replay
from collectors.store import TelemetryStore, connect
from tests.receiver import Receiver

RULES_DIR = Path(__file__).resolve().parent / "fixtures/rules"
CUT_S = 110.0  # every fixture is replayed (and evaluated) up to this many seconds
TOLERANCE_S = 4.0
# Fixtures whose alerts depend on the header config (ceilings, priorities, SLOs, isolated CPUs,
# throttle points, clock policy), on silence, on failing sources, on the board, plus quiet ones.
FIXTURES = [
    "runtime_memory_over_ceiling__pos", "runtime_memory_over_ceiling__neg", "latency_slo_breach__pos",
    "irq_on_isolated_cpu__pos", "thermal_throttling__pos", "thermal_throttling__pos_orin_nano_no_hints",
    "gpu_clock_not_locked__pos_flag", "runtime_down__pos", "device_down__pos", "agent_source_down__pos",
    "oom_kill__pos", "memory_pressure_high__neg_blip",
]


@pytest.fixture(scope="module")
def live(redis_url, tmp_path_factory):
    from tests.conftest import RUN_PREFIX
    from tests.stack import Stack

    stack = Stack(tmp_path_factory.mktemp("live-offline"), redis_url, prefix=f"{RUN_PREFIX}liveoff:")
    stack.start()
    stack.spawn("beat", str(Path(sys.executable).parent / "celery"), "-A", "thoxdash", "beat", "-l", "warning",
                "-s", str(stack.tmp / "beat-schedule"))
    deadline = time.time() + 90  # the worker runs beat's cycles before any replay starts
    while "evaluate_all" not in stack.log("worker") or " ready." not in stack.log("worker"):
        if time.time() > deadline:
            pytest.fail("worker/beat not running: " + stack.log("worker")[-2000:] + stack.log("beat")[-1000:])
        time.sleep(0.5)
    yield stack
    stack.stop()
    TelemetryStore(connect(redis_url), prefix=stack.prefix).delete_prefix()


def cut(name: str, tmp: Path) -> Path:
    """The fixture's first CUT_S seconds, as a file both sides read."""
    rec = load(RULES_DIR / f"{name}.jsonl")
    first = rec.records[0]["ts"]
    lines = [json.dumps({"thoxdash_recording": 1, **rec.header})]
    lines += [json.dumps(r) for r in rec.records if r["ts"] - first <= CUT_S]
    path = tmp / f"{name}.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def offline(path: Path) -> list[dict]:
    out = io.StringIO()
    call_command("evaluate", str(path), "--json", stdout=out)
    return json.loads(out.getvalue())


def live_alerts(stack, devices: list[str]) -> list[dict]:
    code = ("import json; from advisors.models import Alert; print(json.dumps([{'device': a.device, "
            "'rule': a.rule, 'labels': a.labels, 'severity': a.severity, 'starts_at': a.starts_at.timestamp(), "
            "'ends_at': a.ends_at.timestamp() if a.ends_at else None} for a in Alert.objects.filter("
            f"device__in={devices!r})]))")
    return json.loads(stack.manage("shell", "-c", code).strip().splitlines()[-1])


def key(alert: dict) -> tuple:
    return alert["rule"], json.dumps(alert["labels"], sort_keys=True)


@pytest.mark.timeout(360)
def test_replayed_fixtures_fire_live_what_evaluate_prints(live, tmp_path):
    store = TelemetryStore(connect(live.env["REDIS_URL"]), prefix=live.prefix)
    files = {name: cut(name, tmp_path) for name in FIXTURES}
    devices = {name: f"lo-{i}" for i, name in enumerate(FIXTURES)}
    starts: dict[str, float] = {}
    threads = []
    for name, path in files.items():
        recording = load(path)

        def run(name=name, recording=recording) -> None:
            starts[name] = time.time()
            replay(recording, store, devices[name], speed=1.0)

        threads.append(threading.Thread(target=run, daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=CUT_S + 60)
    time.sleep(3)  # the last cycles evaluate the last records
    ended = time.time()
    got = live_alerts(live, list(devices.values()))
    problems = []
    for name, path in files.items():
        records = load(path).records
        first, length = records[0]["ts"], records[-1]["ts"] - records[0]["ts"]
        shift = starts[name] - first
        want = {key(a): a for a in offline(path)}
        # live alerts that started while the replay ran (the end of a replay is a silence of its own)
        have = {key(a): a for a in got if a["device"] == devices[name]
                and a["starts_at"] <= starts[name] + length + 2.0}
        if set(want) != set(have):
            problems.append(f"{name}: evaluate {sorted(want)} live {sorted(have)}")
            continue
        for k, a in want.items():
            b = have[k]
            if abs(b["starts_at"] - (a["starts_at"] + shift)) > TOLERANCE_S or a["severity"] != b["severity"]:
                problems.append(f"{name} {k}: starts {a['starts_at'] - first:.1f} s offline, "
                                f"{b['starts_at'] - starts[name]:.1f} s live ({a['severity']}/{b['severity']})")
            if a["ends_at"] is not None and (b["ends_at"] is None
                                             or abs(b["ends_at"] - (a["ends_at"] + shift)) > TOLERANCE_S):
                problems.append(f"{name} {k}: ends {a['ends_at'] - first:.1f} s offline, live {b['ends_at']}")
            if a["ends_at"] is None and b["ends_at"] is not None and b["ends_at"] < ended - 20:
                problems.append(f"{name} {k}: still firing offline, resolved live")
    assert not problems, "\n".join(problems) + "\nworker log:\n" + live.log("worker")[-800:]
    assert any(a["rule"] == "device_down" for a in got)  # the silence case is part of the comparison


@pytest.mark.timeout(180)
def test_device_silent_reaches_the_webhook_as_device_down(live):
    store = TelemetryStore(connect(live.env["REDIS_URL"]), prefix=live.prefix)
    device = "silent-1"
    with Receiver(secret="dd") as rx:
        live.manage("webhook", "add", rx.url, "--format", "alertmanager", "--secret", "dd")
        store.register_device(device, board={"kind": "jetson", "model": "test"})
        for _ in range(5):
            store.publish(device, [{"ts": time.time(), "source": "agent",
                                    "values": {'agent_source_up{source="host"}': 1.0}}])
            time.sleep(1)
        last = time.time()
        while True:  # the receiver also hears the other tests' devices; wait for this one
            got = rx.wait_for(len(rx.received) + 1, timeout_s=max(0.1, last + 60 - time.time()))[-1]
            alerts = [a for a in got.json["alerts"] if a["labels"].get("device") == device]
            if alerts:
                break
        assert alerts[0]["labels"]["alertname"] == "device_down" and alerts[0]["labels"]["severity"] == "critical"
        assert got.json["status"] == "firing" and got.signature_ok
        assert got.at - last < 60
        store.publish(device, [{"ts": time.time(), "source": "agent",
                                "values": {'agent_source_up{source="host"}': 1.0}}])
        deadline = time.time() + 30
        while time.time() < deadline:
            bodies = [r.json for r in rx.received if any(a["labels"].get("device") == device
                                                            and a["status"] == "resolved" for a in r.json["alerts"])]
            if bodies:
                break
            time.sleep(0.2)
        assert bodies, "device_down did not resolve when data returned"
