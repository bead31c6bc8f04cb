"""GET /api/alerts, acknowledge and silence over the API (token or session + CSRF), and the
/alerts/ page with its forms (staff only, everything escaped)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from advisors.models import Alert, ApiToken, Silence

pytestmark = pytest.mark.django_db


@pytest.fixture
def alerts():
    now = timezone.now()
    firing = Alert.objects.create(device="orin-1", rule="latency_slo_breach", severity="warning",
                                  labels={"runtime": "triton", "model": "yolo26n"}, fingerprint="a1",
                                  summary="<script>alert(1)</script> p99 52 ms", starts_at=now)
    old = Alert.objects.create(device="orin-1", rule="oom_kill", severity="critical", labels={"runtime": "ollama"},
                               fingerprint="b2", state=Alert.RESOLVED, summary="killed ollama",
                               starts_at=now - timedelta(hours=1), ends_at=now - timedelta(minutes=50))
    return firing, old


@pytest.fixture
def staff():
    return User.objects.create_user("ops", password="ops-pass-123", is_staff=True)


def bearer(user: User, scopes: str = "read") -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {ApiToken.issue(user, scopes=scopes)[1]}"}


def test_list_firing_resolved_and_all(alerts, staff):
    client = Client()
    assert client.get("/api/alerts").status_code == 401
    firing = client.get("/api/alerts?state=firing", **bearer(staff)).json()
    assert [a["rule"] for a in firing] == ["latency_slo_breach"]
    assert firing[0]["labels"] == {"runtime": "triton", "model": "yolo26n"} and firing[0]["ends_at"] is None
    assert firing[0]["acknowledged_by"] is None and firing[0]["silenced_until"] is None
    resolved = client.get("/api/alerts?state=resolved", **bearer(staff)).json()
    assert [a["rule"] for a in resolved] == ["oom_kill"] and resolved[0]["ends_at"]
    assert len(client.get("/api/alerts?state=all", **bearer(staff)).json()) == 2
    assert client.get("/api/alerts?state=bogus", **bearer(staff)).status_code == 400


def test_ack_and_silence_with_a_token(alerts, staff):
    firing, _ = alerts
    client = Client()
    assert client.post(f"/api/alerts/{firing.pk}/ack", **bearer(staff, "read")).status_code == 401
    acked = client.post(f"/api/alerts/{firing.pk}/ack", **bearer(staff, "read,act")).json()
    assert acked["acknowledged_by"] == "ops" and acked["acknowledged_at"]
    resp = client.post(f"/api/alerts/{firing.pk}/silence", data={"duration_s": 600, "comment": "maintenance"},
                       content_type="application/json", **bearer(staff, "read,act"))
    assert resp.status_code == 201
    silence = resp.json()
    assert silence["rule"] == "latency_slo_breach" and silence["matchers"] == firing.labels and silence["active"]
    listed = client.get("/api/alerts", **bearer(staff)).json()[0]
    assert listed["silenced_until"] == silence["expires_at"]
    assert [s["id"] for s in client.get("/api/silences", **bearer(staff)).json()] == [silence["id"]]
    expired = client.post(f"/api/silences/{silence['id']}/expire", **bearer(staff, "read,act")).json()
    assert expired["active"] is False
    assert client.get("/api/silences", **bearer(staff)).json() == []
    assert client.post(f"/api/alerts/{firing.pk}/silence", data={"duration_s": -5},
                       content_type="application/json", **bearer(staff, "read,act")).status_code == 400
    assert client.post("/api/alerts/99999/ack", **bearer(staff, "read,act")).status_code == 404


def test_non_staff_cannot_ack_and_sessions_need_csrf(alerts, staff):
    firing, _ = alerts
    viewer = User.objects.create_user("viewer", password="viewer-pass-123")
    assert Client().post(f"/api/alerts/{firing.pk}/ack", **bearer(viewer, "read,act")).status_code == 403
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    assert client.post(f"/api/alerts/{firing.pk}/ack").status_code == 403
    page = client.get("/alerts/")
    token = page.cookies["csrftoken"].value
    assert client.post(f"/api/alerts/{firing.pk}/ack", HTTP_X_CSRFTOKEN=token).status_code == 200


def test_alerts_page_escapes_and_its_forms_ack_and_silence(alerts, staff):
    firing, _ = alerts
    client = Client()
    client.force_login(staff)
    html = client.get("/alerts/").content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert f'action="/alerts/{firing.pk}/ack"' in html and "killed ollama" in html
    client.post(f"/alerts/{firing.pk}/ack")
    client.post(f"/alerts/{firing.pk}/silence", {"duration_s": "900", "comment": "known"})
    firing.refresh_from_db()
    assert firing.acknowledged_by == staff
    row = Silence.objects.get()
    assert row.matchers == firing.labels and row.expires_at > timezone.now() + timedelta(minutes=14)
    html = client.get("/alerts/").content.decode()
    assert "acknowledged by ops" in html and "silenced until" in html
    client.post(f"/silences/{row.pk}/expire")
    assert not Silence.active().exists()


def test_viewers_see_the_page_without_forms(alerts):
    viewer = User.objects.create_user("viewer", password="viewer-pass-123")
    client = Client()
    client.force_login(viewer)
    html = client.get("/alerts/").content.decode()
    assert "latency_slo_breach" in html and "/ack" not in html
    assert client.post(f"/alerts/{alerts[0].pk}/ack").status_code == 403
