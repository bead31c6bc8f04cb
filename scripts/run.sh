#!/usr/bin/env bash
# `make run`: migrate, create the admin, then web + Celery worker + beat + agent (+ demo replay)
# under one supervisor (honcho). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export THOXDASH_PORT="${THOXDASH_PORT:-8090}"
REDIS_URL="$($PY scripts/ensure_redis.py)" || exit 1
export REDIS_URL
mkdir -p .run && chmod 0700 .run
$PY manage.py migrate --noinput -v 0
$PY manage.py ensure_admin
# The master action key stays with the server (web, worker): generated once, kept 0600 in .run/.
# Each device gets its own key derived from it (enroll_device), so the local agent holds only its own.
if [ -z "${THOXDASH_AGENT_MASTER_KEY:-}" ]; then
  if [ -n "${THOXDASH_AGENT_KEY:-}" ]; then
    THOXDASH_AGENT_MASTER_KEY="$THOXDASH_AGENT_KEY"
  else
    [ -s .run/agent_key ] || (umask 077 && $PY -c "import secrets; print(secrets.token_urlsafe(32))" > .run/agent_key)
    THOXDASH_AGENT_MASTER_KEY="$(cat .run/agent_key)"
  fi
fi
export THOXDASH_AGENT_MASTER_KEY
unset THOXDASH_AGENT_KEY
DEVICE="${THOXDASH_DEVICE:-$(hostname | tr -c 'A-Za-z0-9_.\n-' '-' | cut -c1-64)}"
for dev in "$DEVICE" demo-agx-orin; do
  $PY manage.py enroll_device "$dev" --key-file ".run/keys/$dev" -v 0
done
AGENT_ENV="env -u THOXDASH_AGENT_MASTER_KEY THOXDASH_AGENT_KEY_FILE=.run/keys/$DEVICE"
{
  echo "web: .venv/bin/daphne -b 127.0.0.1 -p $THOXDASH_PORT thoxdash.asgi:application"
  echo "worker: .venv/bin/celery -A thoxdash worker -l warning --concurrency 2 --hostname thoxdash-worker@%h"
  echo "beat: .venv/bin/celery -A thoxdash beat -l warning"
  echo "agent: $AGENT_ENV $PY -m collectors agent --device $DEVICE"
  if ! $PY -c "import sys; from pathlib import Path; from collectors.board import is_jetson; sys.exit(0 if is_jetson(Path('/')) else 1)"; then
    echo "demo: env -u THOXDASH_AGENT_MASTER_KEY $PY -m collectors replay collectors/demo/agx-orin-demo.jsonl --device demo-agx-orin --loop"
  fi
} > .run/Procfile
echo "ThoxDash: http://127.0.0.1:$THOXDASH_PORT/  (user: admin; Redis: $REDIS_URL; this machine: $DEVICE)"
exec .venv/bin/honcho -f .run/Procfile -d . start
