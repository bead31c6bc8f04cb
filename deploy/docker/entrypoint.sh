#!/bin/sh
# Container roles: web | worker | beat | agent | manage ARGS... | anything else runs as given.
set -e
role="${1:-web}"
[ $# -gt 0 ] && shift
case "$role" in
  web)
    python manage.py migrate --noinput -v 0
    python manage.py ensure_admin
    # the local device: enrolled, its own action key in the shared state volume (0600)
    [ -z "${THOXDASH_DEVICE:-}" ] || python manage.py enroll_device "$THOXDASH_DEVICE" -v 0 \
      --key-file "/var/lib/thoxdash/keys/$THOXDASH_DEVICE"
    exec daphne --proxy-headers -b 0.0.0.0 -p "${THOXDASH_PORT:-8090}" thoxdash.asgi:application ;;
  worker) exec celery -A thoxdash worker -l warning --concurrency "${THOXDASH_WORKER_CONCURRENCY:-2}" \
            --without-gossip --without-mingle --without-heartbeat ;;
  beat) exec celery -A thoxdash beat -l warning --schedule /var/lib/thoxdash/celerybeat-schedule ;;
  agent) : "${REDIS_URL:?set REDIS_URL}"  # read from the environment: never on the command line
         exec python -m collectors agent --device "${THOXDASH_DEVICE:?set THOXDASH_DEVICE}" \
           --spill /var/lib/thoxdash/spill "$@" ;;
  manage) exec python manage.py "$@" ;;
  *) exec "$role" "$@" ;;
esac
