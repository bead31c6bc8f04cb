#!/usr/bin/env bash
# Print the pip requirement for jetson-stats that matches this host's jtop service.
#
# The jtop client refuses a service of another version ("Mismatch version jtop service"), and the
# service is installed system-wide (sudo pip3 install jetson-stats), so the agent's venv must carry
# the service's own version. Where: the service unit's ExecStart (jtop.service) -> that script's
# Python (its #! line) -> `import jtop; jtop.__version__`; else the system python3's jtop.
# No service found: the range pyproject.toml allows (with a note on stderr).
#
#   deploy/jetson-stats-spec.sh            # e.g. jetson-stats==4.3.2
# Overrides for tests: JTOP_SERVICE_FILE, JTOP_FALLBACK_PYTHON.
set -euo pipefail

RANGE='jetson-stats>=4.2,<8'
UNIT="${JTOP_SERVICE_FILE:-}"
if [ -z "$UNIT" ]; then
  for f in /etc/systemd/system/jtop.service /lib/systemd/system/jtop.service /usr/lib/systemd/system/jtop.service; do
    [ -f "$f" ] && { UNIT="$f"; break; }
  done
fi

version_from() {  # $1: a python interpreter
  [ -x "$1" ] || return 1
  "$1" -c 'import jtop; print(jtop.__version__)' 2>/dev/null | grep -E '^[0-9]+(\.[0-9]+){1,3}$' | head -n1
}

VERSION=""
if [ -n "$UNIT" ] && [ -f "$UNIT" ]; then
  exe="$(sed -n 's/^ExecStart=[-@+!]*\([^ ]*\).*/\1/p' "$UNIT" | head -n1)"
  if [ -n "$exe" ] && [ -f "$exe" ]; then
    shebang="$(head -n1 "$exe")"
    py="${shebang#\#!}"; py="${py%% *}"
    case "$py" in
      */env) py="$(command -v "$(head -n1 "$exe" | awk '{print $2}')" || true)" ;;
    esac
    VERSION="$(version_from "$py" || true)"
  fi
fi
[ -n "$VERSION" ] || VERSION="$(version_from "${JTOP_FALLBACK_PYTHON:-/usr/bin/python3}" || true)"

if [ -n "$VERSION" ]; then
  major="${VERSION%%.*}"
  if [ "$major" -lt 4 ] || [ "$major" -ge 8 ]; then
    echo "jtop service $VERSION is outside what ThoxDash supports ($RANGE): upgrade jetson-stats on the host" >&2
    exit 1
  fi
  echo "jetson-stats==$VERSION"
else
  echo "no jtop service found: installing $RANGE (install jetson-stats on the host, then re-run)" >&2
  echo "$RANGE"
fi
