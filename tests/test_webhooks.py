"""Webhook delivery against a real HTTP receiver on loopback: formats, HMAC (verified by the
receiver), retries for 5xx/429/timeouts/refused connections, permanent 4xx disabling the webhook,
idempotent attempts, silences and severity filters."""

from __future__ import annotations

import io
import json
import random
import time
import uuid
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from advisors.alerting import evaluate_device
from advisors.models import Alert, Delivery, DeviceSettings, Silence, Webhook
from advisors.notify.dispatch import plan
from advisors.notify.sender import attempt, backoff_s, send_test
from tests.receiver import Answer, Receiver, dead_url

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_webhooks(settings):
    settings.WEBHOOK_TIMEOUT_S = 0.5
    settings.WEBHOOK_MAX_AGE_S = 3600.0
    settings.WEBHOOK_BACKOFF_BASE_S = 0.2
    settings.WEBHOOK_BACKOFF_CAP_S = 5.0


def firing_alert(device: str = "orin-1", rule: str = "runtime_memory_over_ceiling", severity: str = "critical",
                 labels: dict | None = None) -> Alert:
    return Alert.objects.create(device=device, rule=rule, severity=severity, labels=labels or {"runtime": "ollama"},
                                fingerprint=f"fp-{device}-{rule}-{Alert.objects.count()}",
                                summary="ollama uses 5.23 GiB, over its 5.12 GiB ceiling", starts_at=timezone.now())


def one_delivery(hook: Webhook, alert: Alert) -> Delivery:
    deliveries = plan([alert])
    assert [d.webhook_id for d in deliveries] == [hook.pk]
    return deliveries[0]


def test_alertmanager_payload_is_signed_and_verified_by_the_receiver():
    with Receiver(secret="s3cret") as rx:
        hook = Webhook.objects.create(url=rx.url, format="alertmanager", secret="s3cret")
        alert = firing_alert()
        delivery = one_delivery(hook, alert)
        assert attempt(delivery.pk).status == "sent"
        got = rx.wait_for(1)[0]
    assert got.signature_ok is True
    assert got.headers["Idempotency-Key"] == delivery.idempotency_key
    body = got.json
    assert body["version"] == "4" and body["status"] == "firing"
    assert {"groupKey", "receiver", "groupLabels", "commonLabels", "commonAnnotations", "externalURL",
            "alerts", "truncatedAlerts"} <= set(body)
    item = body["alerts"][0]
    assert item["labels"] == {"alertname": "runtime_memory_over_ceiling", "device": "orin-1",
                              "severity": "critical", "runtime": "ollama"}
    assert item["fingerprint"] == alert.fingerprint and item["endsAt"] == "0001-01-01T00:00:00Z"
    assert item["startsAt"].endswith("Z") and item["generatorURL"].startswith("http")
    assert body["commonLabels"]["alertname"] == "runtime_memory_over_ceiling"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.http_status) == ("sent", 1, 200)
    assert delivery.duration_ms is not None and delivery.error == ""


def test_a_wrong_secret_fails_verification_on_the_receiver():
    with Receiver(secret="the-real-one") as rx:
        hook = Webhook.objects.create(url=rx.url, format="json", secret="not-it")
        attempt(one_delivery(hook, firing_alert()).pk)
        assert rx.wait_for(1)[0].signature_ok is False


def test_slack_and_generic_json_bodies():
    with Receiver() as rx:
        Webhook.objects.create(url=rx.url, format="slack")
        Webhook.objects.create(url=rx.url, format="json")
        alert = firing_alert(labels={"runtime": "<script>"})
        for d in plan([alert]):
            attempt(d.pk)
        got = rx.wait_for(2)
    slack = next(r.json for r in got if "blocks" in r.json)
    assert "orin-1" in slack["text"] and slack["blocks"][0]["type"] == "header"
    assert "&lt;script&gt;" in slack["blocks"][1]["text"]["text"] and "<script>" not in json.dumps(slack)
    generic = next(r.json for r in got if "source" in r.json)
    assert generic["status"] == "firing" and generic["alerts"][0]["rule"] == "runtime_memory_over_ceiling"
    assert generic["alerts"][0]["labels"] == {"runtime": "<script>"}


def test_500_then_success_retries_with_backoff():
    with Receiver(script=[Answer(500, body="boom"), Answer(200)]) as rx:
        hook = Webhook.objects.create(url=rx.url, format="json")
        delivery = one_delivery(hook, firing_alert())
        first = attempt(delivery.pk)
        assert first.status == "retrying" and 0.1 <= first.retry_in <= 0.2
        delivery.refresh_from_db()
        assert (delivery.status, delivery.http_status, delivery.error) == ("retrying", 500, "HTTP 500: boom")
        assert delivery.next_attempt_at is not None
        assert attempt(delivery.pk).status == "sent"
        rx.wait_for(2)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    # both attempts carried the same body and key: the receiver can de-duplicate
    assert rx.received[0].body == rx.received[1].body
    assert rx.received[0].headers["Idempotency-Key"] == rx.received[1].headers["Idempotency-Key"]


def test_429_honours_retry_after():
    with Receiver(script=[Answer(429, headers={"Retry-After": "3"})]) as rx:
        delivery = one_delivery(Webhook.objects.create(url=rx.url), firing_alert())
        outcome = attempt(delivery.pk)
    assert outcome.status == "retrying" and 3.0 <= outcome.retry_in <= 5.0


def test_slow_receiver_times_out_and_is_retried(settings):
    with Receiver(default=Answer(200, delay_s=2.0)) as rx:
        delivery = one_delivery(Webhook.objects.create(url=rx.url), firing_alert())
        outcome = attempt(delivery.pk)
        rx.wait_for(1)
    assert outcome.status == "retrying"
    delivery.refresh_from_db()
    assert delivery.error.startswith("timeout after 0.5 s") and delivery.http_status is None
    assert delivery.duration_ms < 1900


def test_receiver_down_is_retried_until_the_notification_expires_by_age(settings):
    hook = Webhook.objects.create(url=dead_url(), format="alertmanager")
    delivery = one_delivery(hook, firing_alert())
    outcomes = [attempt(delivery.pk).status for _ in range(12)]
    assert outcomes == ["retrying"] * 12  # no attempt count ends it
    Delivery.objects.filter(pk=delivery.pk).update(created_at=timezone.now() - timedelta(seconds=3601))
    assert attempt(delivery.pk).status == "failed"
    delivery.refresh_from_db()
    assert delivery.attempts == 13 and "expired" in delivery.error and "connection failed" in delivery.error
    hook.refresh_from_db()
    assert hook.enabled  # a dead receiver is not a configuration error


def test_backlog_goes_out_in_order_once_the_receiver_is_back():
    from advisors.notify.sender import next_in_line

    hook = Webhook.objects.create(url=dead_url(), format="json")
    rows = [one_delivery(hook, firing_alert(device=f"orin-{i}")) for i in range(4)]
    assert attempt(rows[0].pk).status == "retrying"
    # the newer rows wait behind the undelivered oldest one: not claimable, nothing sent
    assert [attempt(r.pk) for r in rows[1:]] == [None, None, None]
    with Receiver() as rx:  # the receiver is back (at a new address: same thing for the sender)
        Webhook.objects.filter(pk=hook.pk).update(url=rx.url)
        outcome = attempt(rows[0].pk)
        chain = [outcome.status]
        while outcome.next_pk is not None:
            outcome = attempt(outcome.next_pk)
            chain.append(outcome.status)
        got = rx.wait_for(4)
    assert chain == ["sent"] * 4
    assert [r.json["device"] for r in got] == ["orin-0", "orin-1", "orin-2", "orin-3"]
    assert next_in_line(hook.pk) is None


def test_permanent_4xx_disables_the_webhook_with_a_visible_reason():
    with Receiver(default=Answer(404, body="channel_not_found")) as rx:
        hook = Webhook.objects.create(url=rx.url, format="slack")
        delivery = one_delivery(hook, firing_alert())
        assert attempt(delivery.pk).status == "permanent"
        rx.wait_for(1)
    hook.refresh_from_db()
    assert not hook.enabled and "HTTP 404: channel_not_found" in hook.disabled_reason
    assert plan([firing_alert(rule="oom_kill")]) == []  # disabled webhooks get nothing new
    out = io.StringIO()
    call_command("webhook", "list", stdout=out)
    assert "DISABLED" in out.getvalue() and "channel_not_found" in out.getvalue()


def test_an_attempt_is_claimed_once():
    with Receiver() as rx:
        delivery = one_delivery(Webhook.objects.create(url=rx.url), firing_alert())
        assert attempt(delivery.pk).status == "sent"
        assert attempt(delivery.pk) is None  # a redelivered task finds the row sent
        rx.wait_for(1)
    assert len(rx.received) == 1


def test_the_same_transitions_plan_one_delivery():
    with Receiver() as rx:
        Webhook.objects.create(url=rx.url)
        alert = firing_alert()
        assert len(plan([alert])) == 1
        assert plan([alert]) == []


def test_silence_mutes_until_it_expires_and_min_severity_filters():
    with Receiver() as rx:
        Webhook.objects.create(url=rx.url, min_severity="critical")
        Silence.objects.create(device="orin-1", rule="runtime_memory_over_ceiling", matchers={"runtime": "ollama"},
                               expires_at=timezone.now() + timedelta(hours=1))
        assert plan([firing_alert()]) == []
        assert plan([firing_alert(rule="swap_in_use", severity="warning", labels={})]) == []
        Silence.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
        assert len(plan([firing_alert()])) == 1


def test_backoff_is_capped_exponential_with_jitter():
    rng = random.Random(1)
    delays = [backoff_s(n, rng=rng) for n in range(1, 10)]
    assert all(d <= 5.0 for d in delays)
    assert 0.1 <= delays[0] <= 0.2 and delays[-1] >= 2.5
    assert len({round(d, 6) for d in delays}) == len(delays)


def test_live_cycle_fires_then_resolves_and_both_reach_the_receiver(django_capture_on_commit_callbacks):
    """The production path: the beat's evaluate_batch task evaluates, plans the deliveries in the
    alert's transaction and starts them on commit (captured here, then attempted)."""
    from advisors import tasks
    from advisors.telemetry import store as web_store

    store = web_store()
    now = time.time()
    device = f"wh-{uuid.uuid4().hex[:6]}"
    key = 'runtime_memory_bytes{runtime="ollama"}'
    store.register_device(device)
    store.publish(device, [{"ts": now - 2 + i, "source": "jtop", "values": {key: 5.7e9}} for i in range(3)])
    with Receiver(secret="k") as rx:
        Webhook.objects.create(url=rx.url, format="alertmanager", secret="k")
        with django_capture_on_commit_callbacks() as started:
            assert tasks.evaluate_batch([device], now)["fired"] == 1
        assert tasks.evaluate_batch([device], now)["fired"] == 0  # the same cycle again: nothing new
        assert len(started) == 1
        for d in Delivery.objects.filter(status=Delivery.PENDING):
            attempt(d.pk)
        store.publish(device, [{"ts": now + 1, "source": "jtop", "values": {key: 2.0e9}}])
        with django_capture_on_commit_callbacks() as started:
            assert tasks.evaluate_batch([device], now + 1)["resolved"] == 1
        assert len(started) == 1
        for d in Delivery.objects.filter(status=Delivery.PENDING):
            attempt(d.pk)
        got = rx.wait_for(2)
    assert [r.json["status"] for r in got] == ["firing", "resolved"]
    assert got[1].json["notification_reason"] == "all alerts resolved"
    assert got[1].json["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
    assert all(r.signature_ok for r in got)


def test_webhook_command_add_list_test():
    with Receiver(secret="abc") as rx:
        out = io.StringIO()
        call_command("webhook", "add", rx.url, "--format", "slack", "--secret", "abc", "--min-severity", "critical",
                     stdout=out)
        assert "added webhook" in out.getvalue()
        hook = Webhook.objects.get()
        assert (hook.format, hook.secret, hook.min_severity) == ("slack", "abc", "critical")
        call_command("webhook", "test", str(hook.pk), stdout=io.StringIO())
        got = rx.wait_for(1)[0]
        assert got.signature_ok and "blocks" in got.json
        out = io.StringIO()
        call_command("webhook", "list", "--json", stdout=out)
        listed = json.loads(out.getvalue())
        assert listed[0]["last_delivery"]["status"] == "sent" and listed[0]["signed"] is True
    with pytest.raises(CommandError, match="not an http"):
        call_command("webhook", "add", "ftp://x", stdout=io.StringIO())


def test_send_test_reports_failure_without_disabling():
    with Receiver(default=Answer(401, body="invalid_token")) as rx:
        hook = Webhook.objects.create(url=rx.url)
        delivery = send_test(hook)
        rx.wait_for(1)
    assert delivery.status == "permanent" and "401" in delivery.error
    hook.refresh_from_db()
    assert hook.enabled


def test_escalation_to_critical_reaches_critical_only_receivers(store):
    now = 1_800_000_100.0
    with Receiver() as rx:
        Webhook.objects.create(url=rx.url, min_severity="critical")
        DeviceSettings.objects.create(device="orin-2", thresholds={"for_s": {"memory_pressure_high": 0}})
        store.publish("orin-2", [{"ts": now, "source": "jtop", "values": {"memory_pressure_some_ratio": 0.5}}])
        first = evaluate_device(store, "orin-2", now)
        assert [a.severity for a in first["fired"]] == ["warning"] and plan(first["fired"]) == []
        store.publish("orin-2", [{"ts": now + 1, "source": "jtop", "values": {"memory_pressure_full_ratio": 0.3}}])
        second = evaluate_device(store, "orin-2", now + 1)
        assert [a.severity for a in second["escalated"]] == ["critical"]
        for d in plan(second["escalated"]):
            attempt(d.pk)
        body = rx.wait_for(1)[0].json
    assert body["alerts"][0]["rule"] == "memory_pressure_high" and body["alerts"][0]["severity"] == "critical"


def test_sweep_resends_only_the_head_of_each_webhooks_backlog(monkeypatch):
    from advisors.notify import dispatch

    hook = Webhook.objects.create(url=dead_url(), format="json")
    rows = [one_delivery(hook, firing_alert(device=f"orin-{i}")) for i in range(3)]
    other = Webhook.objects.create(url=dead_url(), format="json")
    lone = plan([firing_alert(device="orin-x")])
    lone = [d for d in lone if d.webhook_id == other.pk]
    past = timezone.now() - timedelta(seconds=60)
    Delivery.objects.update(next_attempt_at=past)
    queued: list[int] = []
    monkeypatch.setattr(dispatch, "enqueue", lambda pk, countdown=0.0: queued.append(pk))
    assert dispatch.sweep() == 2
    assert queued == [rows[0].pk, lone[0].pk]  # the rows behind the head wait for it
    # a head stuck in `sending` (its worker died) whose claim lapsed is picked up as well
    Delivery.objects.filter(pk=rows[0].pk).update(status=Delivery.SENDING, locked_until=past)
    queued.clear()
    dispatch.sweep()
    assert queued == [rows[0].pk, lone[0].pk]
