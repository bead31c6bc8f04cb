#!/usr/bin/env bash
# `make run`: migrate, create the admin, then web + Celery worker + beat + agent (+ demo replay)
# under one supervisor (honcho). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export THOXDASH_PORT="${THOXDASH_PORT:-8090}"
REDIS_URL="$($PY scripts/ensure_redis.py)" || exit 1
export REDIS_URL
mkdir -p .run
$PY manage.py migrate --noinput -v 0
$PY manage.py ensure_admin
# One key signs actions (web) and verifies them (agent): generated once, kept 0600 in .run/.
if [ -z "${THOXDASH_AGENT_KEY:-}" ]; then
  [ -s .run/agent_key ] || (umask 077 && $PY -c "import secrets; print(secrets.token_urlsafe(32))" > .run/agent_key)
  THOXDASH_AGENT_KEY="$(cat .run/agent_key)"
fi
export THOXDASH_AGENT_KEY
DEVICE="${THOXDASH_DEVICE:-$(hostname | tr -c 'A-Za-z0-9_.\n-' '-' | cut -c1-64)}"
{
  echo "web: .venv/bin/daphne -b 127.0.0.1 -p $THOXDASH_PORT thoxdash.asgi:application"
  echo "worker: .venv/bin/celery -A thoxdash worker -l warning --concurrency 2 --hostname thoxdash-worker@%h"
  echo "beat: .venv/bin/celery -A thoxdash beat -l warning"
  echo "agent: $PY -m collectors agent --device $DEVICE"
  if ! $PY -c "import sys; from pathlib import Path; from collectors.board import is_jetson; sys.exit(0 if is_jetson(Path('/')) else 1)"; then
    echo "demo: $PY -m collectors replay collectors/demo/agx-orin-demo.jsonl --device demo-agx-orin --loop --root .run/demo-root"
  fi
} > .run/Procfile
echo "ThoxDash: http://127.0.0.1:$THOXDASH_PORT/  (user: admin; Redis: $REDIS_URL; this machine: $DEVICE)"
exec .venv/bin/honcho -f .run/Procfile -d . start
