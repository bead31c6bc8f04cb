#!/usr/bin/env bash
# `make run`: migrate, create the admin, then web + Celery worker + beat + agent (+ demo replay)
# under one supervisor (scripts/supervise.py) that restarts a process that dies. Ctrl-C stops everything.
# THOXDASH_RUN_DIR (default .run) holds the Procfile, the agent key, the beat schedule and the agent's
# outage spill; THOXDASH_AGENT_ROOT (default /) is the tree the agent reads and acts on.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export THOXDASH_PORT="${THOXDASH_PORT:-8090}"
RUN="${THOXDASH_RUN_DIR:-.run}"
export THOXDASH_RUN_DIR="$RUN"
REDIS_URL="$($PY scripts/ensure_redis.py)" || exit 1
export REDIS_URL
mkdir -p "$RUN"
export THOXDASH_AGENT_SPILL="${THOXDASH_AGENT_SPILL:-$RUN/agent-spill}"
$PY manage.py migrate --noinput -v 0
$PY manage.py ensure_admin
# One key signs actions (web) and verifies them (agent): generated once, kept 0600 in the run dir.
if [ -z "${THOXDASH_AGENT_KEY:-}" ]; then
  [ -s "$RUN/agent_key" ] || (umask 077 && $PY -c "import secrets; print(secrets.token_urlsafe(32))" > "$RUN/agent_key")
  THOXDASH_AGENT_KEY="$(cat "$RUN/agent_key")"
fi
export THOXDASH_AGENT_KEY
DEVICE="${THOXDASH_DEVICE:-$(hostname | tr -c 'A-Za-z0-9_.\n-' '-' | cut -c1-64)}"
AGENT_ROOT="${THOXDASH_AGENT_ROOT:-/}"
{
  echo "web: .venv/bin/daphne -b 127.0.0.1 -p $THOXDASH_PORT thoxdash.asgi:application"
  # no gossip/mingle/heartbeat: worker-to-worker chatter ThoxDash does not use, and the channels
  # whose teardown races a lost broker connection (kombu: "NoneType has no attribute hostname")
  echo "worker: .venv/bin/celery -A thoxdash worker -l warning --concurrency 2 --without-gossip --without-mingle --without-heartbeat --hostname thoxdash-worker-$THOXDASH_PORT@%h"
  echo "beat: .venv/bin/celery -A thoxdash beat -l warning"
  echo "agent: $PY -m collectors agent --device $DEVICE --root $AGENT_ROOT"
  if ! $PY -c "import sys; from pathlib import Path; from collectors.board import is_jetson; sys.exit(0 if is_jetson(Path(sys.argv[1])) else 1)" "$AGENT_ROOT"; then
    echo "demo: $PY -m collectors replay collectors/demo/agx-orin-demo.jsonl --device demo-agx-orin --loop --root $RUN/demo-root"
  fi
} > "$RUN/Procfile"
echo "ThoxDash: http://127.0.0.1:$THOXDASH_PORT/  (user: admin; Redis: $REDIS_URL; this machine: $DEVICE)"
exec $PY scripts/supervise.py "$RUN/Procfile"
