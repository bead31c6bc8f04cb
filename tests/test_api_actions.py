"""The advisor's HTTP surface: permissions (staff, token scopes), the request -> agent -> result
round trip over real Redis with the agent's executor acting on a fake tree, undo, the page, and
auto mode."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from django.contrib.auth.models import User

from advisors import actions as act
from advisors.models import ActionRequest, Alert, ApiToken, DeviceSettings
from advisors.telemetry import store as web_store
from collectors.actions.executor import Executor
from collectors.actions.signing import derive_key
from tests import fake_device
from tests.fake_device import read

KEY = "api-test-agent-key"
THP = "sys/kernel/mm/transparent_hugepage/enabled"
pytestmark = pytest.mark.django_db


@pytest.fixture
def agent_key(settings):
    settings.AGENT_KEY = KEY
    return KEY


@pytest.fixture
def device(tmp_path, agent_key):
    """A device id known to the store, its fake tree, and the agent-side executor for it."""
    name = f"dev-{uuid.uuid4().hex[:8]}"
    s = web_store()
    s.register_device(name, board={"model": "fake Orin"})
    s.publish(name, [{"ts": time.time(), "source": "tuning",
                      "state": {"thp": "madvise", "gpu_runtime_pm": {"17000000.gpu": "auto"},
                                "cpu_governor": {str(c): "schedutil" for c in range(8)},
                                "isolated_cpus": "4-7", "preempt_rt": False}}])
    root = fake_device.build(tmp_path / "root")
    return name, root, Executor(s, name, root, key=derive_key(KEY, name), consumer="test")


@pytest.fixture
def staff(client):
    user = User.objects.create_user("boss", password="pw-boss-123", is_staff=True)
    client.force_login(user)
    return user


def post(client, url, body, **headers):
    return client.post(url, data=json.dumps(body), content_type="application/json", **headers)


def test_non_staff_and_tokens_without_act_cannot_act(client, device):
    name, root, executor = device
    url = f"/api/devices/{name}/actions"
    body = {"action": "thp", "params": {"mode": "never"}}
    assert post(client, url, body).status_code == 401
    viewer = User.objects.create_user("viewer", password="pw-viewer-123")
    boss = User.objects.create_user("boss2", password="pw-boss-123", is_staff=True)
    _t, read_only = ApiToken.issue(boss, scopes="read")
    _t, viewer_act = ApiToken.issue(viewer, scopes="read,act")
    _t, boss_act = ApiToken.issue(boss, scopes="read,act")
    r = post(client, url, body, HTTP_AUTHORIZATION=f"Bearer {read_only}")
    assert r.status_code == 401 and "act" in r.json()["error"]
    assert post(client, url, body, HTTP_AUTHORIZATION=f"Bearer {viewer_act}").status_code == 403
    client.force_login(viewer)
    assert post(client, url, body).status_code == 403
    client.logout()
    assert ActionRequest.objects.count() == 0
    assert web_store().r.xlen(web_store().keys(name).actions) == 0
    ok = post(client, url, body, HTTP_AUTHORIZATION=f"Bearer {boss_act}")
    assert ok.status_code == 202 and ok.json()["requested_by"] == "boss2"
    # a read token may still read recommendations and results
    answer = client.get(f"/api/devices/{name}/recommendations", HTTP_AUTHORIZATION=f"Bearer {read_only}")
    assert answer.status_code == 200
    assert client.get(f"/api/actions/{ok.json()['id']}", HTTP_AUTHORIZATION=f"Bearer {read_only}").status_code == 200


def test_round_trip_apply_result_and_undo(client, device, staff):
    name, root, executor = device
    r = post(client, f"/api/devices/{name}/actions", {"action": "thp", "params": {"mode": "never"}})
    assert r.status_code == 202
    rid = r.json()["id"]
    assert r.json()["state"] == "pending"
    assert client.get(f"/api/actions/{rid}").json()["state"] == "pending"
    (answer,) = executor.poll()  # the agent on the device
    assert answer["status"] == "applied"
    got = client.get(f"/api/actions/{rid}").json()
    assert got["state"] == "applied" and got["finished_at"]
    assert got["preview"] == [{"target": "transparent_hugepage", "old": "madvise", "new": "never"}]
    assert got["result"]["reason"] == "verified by reading back" and "snapshot" not in got["result"]
    assert read(root, THP) == "never"
    u = client.post(f"/api/actions/{rid}/undo")
    assert u.status_code == 202 and u.json()["undo_of"] == rid
    executor.poll()
    assert client.get(f"/api/actions/{u.json()['id']}").json()["state"] == "undone"
    assert ActionRequest.objects.get(request_id=rid).state == "undone"
    assert "madvise" in read(root, THP)
    again = client.post(f"/api/actions/{rid}/undo")
    assert again.status_code == 400 and "cannot be undone" in again.json()["error"]


@pytest.mark.parametrize("body, message", [
    ({"action": "shell", "params": {"cmd": "reboot"}}, "unknown action"),
    ({"action": "irq_affinity", "params": {"irq": -1, "cpus": "0-3"}}, "between 0 and 65535"),
    ({"action": "irq_affinity", "params": {"irq": 24, "cpus": "$(reboot)"}}, "CPU list"),
    ({"action": "thp", "params": {"mode": "never", "file": "/etc/shadow"}}, "unknown parameter"),
    ({"action": "service", "params": {"op": "restart", "name": "x; rm -rf /"}}, "plain name"),
    ({"action": "batch", "params": {"steps": [{"action": "restart_container", "params": {"name": "t"}}]}},
     "not a safe tuning action"),
])
def test_hostile_parameters_are_refused_before_anything_is_sent(client, device, staff, body, message):
    name, _root, _executor = device
    r = post(client, f"/api/devices/{name}/actions", body)
    assert r.status_code == 400 and message in r.json()["error"]
    assert web_store().r.xlen(web_store().keys(name).actions) == 0


def test_unknown_device_and_missing_key(client, device, staff, settings):
    missing = post(client, "/api/devices/nosuch/actions", {"action": "thp", "params": {"mode": "never"}})
    assert missing.status_code == 404
    settings.AGENT_KEY = ""
    r = post(client, f"/api/devices/{device[0]}/actions", {"action": "thp", "params": {"mode": "never"}})
    assert r.status_code == 400 and "THOXDASH_AGENT_KEY" in r.json()["error"]


def test_recommendations_and_apply_recommended_tuning_then_one_undo(client, device, staff):
    name, root, executor = device
    recs = client.get(f"/api/devices/{name}/recommendations").json()
    ids = {r["id"] for r in recs}
    assert {"thp", "gpu_runtime_pm", "cpu_governor", "preempt_rt"} <= ids
    thp = next(r for r in recs if r["id"] == "thp")
    assert thp["evidence"]["value"] == "madvise" and thp["action"] == {"action": "thp", "params": {"mode": "never"}}
    r = post(client, f"/api/devices/{name}/actions", {"action": "apply_recommended"})
    assert r.status_code == 202 and r.json()["action"] == "batch"
    steps = [s["action"] for s in r.json()["params"]["steps"]]
    assert steps == ["set_governor", "thp", "gpu_runtime_pm"]  # preempt_rt: advice only
    executor.poll()
    got = client.get(f"/api/actions/{r.json()['id']}").json()
    assert got["state"] == "applied"
    assert [s["status"] for s in got["result"]["steps"]] == ["applied"] * 3
    assert read(root, "sys/devices/system/cpu/cpu4/cpufreq/scaling_governor") == "performance"
    assert read(root, "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") == "schedutil"
    client.post(f"/api/actions/{r.json()['id']}/undo")
    executor.poll()
    act.collect_results(web_store(), name)
    assert ActionRequest.objects.get(request_id=r.json()["id"]).state == "undone"
    assert read(root, "sys/devices/system/cpu/cpu4/cpufreq/scaling_governor") == "schedutil"
    assert read(root, "sys/devices/platform/gpu.0/power/control") == "auto"


def test_advisor_page_buttons_for_staff_only_and_escaping(client, device):
    name, _root, _executor = device
    web_store().publish(name, [{"ts": time.time(), "source": "tuning",
                                "state": {"desktop": {"running": True, "processes": ["<script>alert(1)</script>"]}}}])
    viewer = User.objects.create_user("viewer", password="pw-viewer-123")
    client.force_login(viewer)
    page = client.get(f"/advisor/?device={name}").content.decode()
    assert "Transparent hugepages to never" in page and "madvise" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "Apply recommended tuning" not in page and "/advisor/confirm" not in page
    assert client.post("/advisor/do", {"device": name, "op": "apply", "rec": "thp"}).status_code == 403
    boss = User.objects.create_user("boss3", password="pw-boss-123", is_staff=True)
    client.force_login(boss)
    page = client.get(f"/advisor/?device={name}").content.decode()
    assert "Apply recommended tuning" in page and "/advisor/confirm?device=" in page
    confirm = client.get(f"/advisor/confirm?device={name}&rec=thp&partial=1").content.decode()
    assert 'value="thp"' in confirm and "→" in confirm and 'value="apply"' in confirm
    r = client.post("/advisor/do", {"device": name, "op": "apply", "rec": "thp"})
    assert r.status_code == 302
    row = ActionRequest.objects.get(device=name)
    assert row.action == "thp" and row.params == {"mode": "never"} and row.requested_by == boss
    page = client.get(f"/advisor/?device={name}").content.decode()
    assert row.request_id in page and "pending" in page


def test_unanswered_request_expires(device, staff):
    name, _root, _executor = device
    row = act.request_action(web_store(), name, "thp", {"mode": "never"}, staff)
    row.expires_at = datetime.now(tz=timezone.utc) - timedelta(seconds=act.GRACE_S + 5)
    row.save()
    assert act.refresh(web_store(), row).state == "expired"
    assert "agent" in row.result["reason"]


def _memory_setup(name, auto):
    DeviceSettings.objects.create(device=name, auto_mode=auto, runtimes=[
        {"name": "ollama", "kind": "ollama", "priority": "background", "ceiling_bytes": 5.5e9},
        {"name": "triton", "kind": "triton", "priority": "critical", "ceiling_bytes": 2e9}])
    web_store().publish(name, [{"ts": time.time(), "source": "runtimes", "values": {
        'runtime_model_bytes{model="gpt-oss:20b",runtime="ollama"}': 3.2e9,
        'runtime_model_bytes{model="llama3.2:3b",runtime="ollama"}': 2.4e9,
        'runtime_model_bytes{model="yolo",runtime="triton"}': 1.9e9}}])
    now = datetime.now(tz=timezone.utc)
    for rt in ("ollama", "triton"):
        Alert.objects.create(device=name, rule="runtime_memory_over_ceiling", severity="critical",
                             labels={"runtime": rt}, fingerprint=f"{name}-{rt}", summary=f"{rt} over", starts_at=now)


def test_auto_mode_evicts_lru_background_model_once_and_never_a_critical_one(device):
    name, _root, executor = device
    _memory_setup(name, auto=True)
    made = act.auto_actions(web_store(), name)
    assert len(made) == 1
    row = made[0]
    assert row.origin == "auto" and row.action == "evict" and row.params["runtime"] == "ollama"
    assert row.requested_by is None
    assert act.auto_actions(web_store(), name) == []  # cooldown: not repeated
    message = json.loads(web_store().r.xrange(web_store().keys(name).actions)[-1][1]["j"])
    assert message["origin"] == "auto" and message["requested_by"] == "auto"


def test_auto_mode_is_off_by_default(device):
    name, _root, _executor = device
    _memory_setup(name, auto=False)
    assert act.auto_actions(web_store(), name) == []
    assert DeviceSettings._meta.get_field("auto_mode").default is False


def test_evaluation_task_collects_answers_and_runs_auto_mode(device):
    from advisors.tasks import evaluate_device

    name, _root, executor = device
    DeviceSettings.objects.create(device=name, auto_mode=True, runtimes=[
        {"name": "ollama", "kind": "ollama", "priority": "background", "ceiling_bytes": 5.5e9}])
    now = time.time()
    web_store().publish(name, [{"ts": now - 2 + i, "source": "runtimes", "values": {
        'runtime_memory_bytes{runtime="ollama"}': 6.1e9, 'runtime_ceiling_bytes{runtime="ollama"}': 5.5e9,
        'runtime_up{runtime="ollama"}': 1.0,
        'runtime_model_bytes{model="gpt-oss:20b",runtime="ollama"}': 3.6e9,
        'runtime_model_bytes{model="llama3.2:3b",runtime="ollama"}': 2.5e9}} for i in range(3)])
    evaluate_device(name, now)
    assert Alert.objects.filter(device=name, rule="runtime_memory_over_ceiling", state="firing").exists()
    row = ActionRequest.objects.get(device=name, origin="auto")
    assert row.action == "evict" and row.params["runtime"] == "ollama" and row.state == "pending"
    (answer,) = executor.poll()  # nothing listens at the fake device's ollama URL: a reported failure
    assert answer["status"] in ("rejected", "failed")
    evaluate_device(name, now + 1)
    row.refresh_from_db()
    assert row.state == answer["status"] and row.result["reason"]


def test_session_posts_need_the_csrf_token_bearer_posts_do_not(device):
    from django.test import Client

    name, _root, _executor = device
    boss = User.objects.create_user("boss4", password="pw-boss-123", is_staff=True)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(boss)
    r = post(browser, f"/api/devices/{name}/actions", {"action": "thp", "params": {"mode": "never"}})
    assert r.status_code == 403 and "CSRF" in r.json()["error"]
    _t, token = ApiToken.issue(boss, scopes="read,act")
    cli = Client(enforce_csrf_checks=True)
    r = post(cli, f"/api/devices/{name}/actions", {"action": "thp", "params": {"mode": "never"}},
             HTTP_AUTHORIZATION=f"Bearer {token}")
    assert r.status_code == 202


def test_preview_button_asks_the_agent_and_changes_nothing(client, device, staff):
    name, root, executor = device
    r = client.post("/advisor/do", {"device": name, "op": "preview", "rec": "gpu_runtime_pm"})
    assert r.status_code == 302
    # still pending (the agent has not answered): the row already says it is a preview, not an apply
    pending = ActionRequest.objects.get(device=name)
    assert pending.state == "pending" and pending.dry_run
    row_html = client.get(f"/advisor/?device={name}").content.decode().split('id="audit"', 1)[1]
    assert "Preview: " in row_html
    executor.poll()
    act.collect_results(web_store(), name)
    row = ActionRequest.objects.get(device=name)
    assert row.state == "preview" and row.preview == [{"target": "17000000.gpu", "old": "auto", "new": "on"}]
    assert read(root, "sys/devices/platform/gpu.0/power/control") == "auto"
    page = client.get(f"/advisor/?device={name}").content.decode()
    assert "auto → on" in page
    # advice-only and unknown recommendations cannot be "applied"
    client.post("/advisor/do", {"device": name, "op": "apply", "rec": "preempt_rt"})
    client.post("/advisor/do", {"device": name, "op": "apply", "rec": "../../etc"})
    assert ActionRequest.objects.filter(device=name).count() == 1


def test_client_request_id_makes_http_retries_idempotent(client, device, staff):
    name, root, executor = device
    body = {"action": "thp", "params": {"mode": "never"}, "request_id": "retry-0001-abcdef"}
    first = post(client, f"/api/devices/{name}/actions", body)
    second = post(client, f"/api/devices/{name}/actions", body)
    assert first.status_code == 202 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"] == "retry-0001-abcdef"
    assert web_store().r.xlen(web_store().keys(name).actions) == 1
    clash = post(client, f"/api/devices/{name}/actions", {**body, "params": {"mode": "always"}})
    assert clash.status_code == 400 and "different request" in clash.json()["error"]
    bad = post(client, f"/api/devices/{name}/actions", {**body, "request_id": "x; DROP TABLE"})
    assert bad.status_code == 400
    executor.poll()
    assert post(client, f"/api/devices/{name}/actions", body).json()["state"] == "applied"
