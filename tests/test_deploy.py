"""deploy/ checked with the real tools, without root changes to this machine's services:
nginx serving the test stack over TLS (two daphne processes, websockets, static files), Redis with
the shipped config (AOF, ACL), a fleet agent publishing over TLS as its own ACL user, the systemd
units (`systemd-analyze verify`) and the installer (`bash -n`)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import ssl
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import httpx
import pytest
import redis

from tests.faults import python_env, wait_for
from tests.stack import ROOT, free_port

DEPLOY = ROOT / "deploy"


def tls_material(tmp: Path) -> dict[str, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1, made with openssl."""
    out = {"ca": tmp / "ca.crt", "ca_key": tmp / "ca.key", "crt": tmp / "server.crt", "key": tmp / "server.key"}
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, timeout=60)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=thoxdash-test-ca",
        "-keyout", str(out["ca_key"]), "-out", str(out["ca"]))
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", str(out["key"]), "-out", str(tmp / "server.csr"))
    (tmp / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("openssl", "x509", "-req", "-in", str(tmp / "server.csr"), "-CA", str(out["ca"]), "-CAkey", str(out["ca_key"]),
        "-CAcreateserial", "-days", "2", "-extfile", str(tmp / "san.ext"), "-out", str(out["crt"]))
    return out


# -- nginx -------------------------------------------------------------------------------------------

def test_nginx_site_serves_two_daphne_processes_over_tls(stack, tmp_path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    certs = tls_material(tmp_path)
    stack.manage("collectstatic", "--noinput", "-v", "0")
    static_root = Path(stack.env["THOXDASH_RUN_DIR"]) / "static"
    # two daphne processes as the web units run them (--proxy-headers), on the stack's Redis and DB
    first, second = free_port(), free_port()
    bindir = Path(sys.executable).parent
    daphnes = [stack.spawn(f"daphne-{port}", str(bindir / "daphne"), "-b", "127.0.0.1", "-p", str(port),
                           "--proxy-headers", "thoxdash.asgi:application") for port in (first, second)]
    https_port, http_port = free_port(), free_port()
    site = (DEPLOY / "nginx" / "thoxdash.conf").read_text()
    site = (site.replace("127.0.0.1:8090", f"127.0.0.1:{first}").replace("127.0.0.1:8091", f"127.0.0.1:{second}")
            .replace("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;")
            .replace("listen [::]:443 ssl http2;", "").replace("listen [::]:80;", "")
            .replace("listen 80;", f"listen 127.0.0.1:{http_port};")
            .replace("/etc/thoxdash/tls/thoxdash.crt", str(certs["crt"]))
            .replace("/etc/thoxdash/tls/thoxdash.key", str(certs["key"]))
            .replace("/var/lib/thoxdash/static/", f"{static_root}/"))
    (tmp_path / "logs").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""user root;
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
{site}
}}
""")
    check = subprocess.run([nginx, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True,
                           timeout=30)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp_path), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    base = f"https://127.0.0.1:{https_port}"
    try:
        for port in (first, second):
            wait_for(lambda p=port: _get(f"http://127.0.0.1:{p}/accounts/login/") == 200, 30, "both daphne processes")
        trusted = ssl.create_default_context(cafile=str(certs["ca"]))
        wait_for(lambda: _get(base + "/accounts/login/", verify=trusted) == 200, 20, "nginx over TLS")
        # HTTP redirects to HTTPS; static files come from nginx (collectstatic output).
        r = httpx.get(f"http://127.0.0.1:{http_port}/x", follow_redirects=False)
        assert r.status_code == 301 and r.headers["location"].startswith("https://")
        r = httpx.get(base + "/static/plotly/plotly.min.js", verify=ssl.create_default_context(cafile=str(certs["ca"])))
        assert r.status_code == 200 and len(r.content) > 1_000_000 and "public" in r.headers.get("cache-control", "")
        assert r.headers.get("strict-transport-security") and r.headers.get("x-content-type-options") == "nosniff"
        # Log in through nginx, then open websockets through it: least_conn spreads them over both
        # daphne processes, and every one streams (no sticky sessions needed).
        cookie = _login(base, certs["ca"])
        store_device(stack)
        ctx = ssl.create_default_context(cafile=str(certs["ca"]))
        types = asyncio.run(_websockets(base.replace("https", "wss") + "/ws/devices/nginx-dev/", cookie, base, ctx, 4))
        assert all(t == "snapshot" for t in types), types
        # the same session works on each process directly: nothing is held per process
        for port in (first, second):
            direct = asyncio.run(_websockets(f"ws://127.0.0.1:{port}/ws/devices/nginx-dev/", cookie,
                                             f"http://127.0.0.1:{port}", None, 1))
            assert direct == ["snapshot"], (port, direct)
        assert _get(base + "/metrics", verify=ssl.create_default_context(cafile=str(certs["ca"]))) == 401
    finally:
        proc.terminate()
        proc.wait(10)
        for daphne in daphnes:
            daphne.terminate()
            daphne.wait(10)


def _get(url: str, verify: ssl.SSLContext | bool = True) -> int | None:
    try:
        return httpx.get(url, verify=verify, timeout=2).status_code
    except httpx.HTTPError:
        return None


def _login(base: str, ca: Path) -> str:
    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca))) as client:
        client.get(base + "/accounts/login/")
        r = client.post(base + "/accounts/login/", data={"username": "viewer", "password": "viewer-pass-123",
                                                         "csrfmiddlewaretoken": client.cookies.get("csrftoken")},
                        headers={"Referer": base + "/accounts/login/", "Origin": base})
        assert r.status_code in (200, 302), r.text[:500]
        return client.cookies["sessionid"]


def store_device(stack) -> None:
    from collectors.store import TelemetryStore, connect

    store = TelemetryStore(connect(stack.env["REDIS_URL"]), stack.prefix)
    store.register_device("nginx-dev", board={"model": "test"})
    store.publish("nginx-dev", [{"ts": time.time(), "source": "s", "values": {"gpu_load_ratio": 0.5}}])


async def _websockets(url: str, cookie: str, origin: str, ctx: ssl.SSLContext | None, n: int) -> list[str]:
    async def one() -> str:
        async with aiohttp.ClientSession(cookies={"sessionid": cookie}) as session, \
                session.ws_connect(url, headers={"Origin": origin}, ssl=ctx if ctx is not None else True) as ws:
            msg = await ws.receive(timeout=15)
            return json.loads(msg.data)["type"] if msg.type == aiohttp.WSMsgType.TEXT else f"closed {ws.close_code}"
    return list(await asyncio.gather(*(one() for _ in range(n))))


# -- Redis: shipped config, ACL, TLS, and a fleet agent --------------------------------------------

def _acl(tmp: Path, server_pw: str, device: str, device_pw: str) -> Path:
    text = (DEPLOY / "redis" / "thoxdash.acl.example").read_text()
    text = text.replace("#<sha256-of-server-password>", "#" + hashlib.sha256(server_pw.encode()).hexdigest())
    text = text.replace("#<sha256-of-device-password>", "#" + hashlib.sha256(device_pw.encode()).hexdigest())
    text = text.replace("#<sha256-of-admin-password>", "#" + hashlib.sha256(b"admin-pw").hexdigest())
    text = text.replace("orin-nano-017", device)
    path = tmp / "thoxdash.acl"
    path.write_text(text)  # as shipped: Redis refuses ACL files with comments or unknown lines
    return path


@pytest.fixture
def tls_redis(tmp_path):
    certs = tls_material(tmp_path)
    acl = _acl(tmp_path, "server-pw", "fleet-017", "device-pw")
    port = free_port()
    data = tmp_path / "data"
    data.mkdir()
    proc = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server",
                             str(DEPLOY / "redis" / "thoxdash.conf"),
                             "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
                             "--aclfile", str(acl), "--tls-cert-file", str(certs["crt"]),
                             "--tls-key-file", str(certs["key"]),
                             "--tls-ca-cert-file", str(certs["ca"]), "--tls-auth-clients", "no", "--daemonize", "no"],
                            stdout=(tmp_path / "redis.log").open("w"), stderr=subprocess.STDOUT)

    def client(user: str | None = None, password: str | None = None) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, username=user, password=password, ssl=True,
                           ssl_ca_certs=str(certs["ca"]), ssl_cert_reqs="required", decode_responses=True,
                           socket_connect_timeout=2)

    def up() -> bool:
        try:
            return client("thoxdash", "server-pw").ping()
        except redis.RedisError:
            return False

    try:
        wait_for(up, 15, "the TLS redis-server")
        yield {"port": port, "ca": certs["ca"], "client": client, "log": tmp_path / "redis.log"}
    finally:
        proc.terminate()
        proc.wait(10)


def test_redis_config_persists_and_enforces_acl(tls_redis):
    server = tls_redis["client"]("thoxdash", "server-pw")
    assert server.info("persistence")["aof_enabled"] == 1
    assert server.info("memory")["maxmemory_policy"] == "noeviction"
    with pytest.raises(redis.exceptions.NoPermissionError):
        server.config_get("appendonly")  # even the server user has no admin commands
    admin = tls_redis["client"]("thoxdash-admin", "admin-pw")
    assert admin.config_get("appendfsync") == {"appendfsync": "everysec"}
    assert admin.acl_load()
    with pytest.raises(redis.AuthenticationError):
        tls_redis["client"]().ping()  # the default user is off
    device = tls_redis["client"]("agent-fleet-017", "device-pw")
    device.xadd("thox:dev:fleet-017:telemetry", {"j": "{}"})
    with pytest.raises(redis.exceptions.NoPermissionError):
        device.xadd("thox:dev:another-device:telemetry", {"j": "{}"})
    with pytest.raises(redis.exceptions.NoPermissionError):
        device.hgetall("thox:dev:another-device:latest")
    with pytest.raises(redis.exceptions.NoPermissionError):
        device.config_get("requirepass")
    with pytest.raises(redis.exceptions.NoPermissionError):
        device.flushall()


def test_fleet_agent_publishes_over_tls_as_its_own_user(tls_redis, tmp_path):
    url = (f"rediss://agent-fleet-017:device-pw@127.0.0.1:{tls_redis['port']}/0"
           f"?ssl_ca_certs={tls_redis['ca']}&ssl_cert_reqs=required")
    env = python_env({k: v for k, v in __import__("os").environ.items()}, THOXDASH_REDIS_PREFIX="thox:",
                     THOXDASH_AGENT_KEY="fleet-017-device-key")
    log = tmp_path / "agent.log"
    env["REDIS_URL"] = url  # a password never goes on the command line
    agent = subprocess.Popen([sys.executable, "-m", "collectors", "agent", "--device", "fleet-017",
                              "--interval", "0.5", "--spill", str(tmp_path / "spill")], cwd=ROOT, env=env,
                             stdout=log.open("w"), stderr=subprocess.STDOUT)
    server = tls_redis["client"]("thoxdash", "server-pw")
    try:
        wait_for(lambda: server.xlen("thox:dev:fleet-017:telemetry") >= 3, 40, "the agent's records over TLS")
        wait_for(lambda: server.hget("thox:dev:fleet-017:latest", "__ts"), 10, "the latest hash")
        # the registry is server-owned: the device's user cannot write it, its board goes to its own key
        assert "fleet-017" not in server.hkeys("thox:devices")
        wait_for(lambda: server.get("thox:dev:fleet-017:info"), 10, "the device's own info key")
        time.sleep(1.5)  # a few more ticks: the action executor polls its stream too
        assert agent.poll() is None, log.read_text()[-3000:]
    finally:
        agent.terminate()
        agent.wait(15)
    text = log.read_text()
    assert "NOPERM" not in text and "NoPermission" not in text, text[-3000:]


# -- systemd units and the installer ---------------------------------------------------------------

def test_systemd_units_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze (Debian package systemd) is needed"
    units = []
    for unit in sorted((DEPLOY / "systemd").iterdir()):
        # point the units at this checkout so `verify` can check that every ExecStart exists
        text = unit.read_text().replace("/opt/thoxdash", str(ROOT))
        (tmp_path / unit.name).write_text(text)
        units.append(str(tmp_path / unit.name))
    out = subprocess.run([analyze, "verify", *units], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr


def test_install_script_parses_and_refuses_bad_input():
    script = DEPLOY / "install.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True, timeout=30).returncode == 0
    out = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "--agent-only" in out.stdout
    out = subprocess.run(["bash", str(script), "--bogus"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    # secrets are never taken on the command line (ps shows it to every user): refused while parsing
    for flag in ("--agent-key", "--redis-url"):
        out = subprocess.run(["bash", str(script), "--agent-only", flag, "s3cret"], capture_output=True, text=True,
                             timeout=30)
        assert out.returncode == 2 and "--credentials" in out.stderr and "s3cret" not in out.stderr
    # no password handed to redis-cli on its command line either
    assert "--pass " not in script.read_text() and "REDISCLI_AUTH=" in script.read_text()


def test_units_are_hardened_and_keep_secrets_off_the_command_line():
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        text = unit.read_text()
        for directive in ("SystemCallFilter=@system-service", "RestrictNamespaces=yes", "ProtectClock=yes",
                          "RestrictSUIDSGID=yes", "NoNewPrivileges=yes", "UMask=0077"):
            assert directive in text, f"{unit.name}: {directive}"
        if unit.name != "thoxdash-agent.service":  # the agent needs /dev/nvidia* (NVML, nvpmodel)
            assert "PrivateDevices=yes" in text, unit.name
        assert "${REDIS_URL}" not in text and "--redis" not in text, unit.name


def test_every_worker_launcher_gives_the_same_worker_flags():
    """make run, the systemd unit and the container start one worker the same way: no gossip,
    mingle or heartbeat (whose teardown races a lost broker connection)."""
    launchers = {"scripts/run.sh": (ROOT / "scripts/run.sh").read_text(),
                 "thoxdash-worker.service": (DEPLOY / "systemd/thoxdash-worker.service").read_text(),
                 "entrypoint.sh": (DEPLOY / "docker/entrypoint.sh").read_text()}
    for name, text in launchers.items():
        # the command line, continuation lines (`\` at the end) joined
        command = re.sub(r"\\\n\s*", " ", text[text.index("celery -A thoxdash worker"):]).splitlines()[0]
        for flag in ("--without-gossip", "--without-mingle", "--without-heartbeat", "-l warning"):
            assert flag in command, f"{name}: {flag} missing from {command!r}"


def test_stack_runs_as_the_acl_server_user(tmp_path):
    """The shipped ACL (server user without admin commands, default user off) is enough for daphne,
    Celery (broker, events) and the web's Redis reads: a worker fires an alert through it."""
    from collectors.store import TelemetryStore, connect
    from tests.stack import Stack

    acl = _acl(tmp_path, "server-pw", "acl-dev", "device-pw")
    port = free_port()
    (tmp_path / "data").mkdir()
    proc = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server",
                             str(DEPLOY / "redis" / "thoxdash.conf"), "--port", str(port), "--bind", "127.0.0.1",
                             "--dir", str(tmp_path / "data"),
                             "--aclfile", str(acl), "--daemonize", "no"],
                            stdout=(tmp_path / "redis.log").open("w"), stderr=subprocess.STDOUT)
    url = f"redis://thoxdash:server-pw@127.0.0.1:{port}/0"
    (tmp_path / "stack").mkdir()
    stack = Stack(tmp_path / "stack", url, prefix="thox:")
    try:
        wait_for(lambda: _ping(url), 15, "redis-server with the shipped config")
        stack.start()
        store = TelemetryStore(connect(url), "thox:")
        now = time.time()
        store.register_device("acl-dev", board={"model": "test"})
        store.publish("acl-dev", [{"ts": now - 2 + i * 0.5, "source": "s",
                                   "values": {'runtime_memory_bytes{runtime="ollama"}': 6.0e9}} for i in range(4)])
        token = stack.manage("apitoken", "viewer").strip()
        r = httpx.get(stack.url + "/metrics", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and 'thoxdash_runtime_memory_bytes{device="acl-dev",runtime="ollama"}' in r.text
        stack.manage("shell", "-c", "from advisors.tasks import evaluate_device; evaluate_device.delay('acl-dev')")
        wait_for(lambda: "runtime_memory_over_ceiling" in stack.manage(
            "shell", "-c",
            "from advisors.models import Alert; print(list(Alert.objects.values_list('rule', flat=True)))"),
            40, "the worker to fire through the ACL user")
        assert "NOPERM" not in stack.log("worker") + stack.log("daphne")
    finally:
        stack.stop()
        proc.terminate()
        proc.wait(10)


def _ping(url: str) -> bool:
    try:
        return redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False


def test_container_recipes_reference_what_exists():
    """The recipes are not built here (no Docker daemon); check what can be: every COPY source
    exists, the entrypoint parses, the compose file is valid YAML naming the four roles."""
    import yaml

    for name in ("Dockerfile.jetson", "Dockerfile.x86"):
        text = (DEPLOY / "docker" / name).read_text()
        copies = [line.split()[1:-1] for line in text.splitlines() if line.startswith("COPY ")]
        assert copies, name
        for sources in copies:
            for source in sources:
                assert (ROOT / source).exists(), f"{name}: COPY {source} does not exist"
        assert 'ENTRYPOINT ["thoxdash-entrypoint"]' in text
    assert subprocess.run(["sh", "-n", str(DEPLOY / "docker" / "entrypoint.sh")], timeout=30).returncode == 0
    compose = yaml.safe_load((DEPLOY / "docker" / "docker-compose.yml").read_text())
    assert {"redis", "web", "worker", "beat", "agent"} <= set(compose["services"])
    redis_cmd = " ".join(compose["services"]["redis"]["command"])
    assert "--appendonly yes" in redis_cmd and "--aclfile" in redis_cmd
    # no password on redis-server's command line: the ACL file holds SHA-256 digests only
    assert "${REDIS_PASSWORD}" not in redis_cmd and ">$" not in redis_cmd
    for name in ("Dockerfile.jetson", "Dockerfile.x86"):  # every image runs as a user
        assert "\nUSER thoxdash\n" in (DEPLOY / "docker" / name).read_text(), name
