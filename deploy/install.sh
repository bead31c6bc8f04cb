#!/usr/bin/env bash
# ThoxDash installer for Debian/Ubuntu/JetPack (L4T) hosts. Run as root from a source checkout.
#
#   sudo deploy/install.sh                      # full server + local agent on this box
#   sudo deploy/install.sh --agent-only \       # a fleet device -> central Redis (TLS + password)
#        --device orin-nano-017 --credentials /root/orin-nano-017.env
#   sudo deploy/install.sh --add-device orin-nano-017   # on the server: enroll a device, write its
#        # credentials file (Redis ACL user + password, its own action key) to copy to the device
#
# Secrets never travel on command lines: they are read from files (mode 0600) or the environment.
#
# Idempotent: re-running upgrades the code and keeps existing secrets and config.
set -euo pipefail

SRC="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX=/opt/thoxdash
ETC=/etc/thoxdash
STATE=/var/lib/thoxdash
MODE=server
DEVICE="$(hostname | tr -c 'A-Za-z0-9_.\n-' '-' | cut -c1-64)"
CREDENTIALS=""
ADD_DEVICE=""
PYTHON="${PYTHON:-python3}"

usage() { sed -n '2,14p' "$0"; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --agent-only) MODE=agent ;;
    --device) DEVICE="$2"; shift ;;
    --credentials) CREDENTIALS="$2"; shift ;;
    --redis-url|--agent-key) echo "$1: secrets are not taken on the command line; use --credentials FILE" >&2; exit 2 ;;
    --add-device) MODE=add-device; ADD_DEVICE="$2"; shift ;;
    --prefix) PREFIX="$2"; shift ;;
    -h|--help) usage 0 ;;
    *) echo "unknown option: $1" >&2; usage 2 ;;
  esac
  shift
done

[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo $0 ...)" >&2; exit 1; }
[[ "$DEVICE" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ ]] || { echo "invalid device id: $DEVICE" >&2; exit 2; }

rand() { "$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(32))'; }
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
is_jetson() { [ -e /etc/nv_tegra_release ] || grep -qi tegra /proc/device-tree/compatible 2>/dev/null; }

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null || {
    apt-get update -q >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
}

install_code() {
  # The code and its virtualenv live in $PREFIX; the checkout is copied, not linked.
  mkdir -p "$PREFIX"
  tar -C "$SRC" --exclude=.venv --exclude=.run --exclude=.git --exclude=db.sqlite3 -cf - . | tar -C "$PREFIX" -xf -
  [ -x "$PREFIX/.venv/bin/python" ] || "$PYTHON" -m venv "$PREFIX/.venv"
  "$PREFIX/.venv/bin/pip" install -q --upgrade pip
}

extras() {
  if is_jetson; then echo "jetson"; elif command -v nvidia-smi >/dev/null; then echo "nvml"; fi
}

install_agent_env() {  # $1: a file with REDIS_URL= and THOXDASH_AGENT_KEY= lines (never argv)
  mkdir -p "$ETC"; chmod 0755 "$ETC"
  local env="$ETC/agent.env" url key
  url="$(sed -n 's/^REDIS_URL=//p' "$1" | tail -n1)"
  key="$(sed -n 's/^THOXDASH_AGENT_KEY=//p' "$1" | tail -n1)"
  [ -n "$url" ] && [ -n "$key" ] || { echo "$1 needs REDIS_URL= and THOXDASH_AGENT_KEY= lines" >&2; exit 2; }
  case "$key$url" in *change-me*|*PASSWORD@*) echo "$1 still holds placeholders" >&2; exit 2 ;; esac
  if [ ! -f "$env" ]; then
    ( umask 077
      printf 'THOXDASH_DEVICE=%s\nREDIS_URL=%s\nTHOXDASH_AGENT_KEY=%s\nTHOXDASH_LOG_LEVEL=WARNING\n' \
        "$DEVICE" "$url" "$key" > "$env" )
  fi
  chmod 0600 "$env"
  getent passwd thoxdash-agent >/dev/null || useradd --system --home /nonexistent --shell /usr/sbin/nologin thoxdash-agent
  install -m 0644 "$PREFIX/deploy/systemd/thoxdash-agent.service" "$PREFIX/deploy/systemd/thoxdash-proxy@.service" /etc/systemd/system/
}

write_acl_user() {  # $1 user, $2 password, $3 device ('' for the server user)
  local acl=/etc/redis/thoxdash.acl line
  if [ "$3" = "--admin" ]; then
    line="user $1 on #$(sha "$2") ~* &* +@all"
  elif [ -z "$3" ]; then
    line="user $1 on #$(sha "$2") ~* &* +@all -@admin -flushall -flushdb -debug -shutdown"
  else
    line="user $1 on #$(sha "$2") resetkeys ~thox:dev:$3:* resetchannels -@all +@connection +ping +set +xadd +xrange +xrevrange +xlen +xreadgroup +xgroup|create +xack +xautoclaim +hset +hsetnx +hget +hgetall +hdel +hkeys"
  fi
  touch "$acl"; chown redis:redis "$acl" 2>/dev/null || true; chmod 0640 "$acl"
  grep -q '^user default ' "$acl" || echo "user default off" >> "$acl"
  sed -i "/^user $1 /d" "$acl"
  echo "$line" >> "$acl"
}

run_manage() {  # as the service user, with the service's environment (plus THOXDASH_ADMIN_PASSWORD if given)
  # shellcheck disable=SC1091
  ( set -a; . "$ETC/thoxdash.env"; set +a
    cd "$PREFIX" && runuser -u thoxdash -- "$PREFIX/.venv/bin/python" "$PREFIX/manage.py" "$@" )
}

redis_admin() {  # redis-cli as the admin user; the password goes through the environment, not argv
  # shellcheck disable=SC1091
  REDISCLI_AUTH="$(. "$ETC/redis.secret"; echo "$ADMIN_PASSWORD")" redis-cli --user thoxdash-admin --no-auth-warning "$@"
}

# Prints a device's credentials file: its Redis URL (own ACL user) and its own action key.
device_credentials() {  # $1 device, $2 Redis password, $3 Redis URL host part
  local key
  key="$(run_manage enroll_device "$1" -v 0 | sed -n 's/^THOXDASH_AGENT_KEY=//p')"
  [ -n "$key" ] || { echo "enroll_device $1 issued no action key (THOXDASH_AGENT_MASTER_KEY unset?)" >&2; exit 1; }
  printf 'REDIS_URL=redis%s://agent-%s:%s@%s\nTHOXDASH_AGENT_KEY=%s\n' "${4:-}" "$1" "$2" "$3" "$key"
}

case "$MODE" in
agent)
  [ -r "$CREDENTIALS" ] || { echo "--agent-only needs --credentials FILE (from: install.sh --add-device on the server)" >&2; exit 2; }
  apt_install python3-venv ca-certificates
  install_code
  # No Django, Celery or Plotly on the device: `pip install .` is the agent and its few dependencies.
  "$PREFIX/.venv/bin/pip" install -q "$PREFIX"
  case "$(extras)" in
    jetson) "$PREFIX/.venv/bin/pip" install -q "$("$PREFIX/deploy/jetson-stats-spec.sh")" ;;  # the host jtop service's version
    nvml) "$PREFIX/.venv/bin/pip" install -q 'nvidia-ml-py>=12.535,<14' ;;
  esac
  install_agent_env "$CREDENTIALS"
  systemctl daemon-reload
  systemctl enable --now thoxdash-agent.service
  echo "agent $DEVICE installed; check: journalctl -u thoxdash-agent -f"
  ;;
add-device)
  [[ "$ADD_DEVICE" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ ]] || { echo "invalid device id: $ADD_DEVICE" >&2; exit 2; }
  pass="$(rand)"
  write_acl_user "agent-$ADD_DEVICE" "$pass" "$ADD_DEVICE"
  redis_admin ACL LOAD >/dev/null
  creds="$ETC/devices/$ADD_DEVICE.env"
  install -d -m 0700 "$ETC/devices"
  ( umask 077; device_credentials "$ADD_DEVICE" "$pass" \
      "$(hostname -f):6380/0?ssl_ca_certs=/etc/thoxdash/redis-ca.pem&ssl_cert_reqs=required" s > "$creds" )
  echo "device $ADD_DEVICE enrolled: Redis user agent-$ADD_DEVICE, its own action key"
  echo "  credentials (0600): $creds -- copy it to the device over a secure channel, then there:"
  echo "  sudo deploy/install.sh --agent-only --device $ADD_DEVICE --credentials /root/$ADD_DEVICE.env"
  ;;
server)
  apt_install python3-venv redis-server nginx-light openssl ca-certificates
  # ThoxDash needs Redis >= 7.0 (collectors/redis_version.py); Ubuntu 22.04 (JetPack 6) apt has 6.0.
  redis_v="$(redis-server --version | sed -n 's/.* v=\([0-9.]*\).*/\1/p')"
  if [ "${redis_v%%.*}" -lt 7 ] 2>/dev/null; then
    echo "Redis $redis_v from apt is too old: ThoxDash needs Redis >= 7.0 (stream IDs <ms>-*, XAUTOCLAIM," >&2
    echo "XTRIM MINID). Add Redis' own apt repository (redis.io: install Redis on Linux), apt-get install" >&2
    echo "redis-server again, then re-run this script." >&2
    exit 1
  fi
  getent passwd thoxdash >/dev/null || useradd --system --home "$STATE" --shell /usr/sbin/nologin thoxdash
  install -d -m 0750 -o thoxdash -g thoxdash "$STATE"
  install_code
  # the versions `make setup` tests (hashed lock), then the package with its server side
  "$PREFIX/.venv/bin/pip" install -q --require-hashes -r "$PREFIX/requirements.lock"
  "$PREFIX/.venv/bin/pip" install -q --no-deps "${PREFIX}[server]"
  case "$(extras)" in
    jetson) "$PREFIX/.venv/bin/pip" install -q "$("$PREFIX/deploy/jetson-stats-spec.sh")" ;;  # the host jtop service's version
    nvml) "$PREFIX/.venv/bin/pip" install -q "${PREFIX}[nvml]" ;;
  esac
  mkdir -p "$ETC/tls"
  # Redis: AOF persistence + ACL users (server, local agent).
  if [ ! -f "$ETC/redis.secret" ]; then
    umask 077; echo "SERVER_PASSWORD=$(rand)" > "$ETC/redis.secret"; echo "AGENT_PASSWORD=$(rand)" >> "$ETC/redis.secret"
  fi
  grep -q '^ADMIN_PASSWORD=' "$ETC/redis.secret" || echo "ADMIN_PASSWORD=$(rand)" >> "$ETC/redis.secret"
  # shellcheck disable=SC1091
  . "$ETC/redis.secret"
  install -m 0640 -o redis -g redis "$PREFIX/deploy/redis/thoxdash.conf" /etc/redis/thoxdash.conf
  grep -q '^include /etc/redis/thoxdash.conf' /etc/redis/redis.conf || echo 'include /etc/redis/thoxdash.conf' >> /etc/redis/redis.conf
  write_acl_user thoxdash-admin "$ADMIN_PASSWORD" --admin   # root's redis-cli only (ACL LOAD, CONFIG)
  write_acl_user thoxdash "$SERVER_PASSWORD" ""
  write_acl_user "agent-$DEVICE" "$AGENT_PASSWORD" "$DEVICE"
  systemctl restart redis-server
  # Server env with fresh secrets (kept on re-runs).
  if [ ! -f "$ETC/thoxdash.env" ]; then
    umask 027
    sed -e "s|^THOXDASH_SECRET_KEY=.*|THOXDASH_SECRET_KEY=$(rand)$(rand)|" \
        -e "s|^REDIS_URL=.*|REDIS_URL=redis://thoxdash:$SERVER_PASSWORD@127.0.0.1:6379/0|" \
        -e "s|^THOXDASH_METRICS_TOKEN=.*|THOXDASH_METRICS_TOKEN=$(rand)|" \
        -e "s|^THOXDASH_AGENT_MASTER_KEY=.*|THOXDASH_AGENT_MASTER_KEY=$(rand)|" \
        -e "s|thoxdash.example.org|$(hostname -f)|g" \
        "$PREFIX/deploy/env/thoxdash.env.example" > "$ETC/thoxdash.env"
    chgrp thoxdash "$ETC/thoxdash.env"
  fi
  # Database, static files, admin user.
  run_manage migrate --noinput -v 0
  # The local agent: enrolled like any device, with its own Redis user and derived action key.
  ( umask 077; device_credentials "$DEVICE" "$AGENT_PASSWORD" "127.0.0.1:6379/0" > "$ETC/local-agent.cred" )
  install_agent_env "$ETC/local-agent.cred"
  rm -f "$ETC/local-agent.cred"
  # The Plotly partial bundle (pinned, sha512-checked; without network the full bundle is served).
  "$PREFIX/.venv/bin/python" "$PREFIX/scripts/ensure_plotly.py" || true
  run_manage collectstatic --noinput -v 0
  run_manage ensure_admin
  # TLS: a self-signed certificate unless one is already there (replace with your CA's).
  if [ ! -f "$ETC/tls/thoxdash.crt" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=$(hostname -f)" \
      -keyout "$ETC/tls/thoxdash.key" -out "$ETC/tls/thoxdash.crt" 2>/dev/null
    chmod 0600 "$ETC/tls/thoxdash.key"
  fi
  sed "s/thoxdash.example.org/$(hostname -f)/g" "$PREFIX/deploy/nginx/thoxdash.conf" > /etc/nginx/sites-available/thoxdash
  ln -sf /etc/nginx/sites-available/thoxdash /etc/nginx/sites-enabled/thoxdash
  nginx -t && systemctl reload nginx
  install -m 0644 "$PREFIX"/deploy/systemd/thoxdash-{web@.service,worker.service,beat.service} \
    "$PREFIX/deploy/systemd/thoxdash.target" /etc/systemd/system/
  systemctl daemon-reload
  systemctl enable --now thoxdash-web@8090 thoxdash-web@8091 thoxdash-worker thoxdash-beat thoxdash-agent
  echo "ThoxDash: https://$(hostname -f)/  (admin password: see the journal of the first start, or"
  echo "  set THOXDASH_ADMIN_PASSWORD in $ETC/thoxdash.env and re-run)"
  ;;
esac
