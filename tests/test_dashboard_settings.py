"""The settings page through Django's test client: the form saves exactly as served, a bad regex is
refused with a clear message, webhooks are added, tested (against a real loopback receiver) and
removed by staff, read-only users see only scheme and host of a webhook URL, and new users' passwords
go through Django's password validators with a clear message for a taken name."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User

from advisors.models import DeviceSettings, Webhook
from tests.receiver import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    user = User.objects.create_user("boss", password="a-long-pass-phrase-42", is_staff=True)
    client.force_login(user)
    return user


def served_form(html: str) -> dict[str, str]:
    """Every field of #runtime-form as the browser would submit it unchanged."""
    form = html[html.index('id="runtime-form"'):]
    form = form[:form.index("</form>")]
    data: dict[str, str] = {}
    for tag in re.findall(r"<input[^>]*>", form):
        name = re.search(r'name="([^"]+)"', tag)
        if not name or 'type="checkbox"' in tag:
            continue
        value = re.search(r'value="([^"]*)"', tag)
        data[name.group(1)] = value.group(1) if value else ""
    for name, body in re.findall(r'<select name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        chosen = re.search(r'<option value="([^"]*)"[^>]*selected', body)
        first = re.search(r'<option value="([^"]*)"', body)
        data[name] = (chosen or first).group(1)
    return data


def test_the_settings_form_saves_as_served(client, staff):
    DeviceSettings.objects.create(device="orin-a", runtimes=[{"name": "ollama", "kind": "ollama"}])
    html = client.get("/settings/?device=orin-a").content.decode()
    data = served_form(html)
    assert data["rt-1-kind"] == ""  # the blank extra row has no kind chosen, so it stays blank
    response = client.post("/settings/?device=orin-a", data)
    assert response.status_code == 302, re.findall(r'class="errorlist[^>]*>.*?</ul>', response.content.decode())
    saved = DeviceSettings.objects.get(device="orin-a").runtimes
    assert [(r["name"], r["kind"]) for r in saved] == [("ollama", "ollama")]  # no phantom row from the blank one


def test_locked_clocks_round_trip_through_the_form(client, staff):
    """The three choices save and come back selected; saving the form as served keeps the choice."""
    DeviceSettings.objects.create(device="orin-c", runtimes=[{"name": "ollama", "kind": "ollama"}])
    data = served_form(client.get("/settings/?device=orin-c").content.decode())
    assert data["want_locked_clocks"] == ""  # as the device says
    for choice, stored in (("no", False), ("yes", True), ("", None)):
        data["want_locked_clocks"] = choice
        assert client.post("/settings/?device=orin-c", data).status_code == 302
        assert DeviceSettings.objects.get(device="orin-c").want_locked_clocks is stored
        again = served_form(client.get("/settings/?device=orin-c").content.decode())
        assert again["want_locked_clocks"] == choice
    data["want_locked_clocks"] = "maybe"
    response = client.post("/settings/?device=orin-c", data)
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()


def test_an_invalid_regex_is_refused_and_named(client, staff):
    DeviceSettings.objects.create(device="orin-b", runtimes=[{"name": "ollama", "kind": "ollama"}])
    data = served_form(client.get("/settings/?device=orin-b").content.decode())
    data["rt-0-match"] = "(unclosed["
    response = client.post("/settings/?device=orin-b", data)
    assert response.status_code == 200
    assert "not a valid regular expression" in response.content.decode()
    assert "match" not in DeviceSettings.objects.get(device="orin-b").runtimes[0]


def test_webhooks_added_tested_removed_and_redacted_for_viewers(client, staff):
    with Receiver() as rx:
        url = rx.url + "/services/T000/B000/secret-token"
        response = client.post("/settings/webhooks", {"op": "add", "url": url, "format": "slack",
                                                      "min_severity": "warning", "secret": ""})
        assert response.status_code == 302
        hook = Webhook.objects.get()
        assert hook.url == url and hook.format == "slack"
        page = client.get("/settings/").content.decode()
        assert url in page
        client.post(f"/settings/webhooks/{hook.pk}/test")
        assert rx.wait_for(1, timeout_s=10), "the test notification did not arrive"
        assert rx.received[0].path.endswith("/services/T000/B000/secret-token")
        assert "sent" in client.get("/settings/").content.decode()  # the staff user reads the test's result
        viewer = User.objects.create_user("viewer", password="a-long-pass-phrase-43")
        client.force_login(viewer)
        page = client.get("/settings/").content.decode()
        assert "secret-token" not in page and re.search(r"http://127\.0\.0\.1:\d+/…", page)
        assert client.post("/settings/webhooks", {"op": "remove", "webhook_id": hook.pk}).status_code == 403
        client.force_login(staff)
        assert client.post("/settings/webhooks", {"op": "remove", "webhook_id": hook.pk}).status_code == 302
        assert not Webhook.objects.exists()


def test_a_non_http_webhook_is_refused_with_a_reason(client, staff):
    response = client.post("/settings/webhooks", {"op": "add", "url": "ftp://example.com/x", "format": "json",
                                                  "min_severity": "warning"}, follow=True)
    assert "Webhook not added" in response.content.decode()
    assert not Webhook.objects.exists()


def test_new_users_go_through_the_password_validators(client, staff):
    response = client.post("/settings/users", {"op": "create", "username": "ann", "password": "short"},
                           follow=True)
    assert "User not created" in response.content.decode()
    assert not User.objects.filter(username="ann").exists()
    response = client.post("/settings/users", {"op": "create", "username": "boss",
                                               "password": "another-long-pass-77"}, follow=True)
    assert "A user named boss already exists" in response.content.decode()
    client.post("/settings/users", {"op": "create", "username": "ann", "password": "ann-long-pass-phrase-9"})
    assert User.objects.filter(username="ann").exists()
