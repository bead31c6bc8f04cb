"""Push into a real Alertmanager (`webhook add URL --format alertmanager-api`), end to end: Redis,
a Celery worker + beat, daphne, and Debian's prometheus-alertmanager.

A ceiling breach appears in Alertmanager's API within seconds with ThoxDash's labels and
annotations; while it fires it is re-sent every resend delay (its endsAt moves on); when the breach
ends it resolves there. Plus the payload rules themselves (plain functions)."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from advisors.notify import NOTIFIERS
from advisors.notify.alertmanager_api import AlertmanagerApiNotifier, label_name, postable
from advisors.notify.base import AlertView, Context
from collectors.store import TelemetryStore, connect
from tests.alertmanager import Alertmanager

KEY = 'runtime_memory_bytes{runtime="ollama"}'
DEVICE = "am-orin"


def view(status: str = "firing", **labels: str) -> AlertView:
    return AlertView(7, DEVICE, "runtime_memory_over_ceiling", "critical", labels or {"runtime": "ollama"},
                     "f" * 16, status, "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z" if status == "resolved" else None,
                     "ollama over its ceiling", "http://thox:8090/alerts/?fingerprint=ffff")


def test_payload_labels_annotations_and_ends_at():
    now = datetime(2026, 1, 1, 0, 1, tzinfo=timezone.utc)
    firing = postable(view(), now, 60.0)
    assert firing["labels"] == {"alertname": "runtime_memory_over_ceiling", "device": DEVICE,
                                "severity": "critical", "runtime": "ollama"}
    assert firing["endsAt"] == "2026-01-01T00:05:00Z"  # now + 4 x resend delay, as Prometheus
    assert firing["startsAt"] == "2026-01-01T00:00:00Z"
    assert firing["generatorURL"] == "http://thox:8090/alerts/?fingerprint=ffff"
    assert firing["annotations"]["summary"] == "ollama over its ceiling"
    assert "ollama is over its memory ceiling" in firing["annotations"]["description"]
    assert firing["annotations"]["runbook_url"] == f"http://thox:8090/advisor/?device={DEVICE}"
    resolved = postable(view("resolved"), now, 60.0)
    assert resolved["endsAt"] == "2026-01-01T00:05:00Z"
    odd = postable(view(**{"0bad-name": "x", "empty": ""}), now, 60.0)["labels"]
    assert odd["_0bad_name"] == "x" and "empty" not in odd
    assert label_name("a.b") == "a_b"


def test_registry_derives_formats_and_endpoint():
    from advisors.models import Webhook

    assert [f for f, _ in Webhook.FORMATS] == list(NOTIFIERS)
    assert "alertmanager-api" in NOTIFIERS
    am = AlertmanagerApiNotifier()
    assert am.endpoint("http://am:9093") == "http://am:9093/api/v2/alerts"
    assert am.endpoint("http://am:9093/api/v2/alerts") == "http://am:9093/api/v2/alerts"
    body = am.payload([view()], Context(1, "http://thox:8090", DEVICE))
    assert isinstance(body, list) and body[0]["labels"]["alertname"] == "runtime_memory_over_ceiling"


@pytest.fixture(scope="module")
def live(redis_url, tmp_path_factory):
    from tests.conftest import RUN_PREFIX
    from tests.stack import Stack

    stack = Stack(tmp_path_factory.mktemp("am-stack"), redis_url, prefix=f"{RUN_PREFIX}am:")
    stack.env["THOXDASH_ALERTMANAGER_RESEND_S"] = "2"
    stack.start()
    stack.spawn("beat", str(Path(sys.executable).parent / "celery"), "-A", "thoxdash", "beat", "-l", "warning",
                "-s", str(stack.tmp / "beat-schedule"))
    yield stack
    stack.stop()
    TelemetryStore(connect(redis_url), prefix=stack.prefix).delete_prefix()


def publish(stack, values: dict[str, float]) -> None:
    store = TelemetryStore(connect(stack.env["REDIS_URL"]), prefix=stack.prefix)
    store.register_device(DEVICE, board="orin")
    store.publish(DEVICE, [{"ts": time.time(), "source": "jtop", "values": values}])


def test_breach_fires_resends_and_resolves_in_real_alertmanager(live, tmp_path):
    with Alertmanager(tmp_path) as am:
        out = live.manage("webhook", "add", am.url, "--format", "alertmanager-api", "--secret", "k1")
        assert "alertmanager-api" in out
        publish(live, {KEY: 4.0e9})
        time.sleep(2)
        publish(live, {KEY: 5.8e9})
        try:
            got = am.wait(lambda a: len(a) == 1, timeout_s=30, alertname="runtime_memory_over_ceiling",
                          device=DEVICE)[0]
        except TimeoutError as exc:
            pytest.fail(f"{exc}\nworker log:\n{live.log('worker')[-3000:]}\nalertmanager:\n{am.log()[-2000:]}")
        assert got["labels"] == {"alertname": "runtime_memory_over_ceiling", "device": DEVICE,
                                 "severity": "critical", "runtime": "ollama"}
        assert got["status"]["state"] == "active"
        assert got["annotations"]["summary"]
        assert "memory ceiling" in got["annotations"]["description"]
        assert got["generatorURL"].startswith("http://127.0.0.1:") and "/alerts/?fingerprint=" in got["generatorURL"]
        first_ends = got["endsAt"]
        # re-sent while firing: Alertmanager's copy is refreshed (endsAt = last send + 4 x 2 s)
        am.wait(lambda a: a and a[0]["endsAt"] > first_ends, timeout_s=20, alertname="runtime_memory_over_ceiling")
        publish(live, {KEY: 2.0e9})
        try:
            am.wait(lambda a: not a, timeout_s=30, alertname="runtime_memory_over_ceiling", device=DEVICE)
        except TimeoutError as exc:
            pytest.fail(f"{exc}\nworker log:\n{live.log('worker')[-3000:]}")
    rows = json.loads(live.manage("shell", "-c", (
        "import json; from advisors.models import Delivery; "
        "print(json.dumps([[d.kind, d.status, d.http_status] for d in Delivery.objects.order_by('pk')]))"
    )).strip().splitlines()[-1])
    kinds = {k for k, _, _ in rows}
    assert {"alert", "resend"} <= kinds
    assert all(status == "sent" and code == 200 for _, status, code in rows), rows


@pytest.mark.django_db
def test_settings_page_offers_every_format_and_adds_an_alertmanager_push(client, django_user_model):
    from advisors.models import Webhook

    staff = django_user_model.objects.create_user("am-staff", password="pw-123456", is_staff=True)
    client.force_login(staff)
    page = client.get("/settings/").content.decode()
    for fmt in NOTIFIERS:
        assert f'value="{fmt}"' in page, fmt
    r = client.post("/settings/webhooks", {"op": "add", "url": "http://am.example:9093", "format": "alertmanager-api",
                                           "min_severity": "warning", "secret": ""})
    assert r.status_code == 302
    hook = Webhook.objects.get(url="http://am.example:9093")
    assert hook.format == "alertmanager-api"
    assert NOTIFIERS[hook.format].endpoint(hook.url) == "http://am.example:9093/api/v2/alerts"


@pytest.mark.django_db
def test_resend_plans_one_row_per_tick_skips_silenced_and_prunes_old_sent(monkeypatch):
    from datetime import timedelta

    from advisors.models import Alert, Delivery, Silence, Webhook
    from advisors.notify import alertmanager_resend

    now = datetime(2026, 1, 1, 12, 0, 30, tzinfo=timezone.utc)
    hook = Webhook.objects.create(url="http://127.0.0.1:9/", format="alertmanager-api", min_severity="warning")
    Webhook.objects.create(url="http://127.0.0.1:9/", format="json")  # other formats are not re-sent
    Alert.objects.create(device="d1", rule="swap_in_use", severity="warning", fingerprint="a" * 16,
                         starts_at=now - timedelta(minutes=5), summary="swap")
    Alert.objects.create(device="d2", rule="oom_kill", severity="critical", fingerprint="b" * 16,
                         starts_at=now - timedelta(minutes=5), summary="oom")
    Alert.objects.create(device="d3", rule="swap_in_use", severity="info", fingerprint="c" * 16,
                         starts_at=now - timedelta(minutes=5), summary="below min severity")
    Silence.objects.create(device="d2", expires_at=now + timedelta(hours=1))
    old = Delivery.objects.create(webhook=hook, kind="resend", status=Delivery.SENT, payload=[],
                                  idempotency_key="amresend:old")
    Delivery.objects.filter(pk=old.pk).update(created_at=now - timedelta(hours=1))
    monkeypatch.setattr(alertmanager_resend, "start_now", lambda pk: None)  # plan only: no HTTP here
    first = alertmanager_resend.resend_firing(now)
    again = alertmanager_resend.resend_firing(now + timedelta(seconds=10))  # same 60 s tick
    later = alertmanager_resend.resend_firing(now + timedelta(seconds=60))
    assert len(first) == 1 and again == [] and len(later) == 1
    row = Delivery.objects.get(pk=first[0])
    assert row.kind == "resend" and row.webhook_id == hook.pk
    assert [a["labels"]["device"] for a in row.payload] == ["d1"]
    assert row.payload[0]["endsAt"] == "2026-01-01T12:04:30Z"
    assert not Delivery.objects.filter(pk=old.pk).exists()
