"""Web trust: who may change privileges (settings page and Django admin), password validators,
webhook secrets redacted for read-only users, the CSP with no inline script anywhere, secure cookies
and HSTS behind https, placeholder secrets refused at start, bounded series windows, bearer-only
authentication, the websocket origin rule, and device enrollment from Settings."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from advisors.models import ApiToken, Webhook
from advisors.telemetry import store as web_store
from collectors.actions.signing import derive_key
from tests.stack import ROOT
from thoxdash.origins import origin_allowed

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    root = User.objects.create_superuser("root", password="Root-pass-98765")
    staff = User.objects.create_user("ops", password="Ops-pass-98765", is_staff=True)
    viewer = User.objects.create_user("viewer", password="Viewer-pass-98765")
    return root, staff, viewer


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_only_superusers_change_flags_or_create_staff(people):
    root, staff, viewer = people
    ops = _client(staff)
    assert ops.post("/settings/users", {"op": "toggle_active", "user_id": root.pk}).status_code == 403
    assert ops.post("/settings/users", {"op": "toggle_staff", "user_id": viewer.pk}).status_code == 403
    assert ops.post("/settings/users", {"op": "create", "username": "mint", "password": "Mint-pass-98765",
                                        "is_staff": "on"}).status_code == 403
    root.refresh_from_db()
    assert root.is_active and not User.objects.filter(username="mint").exists()
    # staff may still add a plain user, with a password the validators accept
    ops.post("/settings/users", {"op": "create", "username": "weak", "password": "12345678"})
    assert not User.objects.filter(username="weak").exists()
    ops.post("/settings/users", {"op": "create", "username": "plain", "password": "Plain-pass-98765"})
    assert User.objects.get(username="plain").is_staff is False
    # a superuser may
    _client(root).post("/settings/users", {"op": "toggle_staff", "user_id": viewer.pk})
    viewer.refresh_from_db()
    assert viewer.is_staff


def test_admin_keeps_privileges_with_superusers(people):
    root, staff, viewer = people
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["change_user", "view_user", "delete_user"]))
    ops = _client(staff)
    # a superuser's row is view-only for them: a change is refused
    root_form = {"username": "root", "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"}
    assert ops.post(f"/admin/auth/user/{root.pk}/change/", root_form).status_code == 403
    assert b'name="is_active"' not in ops.get(f"/admin/auth/user/{root.pk}/change/").content
    root.refresh_from_db()
    assert root.is_active and root.is_superuser
    page = ops.get(f"/admin/auth/user/{viewer.pk}/change/")
    assert page.status_code == 200
    assert b'name="is_staff"' not in page.content and b'name="is_superuser"' not in page.content
    form = {"username": "viewer", "is_staff": "on", "is_superuser": "on", "is_active": "on",
            "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00", "initial-date_joined_0": "2026-01-01",
            "initial-date_joined_1": "00:00:00"}
    ops.post(f"/admin/auth/user/{viewer.pk}/change/", form)
    viewer.refresh_from_db()
    assert not viewer.is_staff and not viewer.is_superuser
    assert _client(root).get(f"/admin/auth/user/{viewer.pk}/change/").content.count(b'name="is_staff"') == 1


def test_webhook_urls_redacted_for_read_only_users(people):
    root, staff, viewer = people
    Webhook.objects.create(url="https://hooks.slack.com/services/T000/B000/SECRETPATH", format="slack",
                           enabled=False, disabled_reason="410 from https://hooks.slack.com/services/T000/B000/SECRETPATH")
    seen = _client(viewer).get("/settings/").content.decode()
    assert "SECRETPATH" not in seen and "https://hooks.slack.com/" in seen
    assert "SECRETPATH" in _client(staff).get("/settings/").content.decode()


def test_csp_header_and_no_inline_script_in_templates(people):
    response = _client(people[2]).get("/settings/")
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert "frame-ancestors 'none'" in csp
    handler = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
    inline = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
    for template in (ROOT / "templates").rglob("*.html"):
        text = template.read_text()
        assert not handler.search(text), f"inline event handler in {template.name}"
        assert not inline.search(text), f"inline <script> in {template.name}"
    # the rendered pages too (json_script blocks are data, not script)
    for body in (response.content.decode(), _client(people[2]).get("/advisor/").content.decode()):
        assert not handler.search(body)
        assert all("application/json" in m.group(0) for m in inline.finditer(body))


def _settings_of(**env: str) -> subprocess.CompletedProcess:
    code = ("import django, os; os.environ['DJANGO_SETTINGS_MODULE']='thoxdash.settings'; django.setup(); "
            "from django.conf import settings as s; "
            "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER)")
    full = {k: v for k, v in __import__("os").environ.items() if not k.startswith("THOXDASH_")}
    full.update({"THOXDASH_SECRET_KEY": "x" * 50, "THOXDASH_REDIS_PREFIX": "thoxtest:settings:", **env})
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full, capture_output=True, text=True, timeout=60)


def test_secure_cookies_and_hsts_follow_an_https_external_url():
    out = _settings_of(THOXDASH_EXTERNAL_URL="https://thox.example.org")
    assert out.stdout.split() == ["True", "True", "31536000", "('HTTP_X_FORWARDED_PROTO',", "'https')"], out.stderr
    out = _settings_of(THOXDASH_EXTERNAL_URL="http://127.0.0.1:8090")
    assert out.stdout.split() == ["False", "False", "0", "None"], out.stderr


@pytest.mark.parametrize(("name", "value", "says"), [
    ("THOXDASH_SECRET_KEY", "change-me-50-random-characters", "placeholder"),
    ("THOXDASH_SECRET_KEY", "abc123xyz", "shorter than"),
    ("THOXDASH_METRICS_TOKEN", "change-me-random", "placeholder"),
    ("THOXDASH_AGENT_MASTER_KEY", "change-me-random", "placeholder"),
    ("REDIS_URL", "redis://thoxdash:REDIS_PASSWORD@127.0.0.1:6379/0", "placeholder"),
])
def test_placeholder_secrets_are_refused_at_start(name, value, says):
    out = _settings_of(**{name: value})
    assert out.returncode != 0 and "ImproperlyConfigured" in out.stderr and says in out.stderr
    assert value not in out.stderr.strip().splitlines()[-1]  # the error names the problem, not the secret


def test_secret_from_a_file(tmp_path):
    secret = tmp_path / "master"
    secret.write_text("a-master-key-from-a-file-0123456789\n")
    code = ("import django, os; os.environ['DJANGO_SETTINGS_MODULE']='thoxdash.settings'; django.setup(); "
            "from django.conf import settings as s; print(s.AGENT_KEY)")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("THOXDASH_AGENT")}
    env.update({"THOXDASH_AGENT_MASTER_KEY_FILE": str(secret), "THOXDASH_SECRET_KEY": "y" * 50})
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "a-master-key-from-a-file-0123456789", out.stderr


def test_series_window_is_bounded_and_since_must_be_finite(people, settings, store):
    settings.REDIS_PREFIX = store.prefix
    web_store.cache_clear()
    try:
        store.register_device("win-1")
        now = time.time()
        store.publish("win-1", [{"ts": now - 7200 + i, "source": "s", "values": {"x": 1.0}} for i in range(5)]
                      + [{"ts": now - 10 + i, "source": "s", "values": {"x": 2.0}} for i in range(5)])
        client = _client(people[2])
        assert client.get("/api/devices/win-1/series?name=x&since=inf").status_code == 400
        assert client.get("/api/devices/win-1/series?name=x&since=nan").status_code == 400
        points = client.get("/api/devices/win-1/series?name=x&since=0").json()["points"]
        assert [p[1] for p in points] == [2.0] * 5  # the 2 h old records are outside the bound
    finally:
        web_store.cache_clear()


def test_a_bearer_header_authenticates_by_token_only(people):
    root, staff, viewer = people
    client = _client(viewer)
    assert client.get("/api/devices").status_code in (200, 503)
    assert client.get("/api/devices", HTTP_AUTHORIZATION="Bearer not-a-token").status_code == 401
    _, token = ApiToken.issue(viewer, scopes="read")
    assert Client().get("/api/alerts", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


@pytest.mark.parametrize(("origin", "host", "ok"), [
    ("http://127.0.0.1:8090", "127.0.0.1:8090", True),
    ("http://127.0.0.1:18999", "127.0.0.1:8090", False),  # another port of an allowed host
    ("https://127.0.0.1:8090", "127.0.0.1:8090", False),  # another scheme
    ("http://localhost", "127.0.0.1:8090", False),
    ("http://evil.example", "evil.example", False),        # a host not allowed
    ("null", "127.0.0.1:8090", False),
    ("", "127.0.0.1:8090", False),
    ("https://dash.example.org", "10.0.0.5:8090", True),   # the configured external URL
    ("https://dash.example.org:8443", "10.0.0.5:8090", False),
])
def test_websocket_origin_rule(origin, host, ok):
    allowed = ["127.0.0.1", "localhost", "10.0.0.5", "evil.example.net"]
    assert origin_allowed(origin, host, ["http"], allowed, ["https://dash.example.org"]) is ok


def test_enrollment_from_settings(people, settings, store):
    settings.REDIS_PREFIX = store.prefix
    settings.AGENT_KEY = "settings-master-key-0123456789"
    web_store.cache_clear()
    try:
        root, staff, viewer = people
        assert _client(viewer).post("/settings/devices", {"op": "enroll", "device": "orin-5"}).status_code == 403
        page = _client(staff).post("/settings/devices", {"op": "enroll", "device": "orin-5", "notes": "bench"})
        assert page.status_code == 200 and page["Cache-Control"] == "no-store"
        assert derive_key(settings.AGENT_KEY, "orin-5") in page.content.decode()
        assert settings.AGENT_KEY not in page.content.decode()
        assert store.devices()["orin-5"]["enrolled_by"] == "ops"
        assert "orin-5" in _client(viewer).get("/settings/").content.decode()
        _client(staff).post("/settings/devices", {"op": "enroll", "device": "bad id"})
        _client(staff).post("/settings/devices", {"op": "remove", "device": "orin-5"})
        assert store.devices() == {}
    finally:
        web_store.cache_clear()


@pytest.mark.parametrize(("url", "hosts", "ok"), [
    ("http://127.0.0.1:11434", (), True),
    ("https://orin-7.lan:8000/v1", ("*.lan",), True),
    ("http://10.0.0.5:9200/_bulk#", (), False),      # a fragment would drop the check's own path
    ("http://10.0.0.5:9200/_bulk?x=", (), False),
    ("http://user:pw@10.0.0.5:11434", (), False),
    ("file:///etc/passwd", (), False),
    ("gopher://10.0.0.5:6379/", (), False),
    ("http://10.0.0.5:11434", ("*.lan", "127.0.0.1"), False),
    ("http://[::1", (), False),
])
def test_runtime_base_urls_for_server_side_checks(url, hosts, ok):
    from advisors.canary import base_url_problem, speed_check

    assert (base_url_problem(url, hosts) is None) is ok
    if not ok:  # refused before any connection, recorded as a failed check
        records = speed_check(url, "ollama", "m", allowed_hosts=hosts, timeout_s=1)
        assert records[0]["request"]["error"].startswith("runtime URL refused")


def test_registry_junk_is_reported_on_the_settings_page(people, settings, store):
    settings.REDIS_PREFIX = store.prefix
    web_store.cache_clear()
    try:
        store.register_device("fine-1")
        store.r.hset(f"{store.prefix}devices", mapping={"a b": "{}", "x": "[]"})
        page = _client(people[2]).get("/settings/").content.decode()
        assert "Skipped registry entries" in page and "invalid device id" in page and "x: entry is list" in page
        assert "fine-1" in page
    finally:
        web_store.cache_clear()
