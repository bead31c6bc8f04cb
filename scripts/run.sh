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
# Everything make run writes (run dir, SQLite database with sessions and webhook secrets, keys,
# spill files) is readable by this user only.
umask 077
mkdir -p "$RUN" && chmod 0700 "$RUN"
[ ! -f db.sqlite3 ] || chmod 0600 db.sqlite3
export THOXDASH_AGENT_SPILL="${THOXDASH_AGENT_SPILL:-$RUN/agent-spill}"
$PY manage.py migrate --noinput -v 0
$PY manage.py ensure_admin
# The master action key stays with the server (web, worker): generated once, kept 0600 in the run dir.
# Each device gets its own key derived from it (enroll_device), so the local agent holds only its own.
if [ -z "${THOXDASH_AGENT_MASTER_KEY:-}" ]; then
  if [ -n "${THOXDASH_AGENT_KEY:-}" ]; then
    THOXDASH_AGENT_MASTER_KEY="$THOXDASH_AGENT_KEY"
  else
    [ -s "$RUN/agent_key" ] || (umask 077 && $PY -c "import secrets; print(secrets.token_urlsafe(32))" > "$RUN/agent_key")
    THOXDASH_AGENT_MASTER_KEY="$(cat "$RUN/agent_key")"
  fi
fi
export THOXDASH_AGENT_MASTER_KEY
unset THOXDASH_AGENT_KEY
DEVICE="${THOXDASH_DEVICE:-$(hostname | tr -c 'A-Za-z0-9_.\n-' '-' | cut -c1-64)}"
for dev in "$DEVICE" demo-agx-orin; do
  $PY manage.py enroll_device "$dev" --key-file "$RUN/keys/$dev" -v 0
done
AGENT_ENV="env -u THOXDASH_AGENT_MASTER_KEY THOXDASH_AGENT_KEY_FILE=$RUN/keys/$DEVICE"
AGENT_ROOT="${THOXDASH_AGENT_ROOT:-/}"
{
  echo "web: .venv/bin/daphne -b 127.0.0.1 -p $THOXDASH_PORT thoxdash.asgi:application"
  # no gossip/mingle/heartbeat: worker-to-worker chatter ThoxDash does not use, and the channels
  # whose teardown races a lost broker connection (kombu: "NoneType has no attribute hostname")
  echo "worker: .venv/bin/celery -A thoxdash worker -l warning --concurrency 2 --without-gossip --without-mingle --without-heartbeat --hostname thoxdash-worker-$THOXDASH_PORT@%h"
  echo "beat: .venv/bin/celery -A thoxdash beat -l warning"
  echo "agent: $AGENT_ENV $PY -m collectors agent --device $DEVICE --root $AGENT_ROOT"
  if ! $PY -c "import sys; from pathlib import Path; from collectors.board import is_jetson; sys.exit(0 if is_jetson(Path(sys.argv[1])) else 1)" "$AGENT_ROOT"; then
    echo "demo: env -u THOXDASH_AGENT_MASTER_KEY THOXDASH_AGENT_KEY_FILE=$RUN/keys/demo-agx-orin $PY -m collectors replay collectors/demo/agx-orin-demo.jsonl --device demo-agx-orin --loop --root $RUN/demo-root"
  fi
} > "$RUN/Procfile"
echo "ThoxDash: http://127.0.0.1:$THOXDASH_PORT/  (user: admin; Redis: $(printf %s "$REDIS_URL" | sed -E 's#(://[^:/@]*:)[^@]*@#\1***@#'); this machine: $DEVICE)"
exec $PY scripts/supervise.py "$RUN/Procfile"
